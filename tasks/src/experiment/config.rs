//! The experiment config types, with the reference's defaults for optional keys.

use std::collections::BTreeMap;

use flow_engine::slurm::Resources;
use flow_engine::value::Value;

use super::sizes::ModelSize;

/// A loaded and validated experiment config (`configs/experiments/*.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    pub experiment: ExperimentSection,
    pub data: DataConfig,
    pub training: TrainingConfig,
    pub checkpoints: CheckpointsConfig,
    pub logging: LoggingConfig,
    pub model: ModelConfig,
    /// An external training command instead of `flow-train`.
    pub trainer: Option<TrainerConfig>,
    /// SLURM resource overrides; unset fields fall back to the model-size policy.
    pub resources: Resources,
}

/// `experiment:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSection {
    /// Becomes a directory under `checkpoints/`; validated to stay inside it.
    pub name: String,
    pub description: String,
    pub model_size: ModelSize,
}

/// `data:`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    pub dataset_dir: String,
    /// Otherwise read from the dataset.
    pub num_classes: Option<u32>,
}

/// The learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    Step,
    Cosine,
}

impl Scheduler {
    pub const NAMES: [&'static str; 2] = ["step", "cosine"];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Step => "step",
            Scheduler::Cosine => "cosine",
        }
    }

    pub fn parse(name: &str) -> Option<Scheduler> {
        match name {
            "step" => Some(Scheduler::Step),
            "cosine" => Some(Scheduler::Cosine),
            _ => None,
        }
    }
}

/// `training:`; defaults are the reference's (spec/rfdetr.md §2).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingConfig {
    pub epochs: u32,
    pub lr: f64,
    pub lr_encoder: f64,
    pub warmup_epochs: u32,
    pub lr_scheduler: Scheduler,
    /// Epoch after which the step scheduler multiplies the rate by 0.1; defaults to `epochs`.
    pub lr_drop: u32,
    /// Final fraction of the rate for the cosine scheduler.
    pub lr_min_factor: f64,
    pub weight_decay: f64,
    pub batch_size: u32,
    pub grad_accum_steps: u32,
    pub early_stopping: bool,
    pub early_stopping_patience: u32,
    pub early_stopping_min_delta: f64,
    pub seed: u32,
    pub clip_max_norm: f64,
    pub use_ema: bool,
    pub amp: bool,
    pub multi_scale: bool,
    pub num_workers: u32,
}

impl TrainingConfig {
    /// The reference's defaults for a run of `epochs` epochs.
    pub fn defaults(epochs: u32) -> Self {
        TrainingConfig {
            epochs,
            lr: 1e-4,
            lr_encoder: 1.5e-4,
            warmup_epochs: 0,
            lr_scheduler: Scheduler::Step,
            lr_drop: epochs,
            // The reference decays cosine to 0.0; flow requires (0, 1] and uses DESIGN's 0.01.
            lr_min_factor: 0.01,
            weight_decay: 1e-4,
            batch_size: 4,
            grad_accum_steps: 4,
            early_stopping: false,
            early_stopping_patience: 10,
            early_stopping_min_delta: 0.001,
            seed: 42,
            clip_max_norm: 0.1,
            use_ema: true,
            amp: true,
            multi_scale: true,
            num_workers: 2,
        }
    }
}

/// `checkpoints:`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointsConfig {
    pub save_every_n_epochs: u32,
    /// Periodic checkpoints kept (the newest); `None` keeps all. Which files are kept does
    /// not change the result, so it is not part of the key.
    pub keep_last_n: Option<u32>,
}

/// `logging:`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    pub tensorboard: bool,
    pub wandb: bool,
}

/// `model:`; defaults come from the model size.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub pretrain_weights: Option<String>,
    pub resolution: u32,
}

/// `trainer:`: an external command run instead of `flow-train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerConfig {
    pub command: String,
    /// Files or globs hashed into the key, so editing a training script makes runs stale.
    pub code: Vec<String>,
}

impl ExperimentConfig {
    /// Every hyperparameter under its dotted key (`training.lr`), for a node's key.
    ///
    /// Leaves out what does not change the result: the description and SLURM resources.
    /// Unset optional values are `Null`, so the set of keys never depends on the file.
    pub fn to_params(&self) -> BTreeMap<String, Value> {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: Value| {
            p.insert(k.to_string(), v);
        };
        let e = &self.experiment;
        put("experiment.name", Value::Str(e.name.clone()));
        put(
            "experiment.model_size",
            Value::Str(e.model_size.as_str().into()),
        );
        put(
            "data.dataset_dir",
            Value::Str(self.data.dataset_dir.clone()),
        );
        put("data.num_classes", opt_u32(self.data.num_classes));
        let t = &self.training;
        put("training.epochs", int(t.epochs));
        put("training.lr", Value::Float(t.lr));
        put("training.lr_encoder", Value::Float(t.lr_encoder));
        put("training.warmup_epochs", int(t.warmup_epochs));
        put(
            "training.lr_scheduler",
            Value::Str(t.lr_scheduler.as_str().into()),
        );
        put("training.lr_drop", int(t.lr_drop));
        put("training.lr_min_factor", Value::Float(t.lr_min_factor));
        put("training.weight_decay", Value::Float(t.weight_decay));
        put("training.batch_size", int(t.batch_size));
        put("training.grad_accum_steps", int(t.grad_accum_steps));
        put("training.early_stopping", Value::Bool(t.early_stopping));
        put(
            "training.early_stopping_patience",
            int(t.early_stopping_patience),
        );
        put(
            "training.early_stopping_min_delta",
            Value::Float(t.early_stopping_min_delta),
        );
        put("training.seed", int(t.seed));
        put("training.clip_max_norm", Value::Float(t.clip_max_norm));
        put("training.use_ema", Value::Bool(t.use_ema));
        put("training.amp", Value::Bool(t.amp));
        put("training.multi_scale", Value::Bool(t.multi_scale));
        put("training.num_workers", int(t.num_workers));
        put(
            "checkpoints.save_every_n_epochs",
            int(self.checkpoints.save_every_n_epochs),
        );
        put("logging.tensorboard", Value::Bool(self.logging.tensorboard));
        put("logging.wandb", Value::Bool(self.logging.wandb));
        put(
            "model.pretrain_weights",
            self.model
                .pretrain_weights
                .clone()
                .map(Value::Str)
                .unwrap_or(Value::Null),
        );
        put("model.resolution", int(self.model.resolution));
        match &self.trainer {
            Some(tr) => {
                put("trainer.command", Value::Str(tr.command.clone()));
                put(
                    "trainer.code",
                    Value::List(tr.code.iter().cloned().map(Value::Str).collect()),
                );
            }
            None => {
                put("trainer.command", Value::Null);
                put("trainer.code", Value::List(Vec::new()));
            }
        }
        p
    }
}

fn int(n: u32) -> Value {
    Value::Int(i64::from(n))
}

fn opt_u32(n: Option<u32>) -> Value {
    n.map(int).unwrap_or(Value::Null)
}
