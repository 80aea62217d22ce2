//! `flow train`: one experiment trained in the foreground (the trainer's output on the
//! terminal), registered like any other run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use flow_engine::diagnostic::SpecError;
use flow_engine::value::Value;
use flow_engine::workflow::Param;
use flow_engine::yaml::{Source, Span};

use super::exec::prepare;
use super::{Origin, experiment_key, key_params, new_entry};
use crate::experiment::load_with_overrides;
use crate::registry::{MetricsCache, RegistryStore, RunIds, Status, rfc3339, unix_now};

/// Why `flow train` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ForegroundError {
    #[error(transparent)]
    Spec(#[from] Box<SpecError>),
    #[error("{0}")]
    Other(String),
}

/// How the run ended.
#[derive(Debug)]
pub struct ForegroundRun {
    pub run_id: String,
    pub status: Status,
    pub exit_code: Option<i32>,
}

/// Trains `config_file` (project-relative) in the foreground, with `model_size` over the
/// config's. Make-like: a completed run of the same resolved config is reported, not
/// repeated, unless `fresh`.
pub fn train_foreground(
    root: &Path,
    config_file: &str,
    model_size: Option<&str>,
    fresh: bool,
    cache_dir: &Path,
) -> Result<ForegroundRun, ForegroundError> {
    let text = std::fs::read_to_string(root.join(config_file))
        .map_err(|e| ForegroundError::Other(format!("cannot read {config_file}: {e}")))?;
    let source = Source::new(config_file, text);
    let cli = Source::new("--model-size", model_size.unwrap_or_default());
    let mut overrides = BTreeMap::new();
    if let Some(size) = model_size {
        overrides.insert(
            "experiment.model_size".to_string(),
            Param {
                value: Value::Str(size.to_string()),
                text: size.to_string(),
                span: Span {
                    offset: 0,
                    len: size.len(),
                },
            },
        );
    }
    let config = load_with_overrides(&source, &overrides, &cli).map_err(Box::new)?;
    let params = key_params(&config, &overrides, Span { offset: 0, len: 0 });
    let key = experiment_key(&params);
    let name = config.experiment.name.clone();
    let instance = format!("train:{name}");
    let store = RegistryStore::new(root);
    let ids = RunIds::locked(store.clone(), fresh);
    let other = |e: crate::registry::RegistryError| ForegroundError::Other(e.to_string());
    let alloc = ids
        .run_for(&instance, &key, &name, |id| {
            let origin = Origin {
                instance: &instance,
                config_file,
                workflow: "flow train",
                git_commit: crate::context::git_head(root),
            };
            new_entry(id, &name, &key, &config, origin, Status::Running)
        })
        .map_err(other)?;
    if alloc.existing && alloc.entry.status == Status::Completed {
        ids.release();
        return Ok(ForegroundRun {
            run_id: alloc.run_id,
            status: Status::Completed,
            exit_code: None,
        });
    }
    ids.register(&[instance.as_str()]).map_err(other)?;
    let run_dir = root.join(&alloc.entry.output_dir);
    let mut cmd =
        prepare(&run_dir, &config.to_yaml()).map_err(|e| ForegroundError::Other(e.to_string()))?;
    let started = Instant::now();
    let status = cmd
        .current_dir(root)
        .status()
        .map_err(|e| ForegroundError::Other(format!("cannot start the trainer: {e}")))?;
    let hours = started.elapsed().as_secs_f64() / 3600.0;
    let gpus = std::env::var("CUDA_VISIBLE_DEVICES")
        .map(|v| v.split(',').filter(|s| !s.trim().is_empty()).count() as u32)
        .unwrap_or(0);
    let ended = match status.code() {
        Some(0) => Status::Completed,
        Some(_) => Status::Failed,
        None => Status::Cancelled,
    };
    let mut cache = MetricsCache::load(cache_dir);
    store
        .update(|reg| {
            if let Some(e) = reg.get_mut(&alloc.run_id) {
                let m = cache.get(&e.output_dir, &run_dir);
                e.status = ended;
                e.best = m.best;
                e.metrics_problems = m.problems;
                e.gpus = Some(gpus);
                e.gpu_hours = Some((hours * f64::from(gpus) * 1e4).round() / 1e4);
                e.updated_at = rfc3339(unix_now());
            }
        })
        .map_err(other)?;
    cache.save();
    Ok(ForegroundRun {
        run_id: alloc.run_id,
        status: ended,
        exit_code: status.code(),
    })
}
