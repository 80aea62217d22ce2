//! The input of compare: one run with its parsed metrics and what the registry knows about it.

use std::collections::BTreeMap;

use super::hyperparameters::Hyperparameters;
use crate::experiment::ModelSize;
use crate::metrics::RunMetrics;

/// One run to compare, as the registry and the metrics task describe it.
///
/// Compare reads nothing from disk: the caller (the `compare` task or `flow compare`) gathers
/// these, so the renderer is a pure function of its inputs and its digests mean something.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRun {
    /// The registry id (`<name>-<YYYYMMDD-HHMMSS>`); unique within one compare.
    pub id: String,
    /// The experiment name, shown in legends and tables.
    pub name: String,
    /// Groups runs in the model-size plot and the `--model-size` filter.
    pub model_size: ModelSize,
    /// The key ones become leaderboard columns; `lr` is the scatter's x axis.
    pub hyperparameters: Hyperparameters,
    /// The parsed metrics, or why there are none (missing file, unreadable metrics file...).
    /// An `Err` or a run without a best epoch is listed at the bottom and flagged.
    pub metrics: Result<RunMetrics, String>,
    /// GPU-hours where SLURM (or local wall time) reported them.
    pub gpu_hours: Option<f64>,
    /// Where the run came from: node key, git commit, flow version, SLURM job id...
    pub provenance: BTreeMap<String, String>,
}
