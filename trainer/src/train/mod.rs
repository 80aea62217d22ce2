//! Training (issue 10): the matcher and losses of RF-DETR-Seg, the optimizer with the
//! reference's parameter groups, schedules, EMA, early stopping, checkpoints, evaluation every
//! epoch and the `log.txt` the team's tools read — one concept per file, the loop in `run`.

pub mod bench;
pub mod boxes;
pub mod checkpoint;
pub mod early_stop;
pub mod ema;
pub mod evaluate;
pub mod graphed_step;
pub mod hungarian;
pub mod log_line;
pub mod loss;
pub mod matcher;
pub mod meter;
pub mod optimizer;
pub mod param_groups;
pub mod points;
pub mod policy;
pub mod profile;
pub mod results_json;
pub mod run;
mod run_checkpoints;
mod run_outputs;
pub mod schedule;
pub mod step;
pub mod targets;
pub mod tensorboard;
pub mod threads;
pub mod weights;

pub use run::{TrainError, TrainOptions, train};
