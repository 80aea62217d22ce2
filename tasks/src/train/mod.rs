//! `train`: one experiment config (with the node's parameters and matrix values laid over
//! it) trained into its own run directory `checkpoints/<run id>/`.
//!
//! ```yaml
//! train:
//!   task: train
//!   config: configs/experiments/nano_baseline.yaml
//!   params: {training: {epochs: 10}}        # overrides, validated like the config
//!   matrix: {training.lr: [1.0e-4, 5.0e-5]}
//! ```
//!
//! The key holds every resolved hyperparameter (so `explain` shows `training.lr: 1.0e-4 ->
//! 5.0e-5`), the dataset and `trainer.code` files as inputs, and the run directory. The
//! command calls back into flow (`"$FLOW_BIN" exec-train`), which writes the resolved config
//! into the run directory, applies the SLURM batch policy and starts the trainer.

pub mod exec;
mod foreground;
mod naming;

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_engine::diagnostic::SpecError;
use flow_engine::fields::Fields;
use flow_engine::task::{InstanceContext, Resolution, ResolveInstance, TaskKind, TaskTemplate};
use flow_engine::value::Value;
use flow_engine::workflow::Param;
use flow_engine::yaml::Span;

use crate::context::TaskContext;
use crate::experiment::{ExperimentConfig, load_with_overrides};
use crate::policy::resources_for;
use crate::registry::{Entry, Provenance, Status, rfc3339, unix_now};

pub use foreground::{ForegroundError, ForegroundRun, train_foreground};
pub use naming::{experiment_key, run_name};

/// Where run directories live, relative to the project root.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// The `train` task kind.
#[derive(Debug)]
pub struct TrainTask {
    pub ctx: Arc<TaskContext>,
}

impl TrainTask {
    /// Bumped when what identifies a resolved config changes.
    pub const KEY_VERSION: u32 = 1;
}

impl TaskKind for TrainTask {
    fn name(&self) -> &'static str {
        "train"
    }

    fn version(&self) -> u32 {
        1
    }

    fn keys(&self) -> &'static [&'static str] {
        &["config"]
    }

    fn parse(&self, node: &Fields<'_>) -> Result<TaskTemplate, SpecError> {
        let Some((config, config_span)) = node.string("config")? else {
            return Err(SpecError::at(
                node.source,
                node.node.span,
                "train node has no `config:`",
                "add `config: configs/experiments/<name>.yaml`; `params:` and `matrix:` override its keys",
            ));
        };
        Ok(TaskTemplate {
            resolver: Some(Arc::new(TrainResolver {
                ctx: self.ctx.clone(),
                config,
                config_span,
            })),
            ..Default::default()
        })
    }
}

#[derive(Debug)]
struct TrainResolver {
    ctx: Arc<TaskContext>,
    config: String,
    config_span: Span,
}

impl ResolveInstance for TrainResolver {
    fn resolve(&self, inst: &InstanceContext<'_>) -> Result<Resolution, SpecError> {
        let source = self.ctx.source(&self.config);
        let source = match &*source {
            Ok(s) => s,
            Err(e) => {
                return Err(SpecError::at(
                    inst.source,
                    self.config_span,
                    format!("cannot read experiment config `{}`: {e}", self.config),
                    "the path is relative to the project root, e.g. configs/experiments/nano_baseline.yaml",
                ));
            }
        };
        let config = load_with_overrides(source, inst.params, inst.source)?;
        let params = key_params(&config, inst.params, inst.node_span);
        let key = experiment_key(&params);
        let name = run_name(&config.experiment.name, &inst.axes);
        let allocation = self
            .ctx
            .run_ids
            .run_for(inst.id, &key, &name, |id| {
                let origin = Origin {
                    instance: inst.id,
                    config_file: &self.config,
                    workflow: &inst.source.name,
                    git_commit: self.ctx.git_commit(),
                };
                new_entry(id, &name, &key, &config, origin, Status::Pending)
            })
            .map_err(|e| {
                SpecError::at(
                    inst.source,
                    inst.node_span,
                    format!("cannot allocate a run id for `{}`: {e}", inst.id),
                    "training nodes keep their runs in experiments/registry.json",
                )
            })?;
        let run_dir = format!("{CHECKPOINTS_DIR}/{}", allocation.run_id);
        let command = format!(
            "\"$FLOW_BIN\" exec-train --run-dir {} --config {}",
            quote(&run_dir),
            quote(&config.to_yaml())
        );
        let mut inputs = Vec::new();
        let data = &config.data.dataset_dir;
        let produced = inst
            .upstream
            .iter()
            .any(|u| u.outputs.iter().any(|o| o == data));
        if produced || (!data.starts_with('/') && self.ctx.root.join(data).exists()) {
            inputs.push(data.trim_end_matches('/').to_string());
        }
        if let Some(trainer) = &config.trainer {
            inputs.extend(trainer.code.iter().cloned());
        }
        Ok(Resolution {
            params: Some(params),
            command: Some(command),
            inputs,
            outputs: Some(vec![run_dir]),
            resources_over_workflow: config.resources.clone(),
            resources_under_workflow: resources_for(config.experiment.model_size),
            requeue: true,
        })
    }
}

/// The resolved config as the instance's parameters: values by dotted key, shown as the
/// workflow wrote them where it overrode them.
pub(crate) fn key_params(
    config: &ExperimentConfig,
    overrides: &BTreeMap<String, Param>,
    node_span: Span,
) -> BTreeMap<String, Param> {
    config
        .to_params()
        .into_iter()
        .map(|(k, value)| {
            let param = match overrides.get(&k) {
                Some(o) => Param {
                    value,
                    text: o.text.clone(),
                    span: o.span,
                },
                None => Param {
                    text: match &value {
                        Value::Null => "null".to_string(),
                        v => v.to_text(),
                    },
                    value,
                    span: node_span,
                },
            };
            (k, param)
        })
        .collect()
}

/// Where a new run comes from, for its registry entry.
pub(crate) struct Origin<'a> {
    pub instance: &'a str,
    pub config_file: &'a str,
    /// The workflow file, `flow launch` or `flow train`.
    pub workflow: &'a str,
    pub git_commit: Option<String>,
}

/// The registry entry of a new run of `config` under run id `id`.
pub(crate) fn new_entry(
    id: &str,
    name: &str,
    key: &str,
    config: &ExperimentConfig,
    origin: Origin<'_>,
    status: Status,
) -> Entry {
    let now = rfc3339(unix_now());
    Entry {
        id: id.to_string(),
        name: name.to_string(),
        description: config.experiment.description.clone(),
        model_size: config.experiment.model_size.as_str().to_string(),
        hyperparameters: config
            .to_params()
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(&v).unwrap_or_default()))
            .collect(),
        experiment_key: key.to_string(),
        node_key: None,
        instance: Some(origin.instance.to_string()),
        slurm_job_id: None,
        status,
        output_dir: format!("{CHECKPOINTS_DIR}/{id}"),
        log_path: Some(format!("{CHECKPOINTS_DIR}/{id}/log.txt")),
        best: None,
        metrics_problems: Vec::new(),
        gpu_hours: None,
        gpus: None,
        provenance: Provenance {
            git_commit: origin.git_commit,
            flow_version: env!("CARGO_PKG_VERSION").to_string(),
            batch_policy: None,
            config_file: Some(origin.config_file.to_string()),
            workflow: Some(origin.workflow.to_string()),
            imported_from: None,
        },
        created_at: now.clone(),
        updated_at: now,
    }
}

/// Shell-quotes one word for `sh`.
pub(crate) fn quote(s: &str) -> String {
    String::from_utf8_lossy(&shell_quote::Sh::quote_vec(s)).into_owned()
}
