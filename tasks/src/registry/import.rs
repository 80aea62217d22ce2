//! `flow import`: runs made outside flow (run directories, or the registry of the team's
//! previous scripts) brought into the registry.

use std::collections::BTreeMap;
use std::path::Path;

use flow_engine::yaml::Source;
use serde::Deserialize;

use super::clock::{rfc3339, unix_now};
use super::entry::{BestMetrics, Entry, Provenance, Status};
use super::metrics_cache::MetricsCache;
use super::store::Registry;
use crate::experiment::load_config;

/// What importing one thing did.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    Added(String),
    /// Already registered (same output directory), under this id.
    Known(String),
}

/// Registers one run directory (absolute `dir`, shown as `shown`).
pub fn import_run_dir(
    reg: &mut Registry,
    root: &Path,
    dir: &Path,
    cache: &mut MetricsCache,
) -> Result<Imported, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let output_dir = dir
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dir.to_string_lossy().into_owned());
    if let Some(e) = reg.experiments.iter().find(|e| e.output_dir == output_dir) {
        return Ok(Imported::Known(e.id.clone()));
    }
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    let config_path = dir.join("config.yaml");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(text) => Some(
            load_config(&Source::new(config_path.to_string_lossy(), text))
                .map_err(|e| format!("{}: {}", e.location, e.message))?,
        ),
        Err(_) => None,
    };
    let m = cache.get(&output_dir, dir);
    let status = if m.best.is_some() {
        Status::Completed
    } else {
        Status::Unknown
    };
    let now = rfc3339(unix_now());
    let (name, description, model_size, hyperparameters) = match &config {
        Some(c) => (
            c.experiment.name.clone(),
            c.experiment.description.clone(),
            c.experiment.model_size.as_str().to_string(),
            c.to_params()
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(&v).unwrap_or_default()))
                .collect(),
        ),
        None => (
            dir_name.clone(),
            String::new(),
            "unknown".to_string(),
            BTreeMap::new(),
        ),
    };
    let id = unique_id(reg, &dir_name);
    reg.experiments.push(Entry {
        id: id.clone(),
        name,
        description,
        model_size,
        hyperparameters,
        experiment_key: String::new(),
        node_key: None,
        instance: None,
        slurm_job_id: None,
        status,
        log_path: Some(format!("{output_dir}/log.txt")),
        output_dir,
        best: m.best,
        metrics_problems: m.problems,
        gpu_hours: None,
        gpus: None,
        provenance: Provenance {
            flow_version: env!("CARGO_PKG_VERSION").to_string(),
            imported_from: Some(dir.to_string_lossy().into_owned()),
            ..Default::default()
        },
        created_at: now.clone(),
        updated_at: now,
    });
    Ok(Imported::Added(id))
}

fn unique_id(reg: &Registry, base: &str) -> String {
    let mut id = base.to_string();
    let mut n = 2;
    while reg.get(&id).is_some() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// One entry of the previous scripts' registry, read leniently (their field names and ours).
#[derive(Debug, Deserialize)]
struct LegacyEntry {
    #[serde(alias = "experiment_id", alias = "run_id")]
    id: Option<String>,
    #[serde(alias = "experiment_name")]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "size", alias = "model")]
    model_size: Option<String>,
    #[serde(alias = "config", alias = "params", default)]
    hyperparameters: Option<serde_json::Value>,
    #[serde(alias = "job_id", alias = "slurm_id")]
    slurm_job_id: Option<serde_json::Value>,
    status: Option<String>,
    #[serde(alias = "output_path", alias = "checkpoint_dir", alias = "run_dir")]
    output_dir: Option<String>,
    #[serde(alias = "log_file", alias = "log")]
    log_path: Option<String>,
    #[serde(alias = "best_metrics", alias = "metrics")]
    best: Option<serde_json::Value>,
    #[serde(alias = "created", alias = "timestamp", alias = "submitted_at")]
    created_at: Option<String>,
}

/// Imports the entries of a registry written by the team's previous scripts: a list of
/// entries, `{"experiments": [...]}`, or a map from id to entry. Returns what was added
/// and what was already known (by id or output directory).
pub fn import_legacy_registry(
    reg: &mut Registry,
    text: &str,
    file: &str,
) -> Result<Vec<Imported>, String> {
    let doc: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{file}:{}:{}: not valid JSON: {e}", e.line(), e.column()))?;
    let items: Vec<(Option<String>, serde_json::Value)> = match doc {
        serde_json::Value::Array(a) => a.into_iter().map(|v| (None, v)).collect(),
        serde_json::Value::Object(mut o) => match o.remove("experiments") {
            Some(serde_json::Value::Array(a)) => a.into_iter().map(|v| (None, v)).collect(),
            Some(serde_json::Value::Object(m)) => {
                m.into_iter().map(|(k, v)| (Some(k), v)).collect()
            }
            _ => o.into_iter().map(|(k, v)| (Some(k), v)).collect(),
        },
        _ => {
            return Err(format!(
                "{file}: expected a list of experiments or an object of them"
            ));
        }
    };
    let now = rfc3339(unix_now());
    let mut out = Vec::new();
    for (n, (key, value)) in items.into_iter().enumerate() {
        let e: LegacyEntry = serde_json::from_value(value)
            .map_err(|err| format!("{file}: experiment #{}: {err}", n + 1))?;
        let id =
            e.id.or(key).or(e.name.clone()).ok_or_else(|| {
                format!("{file}: experiment #{} has neither an id nor a name", n + 1)
            })?;
        let output_dir = e.output_dir.unwrap_or_else(|| format!("checkpoints/{id}"));
        if let Some(known) = reg
            .experiments
            .iter()
            .find(|x| x.id == id || x.output_dir == output_dir)
        {
            out.push(Imported::Known(known.id.clone()));
            continue;
        }
        let status = e
            .status
            .as_deref()
            .map(|s| Status::parse(&s.to_ascii_lowercase()).unwrap_or(Status::Unknown))
            .unwrap_or(Status::Unknown);
        let best = e.best.as_ref().map(|b| {
            let num = |keys: &[&str]| keys.iter().find_map(|k| b.get(*k).and_then(|v| v.as_f64()));
            BestMetrics {
                mask_map: num(&["mask_map", "best_mask_map", "segm_map", "mask_mAP"]),
                bbox_map: num(&["bbox_map", "best_bbox_map", "bbox_mAP"]),
                best_epoch: num(&["best_epoch", "epoch"]).map(|x| x as u32),
                track: None,
                epochs: num(&["epochs"]).map_or(0, |x| x as u32),
            }
        });
        let hyperparameters = match e.hyperparameters {
            Some(serde_json::Value::Object(m)) => flatten(&m, ""),
            _ => BTreeMap::new(),
        };
        reg.experiments.push(Entry {
            name: e.name.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            description: e.description.unwrap_or_default(),
            model_size: e.model_size.unwrap_or_else(|| "unknown".to_string()),
            hyperparameters,
            experiment_key: String::new(),
            node_key: None,
            instance: None,
            slurm_job_id: e.slurm_job_id.map(|j| match j {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            status,
            output_dir,
            log_path: e.log_path,
            best,
            metrics_problems: Vec::new(),
            gpu_hours: None,
            gpus: None,
            provenance: Provenance {
                flow_version: env!("CARGO_PKG_VERSION").to_string(),
                imported_from: Some(file.to_string()),
                ..Default::default()
            },
            created_at: e.created_at.unwrap_or_else(|| now.clone()),
            updated_at: now.clone(),
        });
        out.push(Imported::Added(id));
    }
    Ok(out)
}

/// Nested hyperparameters as dotted keys (`training.lr`).
fn flatten(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            serde_json::Value::Object(m) => out.extend(flatten(m, &key)),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
    out
}
