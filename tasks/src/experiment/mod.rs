//! Experiment configs (DESIGN §3): the schema users write, loaded with located errors.

mod config;
mod load;
mod sizes;

pub use config::{
    CheckpointsConfig, DataConfig, ExperimentConfig, ExperimentSection, LoggingConfig, ModelConfig,
    Scheduler, TrainerConfig, TrainingConfig,
};
pub use load::load_config;
pub use sizes::ModelSize;

#[cfg(test)]
mod tests;
