//! Compare inputs from the registry: each entry with its run directory's metrics.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::hyperparameters::Hyperparameters;
use super::run::CompareRun;
use crate::experiment::ModelSize;
use crate::metrics::read_run_dir;
use crate::registry::Entry;

/// The runs of `entries`, their logs parsed in parallel. Entries whose model size flow does
/// not know (imported from elsewhere) are returned apart, by id, for the caller to report.
pub fn runs_from_registry(root: &Path, entries: &[&Entry]) -> (Vec<CompareRun>, Vec<String>) {
    let converted: Vec<Result<CompareRun, String>> = entries
        .par_iter()
        .map(|e| {
            let Some(size) = ModelSize::parse(&e.model_size) else {
                return Err(e.id.clone());
            };
            let dir = if Path::new(&e.output_dir).is_absolute() {
                e.output_dir.clone().into()
            } else {
                root.join(&e.output_dir)
            };
            let metrics = if dir.is_dir() {
                Ok(read_run_dir(&dir))
            } else {
                Err(format!("run directory {} is missing", e.output_dir))
            };
            Ok(CompareRun {
                id: e.id.clone(),
                name: e.name.clone(),
                model_size: size,
                hyperparameters: Hyperparameters::from_snapshot(&e.hyperparameters),
                metrics,
                gpu_hours: e.gpu_hours,
                provenance: provenance(e),
            })
        })
        .collect();
    let mut runs = Vec::new();
    let mut unknown = Vec::new();
    for c in converted {
        match c {
            Ok(r) => runs.push(r),
            Err(id) => unknown.push(id),
        }
    }
    (runs, unknown)
}

fn provenance(e: &Entry) -> BTreeMap<String, String> {
    let p = &e.provenance;
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v.clone());
        }
    };
    put("status", Some(&e.status.as_str().to_string()));
    put("output_dir", Some(&e.output_dir));
    put("node_key", e.node_key.as_ref());
    put("slurm_job_id", e.slurm_job_id.as_ref());
    put("git_commit", p.git_commit.as_ref());
    put("flow_version", Some(&p.flow_version));
    put("batch_policy", p.batch_policy.as_ref());
    put("config_file", p.config_file.as_ref());
    put("workflow", p.workflow.as_ref());
    put("imported_from", p.imported_from.as_ref());
    put("created_at", Some(&e.created_at));
    out
}
