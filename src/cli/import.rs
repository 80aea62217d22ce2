//! `flow import RUN_DIR... [--registry FILE]`: registers runs made outside flow.

use std::path::{Path, PathBuf};

use flow_tasks::registry::{
    Imported, MetricsCache, RegistryStore, import_legacy_registry, import_run_dir,
};

use super::registry_sync::registry_failure;
use super::{CmdResult, Failure, exit_codes, open_project};

/// Arguments of `flow import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Run directories (RF-DETR or flow-train output: log.txt or metrics.csv, config.yaml).
    dirs: Vec<PathBuf>,
    /// A registry.json kept by the team's previous scripts.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn import(project: Option<&Path>, args: ImportArgs) -> CmdResult {
    if args.dirs.is_empty() && args.registry.is_none() {
        return Err(Failure::msg(
            exit_codes::INVALID_INPUT,
            "nothing to import\n  help: name run directories (`flow import checkpoints/*`) or --registry FILE".into(),
        ));
    }
    let project = open_project(project, None)?;
    let legacy = match &args.registry {
        Some(f) => Some((
            f.display().to_string(),
            std::fs::read_to_string(f).map_err(|e| {
                Failure::msg(
                    exit_codes::INVALID_INPUT,
                    format!("cannot read {}: {e}", f.display()),
                )
            })?,
        )),
        None => None,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut cache = MetricsCache::load(&project.cache_dir());
    let store = RegistryStore::new(&project.root);
    let root = project.root.canonicalize().unwrap_or(project.root.clone());
    let result = store
        .try_update(|reg| -> Result<Vec<(String, Imported)>, String> {
            let mut out = Vec::new();
            for d in &args.dirs {
                let abs = cwd.join(d);
                let abs = abs.canonicalize().unwrap_or(abs);
                let r = import_run_dir(reg, &root, &abs, &mut cache)
                    .map_err(|e| format!("{}: {e}", d.display()))?;
                out.push((d.display().to_string(), r));
            }
            if let Some((file, text)) = &legacy {
                for r in import_legacy_registry(reg, text, file)? {
                    out.push((file.clone(), r));
                }
            }
            Ok(out)
        })
        .map_err(registry_failure)?;
    cache.save();
    // An error leaves the registry as it was (nothing is written).
    let done = result.map_err(|e| Failure::msg(exit_codes::INVALID_INPUT, e))?;
    if args.json {
        let rows: Vec<_> = done
            .iter()
            .map(|(from, r)| match r {
                Imported::Added(id) => serde_json::json!({"from": from, "id": id, "added": true}),
                Imported::Known(id) => serde_json::json!({"from": from, "id": id, "added": false}),
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(exit_codes::OK);
    }
    for (from, r) in &done {
        match r {
            Imported::Added(id) => println!("imported {from} as {id}"),
            Imported::Known(id) => println!("{from}: already registered as {id}"),
        }
    }
    Ok(exit_codes::OK)
}
