//! Experiment configs (DESIGN §3): the schema users write, loaded with located errors.

mod config;
mod load;
mod overrides;
mod sizes;
mod write;

pub use config::{
    CheckpointsConfig, DataConfig, ExperimentConfig, ExperimentSection, LoggingConfig, ModelConfig,
    Scheduler, TrainerConfig, TrainingConfig,
};
pub use load::load_config;
pub use overrides::load_with_overrides;
pub use sizes::ModelSize;

#[cfg(test)]
mod tests;
