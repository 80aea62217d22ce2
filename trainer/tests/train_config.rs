//! The experiment config reader: the text `flow` writes (every key resolved), a minimal
//! hand-written file with defaults, and errors that name the file and the key.

use std::path::Path;

use flow_trainer::config::{ConfigError, ExperimentConfig, Scheduler};
use flow_trainer::model::ModelSize;

/// As tasks/src/experiment/write.rs writes it.
const FLOW_WRITTEN: &str = r#"experiment:
  name: "nano-baseline"
  description: "Nano model with default hyperparameters"
  model_size: "nano"
data:
  dataset_dir: "data/lars_rfdetr"
training:
  epochs: 50
  lr: 0.0001
  lr_encoder: 0.00015
  warmup_epochs: 2
  lr_scheduler: "step"
  lr_drop: 40
  lr_min_factor: 0.01
  weight_decay: 0.0001
  batch_size: 4
  grad_accum_steps: 4
  early_stopping: true
  early_stopping_patience: 15
  early_stopping_min_delta: 0.001
  seed: 42
  clip_max_norm: 0.1
  use_ema: true
  amp: true
  multi_scale: true
  num_workers: 2
checkpoints:
  save_every_n_epochs: 5
logging:
  tensorboard: true
  wandb: false
model:
  pretrain_weights: null
  resolution: 312
trainer:
  command: "uv run python scripts/train.py"
  code: ["scripts"]
"#;

#[test]
fn reads_what_flow_writes() {
    let c = ExperimentConfig::parse(FLOW_WRITTEN, Path::new("run/config.yaml")).unwrap();
    assert_eq!(c.experiment.model_size, ModelSize::Nano);
    assert_eq!(c.training.epochs, 50);
    assert_eq!(c.training.lr, 1e-4);
    assert_eq!(c.training.lr_drop_epoch(), 40);
    assert_eq!(c.training.lr_scheduler, Scheduler::Step);
    assert_eq!(c.checkpoints.save_every_n_epochs, 5);
    assert_eq!(c.model.resolution, Some(312));
    assert!(c.model.pretrain_weights.is_none());
    assert!(c.training.early_stopping);
}

#[test]
fn design_example_with_defaults() {
    let text = r#"experiment:
  name: "x"
  model_size: "2xlarge"
data:
  dataset_dir: "d"
training:
  epochs: 60
  lr: 5.0e-5
  lr_scheduler: "cosine"
"#;
    let c = ExperimentConfig::parse(text, Path::new("c.yaml")).unwrap();
    assert_eq!(c.experiment.model_size, ModelSize::XXLarge);
    assert_eq!(c.training.lr, 5e-5);
    assert_eq!(c.training.lr_encoder, 1.5e-4);
    assert_eq!(
        c.training.lr_drop_epoch(),
        60,
        "no drop within the run by default"
    );
    assert_eq!(c.training.seed, 42);
    assert_eq!(c.training.clip_max_norm, 0.1);
    assert!(c.training.use_ema);
}

fn err(text: &str) -> String {
    let e: ConfigError = ExperimentConfig::parse(text, Path::new("configs/bad.yaml")).unwrap_err();
    e.to_string()
}

#[test]
fn errors_name_the_file_and_the_key() {
    let unknown = FLOW_WRITTEN.replace("  lr_drop: 40", "  lr_dorp: 40");
    let e = err(&unknown);
    assert!(
        e.contains("configs/bad.yaml") && e.contains("lr_dorp"),
        "{e}"
    );
    let size = FLOW_WRITTEN.replace("\"nano\"", "\"huge\"");
    let e = err(&size);
    assert!(e.contains("configs/bad.yaml") && e.contains("huge"), "{e}");
    let lr = FLOW_WRITTEN.replace("  lr: 0.0001", "  lr: -1.0");
    let e = err(&lr);
    assert!(e.contains("training.lr") && e.contains("-1"), "{e}");
    let wandb = FLOW_WRITTEN.replace("wandb: false", "wandb: true");
    let e = err(&wandb);
    assert!(e.contains("logging.wandb"), "{e}");
    let e = err("experiment: [1, 2\n");
    assert!(
        e.contains("not valid YAML") && e.contains("configs/bad.yaml"),
        "{e}"
    );
    let e = ExperimentConfig::load(Path::new("/nonexistent/flow.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/flow.yaml"), "{e}");
}
