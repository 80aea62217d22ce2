//! The files compare writes, and what one compare did with each.

use std::fmt;

/// One output file of compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Output {
    /// `leaderboard.csv`.
    Leaderboard,
    /// `training_curves.png`.
    TrainingCurves,
    /// `metrics_bar_comparison.png`.
    MetricsBar,
    /// `model_size_comparison.png`.
    ModelSize,
    /// `hp_lr_scatter.png`.
    LrScatter,
    /// `report.html`, which embeds the four plots.
    Report,
}

impl Output {
    /// Every output, in the order they are rendered and listed.
    pub const ALL: [Output; 6] = [
        Output::Leaderboard,
        Output::TrainingCurves,
        Output::MetricsBar,
        Output::ModelSize,
        Output::LrScatter,
        Output::Report,
    ];

    /// The plots, which the report embeds.
    pub const PLOTS: [Output; 4] = [
        Output::TrainingCurves,
        Output::MetricsBar,
        Output::ModelSize,
        Output::LrScatter,
    ];

    /// The file name inside the output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Output::Leaderboard => "leaderboard.csv",
            Output::TrainingCurves => "training_curves.png",
            Output::MetricsBar => "metrics_bar_comparison.png",
            Output::ModelSize => "model_size_comparison.png",
            Output::LrScatter => "hp_lr_scatter.png",
            Output::Report => "report.html",
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// What one [`render`](super::render) did, for the CLI to print and tests to assert.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompareSummary {
    /// Outputs written this time (inputs changed, file missing or modified, or forced).
    pub rendered: Vec<Output>,
    /// Outputs left as they were: same inputs, file intact.
    pub up_to_date: Vec<Output>,
    /// How many runs were compared.
    pub runs: usize,
    /// How many of them are flagged (no usable metrics).
    pub flagged: usize,
}
