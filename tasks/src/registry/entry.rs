//! One experiment of the registry and the status names shared by every view.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where an experiment stands: the engine's one status enum (DESIGN §5), so the registry,
/// `flow status` and SLURM reconciliation never disagree on a name.
pub use flow_engine::slurm::JobStatus as Status;

/// The best epoch's numbers, by RF-DETR's rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMetrics {
    /// Mask AP@[.5:.95].
    pub mask_map: Option<f64>,
    pub bbox_map: Option<f64>,
    pub best_epoch: Option<u32>,
    /// `regular` or `ema`: which evaluation track won.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Epochs logged so far.
    #[serde(default)]
    pub epochs: u32,
}

/// Where a run came from, so a number in a leaderboard can be traced back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    pub flow_version: String,
    /// `halve` when batch size was halved and accumulation doubled on SLURM, else `keep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_policy: Option<String>,
    /// The config file the run was launched from, and the workflow node if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Set for runs registered by `flow import`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// One experiment run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `<name>-<YYYYMMDD-HHMMSS>` (UTC), `-2`, `-3` on collision.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub model_size: String,
    /// Every hyperparameter by dotted key (`training.lr`).
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// Identifies the resolved config: relaunching one with the same key reuses this run.
    #[serde(default)]
    pub experiment_key: String,
    /// The engine's node key of the last run, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    /// The workflow instance that runs it (`train`, `train[lr=1e-4]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
    pub status: Status,
    /// Project-relative: `checkpoints/<id>`.
    pub output_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestMetrics>,
    /// Problems reading the run's metrics (malformed log lines, no log yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_problems: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_hours: Option<f64>,
    /// GPUs the run was given (SLURM request, or local GPU slots), for GPU-hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    pub provenance: Provenance,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}
