//! The `compare` outputs (DESIGN §5, issue 7): `leaderboard.csv`, four PNG plots and a
//! self-contained `report.html`, rendered incrementally.
//!
//! [`render`] takes runs whose metrics are already parsed. Each output has its own input
//! digest (exactly the data it shows plus the renderer version), recorded in
//! `<out>/.compare-inputs.json`; an output whose digest is unchanged and whose file is intact is
//! not rendered again. A run with missing or malformed metrics is listed and flagged, never an
//! error.

mod atomic;
mod csv;
mod digest;
mod error;
mod filter;
mod from_registry;
mod hyperparameters;
mod leaderboard;
mod options;
mod output;
mod palette;
mod plot;
mod render;
mod report;
mod run;
mod state;

pub use error::CompareError;
pub use filter::RunFilter;
pub use from_registry::runs_from_registry;
pub use hyperparameters::Hyperparameters;
pub use options::CompareOptions;
pub use output::{CompareSummary, Output};
pub use render::{RENDERER_VERSION, preview, render};
pub use run::CompareRun;
pub use state::{STATE_FILE, STATE_VERSION};

#[cfg(test)]
mod tests;
