//! The hyperparameters compare shows: the key ones typed (they become leaderboard columns and
//! the scatter's x axis), the rest of the snapshot as strings for the report.

use std::collections::BTreeMap;

use crate::experiment::TrainingConfig;

/// A run's hyperparameter snapshot.
///
/// The key fields are optional because a registry entry written by an older flow, or an
/// external trainer, may not know them; the leaderboard leaves such cells empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hyperparameters {
    /// `training.lr`: the scatter's x axis.
    pub lr: Option<f64>,
    /// `training.lr_encoder`.
    pub lr_encoder: Option<f64>,
    /// `step` or `cosine`, as written in configs.
    pub lr_scheduler: Option<String>,
    /// `training.epochs`.
    pub epochs: Option<u32>,
    /// `training.batch_size` as configured (before any SLURM batch policy).
    pub batch_size: Option<u32>,
    /// `training.grad_accum_steps` as configured.
    pub grad_accum_steps: Option<u32>,
    /// `training.weight_decay`.
    pub weight_decay: Option<f64>,
    /// Every other hyperparameter, by name (e.g. `warmup_epochs`), shown in the report.
    pub other: BTreeMap<String, String>,
}

impl Hyperparameters {
    /// The snapshot of a loaded experiment config's `training:` section, so callers holding a
    /// config need not list its fields again.
    pub fn from_training(t: &TrainingConfig) -> Self {
        let other = [
            ("warmup_epochs", t.warmup_epochs.to_string()),
            ("lr_drop", t.lr_drop.to_string()),
            ("lr_min_factor", format!("{:e}", t.lr_min_factor)),
            ("early_stopping", t.early_stopping.to_string()),
            (
                "early_stopping_patience",
                t.early_stopping_patience.to_string(),
            ),
            (
                "early_stopping_min_delta",
                t.early_stopping_min_delta.to_string(),
            ),
            ("seed", t.seed.to_string()),
            ("clip_max_norm", t.clip_max_norm.to_string()),
            ("use_ema", t.use_ema.to_string()),
            ("amp", t.amp.to_string()),
            ("multi_scale", t.multi_scale.to_string()),
            ("num_workers", t.num_workers.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Hyperparameters {
            lr: Some(t.lr),
            lr_encoder: Some(t.lr_encoder),
            lr_scheduler: Some(t.lr_scheduler.as_str().to_string()),
            epochs: Some(t.epochs),
            batch_size: Some(t.batch_size),
            grad_accum_steps: Some(t.grad_accum_steps),
            weight_decay: Some(t.weight_decay),
            other,
        }
    }

    /// Reads a registry snapshot (every hyperparameter by dotted key, `training.lr`, as the
    /// registry stores it). The key fields are taken from `training.<name>` (or a bare
    /// `<name>`); numbers written as strings (`"1e-4"`) are accepted. Everything else lands in
    /// [`Hyperparameters::other`], so the report still shows it.
    pub fn from_snapshot(snapshot: &BTreeMap<String, serde_json::Value>) -> Self {
        let mut used = Vec::new();
        let mut hp = Hyperparameters {
            lr: take(snapshot, &mut used, "lr", float),
            lr_encoder: take(snapshot, &mut used, "lr_encoder", float),
            lr_scheduler: take(snapshot, &mut used, "lr_scheduler", |v| {
                v.as_str().map(str::to_string)
            }),
            epochs: take(snapshot, &mut used, "epochs", int),
            batch_size: take(snapshot, &mut used, "batch_size", int),
            grad_accum_steps: take(snapshot, &mut used, "grad_accum_steps", int),
            weight_decay: take(snapshot, &mut used, "weight_decay", float),
            other: BTreeMap::new(),
        };
        hp.other = snapshot
            .iter()
            .filter(|(k, _)| !used.contains(k))
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect();
        hp
    }

    /// The key hyperparameters as (column name, cell text), in leaderboard column order; an
    /// unknown value is an empty cell.
    pub(crate) fn key_columns(&self) -> [(&'static str, String); 7] {
        fn float(v: Option<f64>) -> String {
            v.map(|v| format!("{v:e}")).unwrap_or_default()
        }
        fn int(v: Option<u32>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        [
            ("lr", float(self.lr)),
            ("lr_encoder", float(self.lr_encoder)),
            (
                "lr_scheduler",
                self.lr_scheduler.clone().unwrap_or_default(),
            ),
            ("epochs", int(self.epochs)),
            ("batch_size", int(self.batch_size)),
            ("grad_accum_steps", int(self.grad_accum_steps)),
            ("weight_decay", float(self.weight_decay)),
        ]
    }
}

/// A snapshot value as the report shows it: strings without their JSON quotes.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value of `training.<name>` (or `<name>`) when `convert` accepts it, noting its key as
/// used; a value that does not convert stays in `other`.
fn take<T>(
    snapshot: &BTreeMap<String, serde_json::Value>,
    used: &mut Vec<String>,
    name: &str,
    convert: impl Fn(&serde_json::Value) -> Option<T>,
) -> Option<T> {
    let (k, v) = snapshot
        .get_key_value(&format!("training.{name}"))
        .or_else(|| snapshot.get_key_value(name))?;
    let value = convert(v)?;
    used.push(k.clone());
    Some(value)
}

/// A finite number, or a string holding one (`"1e-4"`).
fn float(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str()?.trim().parse().ok())
        .filter(|f| f.is_finite())
}

/// A whole, non-negative number that fits a u32.
fn int(v: &serde_json::Value) -> Option<u32> {
    float(v)
        .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
        .map(|f| f as u32)
}
