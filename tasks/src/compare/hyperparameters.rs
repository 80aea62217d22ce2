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
    pub lr: Option<f64>,
    pub lr_encoder: Option<f64>,
    /// `step` or `cosine`, as written in configs.
    pub lr_scheduler: Option<String>,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub grad_accum_steps: Option<u32>,
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
