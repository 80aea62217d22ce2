//! The experiment config (DESIGN §3) as `flow-train` reads it: the YAML that `flow` writes into
//! each run directory (`checkpoints/<id>/config.yaml`, every key resolved), or one a user wrote
//! by hand (optional keys take the reference's defaults, spec/rfdetr.md §2).
//!
//! The trainer shares the file format with flow, not flow's Rust code (flow builds without
//! libtorch), so this is a small reader of its own: YAML → JSON value → serde structs with
//! unknown keys refused, then value checks. Sections the trainer does not act on (`trainer:`,
//! `resources:`) are accepted and ignored, since flow may write them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use yaml_rust2::{Yaml, YamlLoader};

use crate::model::ModelSize;

/// Why a config could not be used; every variant names the file.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("config {path} is not valid YAML: {message}")]
    Yaml {
        /// The config file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// YAML, but not the schema (unknown or missing key, wrong type).
    #[error("config {path} does not fit the experiment schema: {message}")]
    Schema {
        /// The config file.
        path: PathBuf,
        /// serde's message (names the key).
        message: String,
    },
    /// A value out of range.
    #[error("config {path}: `{key}` {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted key.
        key: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
}

/// The whole experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// `experiment:`.
    pub experiment: ExperimentSection,
    /// `data:`.
    pub data: DataSection,
    /// `training:`.
    #[serde(default)]
    pub training: TrainingSection,
    /// `checkpoints:`.
    #[serde(default)]
    pub checkpoints: CheckpointsSection,
    /// `logging:`.
    #[serde(default)]
    pub logging: LoggingSection,
    /// `model:`.
    #[serde(default)]
    pub model: ModelSection,
    /// `trainer:` (an external command run by flow instead of flow-train): ignored here.
    #[serde(default, skip_serializing)]
    pub trainer: Option<serde_json::Value>,
    /// `resources:` (the SLURM request): ignored here.
    #[serde(default, skip_serializing)]
    pub resources: Option<serde_json::Value>,
}

/// `experiment:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Run name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Model preset.
    pub model_size: ModelSize,
}

/// `data:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// RF-DETR COCO layout (`train/`, `valid/`, `test/`); relative to the working directory.
    pub dataset_dir: PathBuf,
    /// Classes; read from the dataset when absent.
    #[serde(default)]
    pub num_classes: Option<i64>,
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// × 0.1 from epoch `lr_drop` on.
    Step,
    /// Cosine from 1 down to `lr_min_factor`.
    Cosine,
}

/// `training:`; defaults are the reference's (spec §2) where flow has none of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    /// Epochs to train.
    pub epochs: u32,
    /// Base learning rate (decoder × 0.7, heads × 1).
    pub lr: f64,
    /// Encoder learning rate (with layer decay).
    pub lr_encoder: f64,
    /// Linear warmup, in epochs.
    pub warmup_epochs: u32,
    /// Schedule after warmup.
    pub lr_scheduler: Scheduler,
    /// Epoch at which the step schedule drops (absent: never within `epochs`).
    pub lr_drop: Option<u32>,
    /// Final factor of the cosine schedule.
    pub lr_min_factor: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Images per forward pass.
    pub batch_size: u32,
    /// Forward passes per optimizer step.
    pub grad_accum_steps: u32,
    /// Stop when mask AP50:95 stops improving.
    pub early_stopping: bool,
    /// Epochs without improvement before stopping.
    pub early_stopping_patience: u32,
    /// Smallest improvement that counts.
    pub early_stopping_min_delta: f64,
    /// Seed of initialisation, data order, augmentation and point sampling.
    pub seed: u64,
    /// Gradient clipping (total L2 norm); 0 turns it off.
    pub clip_max_norm: f64,
    /// Keep and evaluate an EMA of the weights.
    pub use_ema: bool,
    /// bf16 autocast (CUDA only; ignored on the CPU).
    pub amp: bool,
    /// Per-batch random square scale.
    pub multi_scale: bool,
    /// Data-loading threads (the loader uses rayon's pool; kept for the schema).
    pub num_workers: u32,
}

impl Default for TrainingSection {
    fn default() -> Self {
        TrainingSection {
            epochs: 100,
            lr: 1e-4,
            lr_encoder: 1.5e-4,
            warmup_epochs: 0,
            lr_scheduler: Scheduler::Step,
            lr_drop: None,
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

impl TrainingSection {
    /// The step schedule's drop epoch: `lr_drop`, or never (the run's length) when absent.
    pub fn lr_drop_epoch(&self) -> u32 {
        self.lr_drop.unwrap_or(self.epochs)
    }
}

/// `checkpoints:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointsSection {
    /// Periodic `checkpointNNNN` every this many epochs; 0 turns them off.
    pub save_every_n_epochs: u32,
    /// Periodic checkpoints kept (the newest); absent keeps all.
    pub keep_last_n: Option<u32>,
}

impl Default for CheckpointsSection {
    fn default() -> Self {
        CheckpointsSection {
            save_every_n_epochs: 10,
            keep_last_n: None,
        }
    }
}

/// `logging:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// TensorBoard event files.
    pub tensorboard: bool,
    /// Weights & Biases (refused: flow-train does not talk to wandb).
    pub wandb: bool,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            tensorboard: true,
            wandb: false,
        }
    }
}

/// `model:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Initial weights (`.safetensors`, or a torch checkpoint imported on the fly).
    pub pretrain_weights: Option<PathBuf>,
    /// Square input side; the preset's when absent.
    pub resolution: Option<i64>,
}

impl ExperimentConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
        let value = yaml_to_json(&doc).map_err(|message| ConfigError::Yaml {
            path: path.to_owned(),
            message,
        })?;
        let cfg: ExperimentConfig =
            serde_json::from_value(value).map_err(|e| ConfigError::Schema {
                path: path.to_owned(),
                message: with_hint(&e.to_string()),
            })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let t = &self.training;
        let bad = |key: &'static str, message: String| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })
        };
        for (key, v) in [("training.lr", t.lr), ("training.lr_encoder", t.lr_encoder)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("is {v}: pass a positive rate"));
            }
        }
        if t.epochs == 0 {
            return bad("training.epochs", "is 0: train at least one epoch".into());
        }
        if t.batch_size == 0 || t.grad_accum_steps == 0 {
            return bad(
                "training.batch_size",
                "and `training.grad_accum_steps` must be at least 1".into(),
            );
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return bad(
                "training.weight_decay",
                format!("is {}: pass 0 or more", t.weight_decay),
            );
        }
        if !(t.lr_min_factor.is_finite() && (0.0..=1.0).contains(&t.lr_min_factor)) {
            return bad(
                "training.lr_min_factor",
                format!("is {}: pass a factor in [0, 1]", t.lr_min_factor),
            );
        }
        if !(t.clip_max_norm.is_finite() && t.clip_max_norm >= 0.0) {
            return bad(
                "training.clip_max_norm",
                format!("is {}: pass 0 (off) or a positive norm", t.clip_max_norm),
            );
        }
        if !(t.early_stopping_min_delta.is_finite() && t.early_stopping_min_delta >= 0.0) {
            return bad(
                "training.early_stopping_min_delta",
                format!("is {}: pass 0 or more", t.early_stopping_min_delta),
            );
        }
        if self.logging.wandb {
            return bad(
                "logging.wandb",
                "is true, but flow-train does not log to Weights & Biases: set it to false (log.txt and TensorBoard files are written)".into(),
            );
        }
        if let Some(n) = self.data.num_classes
            && n < 1
        {
            return bad("data.num_classes", format!("is {n}: pass 1 or more"));
        }
        if let Some(r) = self.model.resolution
            && r < 1
        {
            return bad("model.resolution", format!("is {r}: pass a positive side"));
        }
        Ok(())
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" plus "did you mean `a`?" when a
/// known key is within a small edit distance of the unknown one.
fn with_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (edit_distance(unknown, k), k))
        .min();
    match best {
        Some((d, k)) if d <= 3 && d < unknown.len() => format!("{message}; did you mean `{k}`?"),
        _ => message.to_owned(),
    }
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A YAML document as a JSON value, so that serde's derive (and its error messages naming the
/// key) does the schema work.
fn yaml_to_json(y: &Yaml) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(s) => {
            let x: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
            serde_json::Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| format!("`{s}` is not a finite number"))?
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => return Err(format!("unsupported key {other:?}")),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
    })
}
