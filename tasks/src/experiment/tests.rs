use std::collections::BTreeMap;

use flow_engine::diagnostic::SpecError;
use flow_engine::value::Value;
use flow_engine::yaml::Source;

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/experiments");

const EXAMPLE: &str = r#"experiment:
  name: "nano-baseline"
  description: "Nano model with default hyperparameters"
  model_size: "nano"
data:
  dataset_dir: "data/lars_rfdetr"
training:
  epochs: 50
  lr: 1.0e-4
  lr_encoder: 1.5e-4
  warmup_epochs: 2
  lr_scheduler: "step"
  lr_drop: 40
  lr_min_factor: 0.01
  weight_decay: 1.0e-4
  batch_size: 4
  grad_accum_steps: 4
  early_stopping: true
  early_stopping_patience: 15
checkpoints:
  save_every_n_epochs: 5
logging:
  tensorboard: true
  wandb: false
"#;

fn load(text: &str) -> Result<ExperimentConfig, SpecError> {
    load_config(&Source::new("test.yaml", text.to_string()))
}

/// Loads `EXAMPLE` with `from` replaced by `to` and returns the error's message, help and
/// the source text under its primary span.
fn fail(from: &str, to: &str) -> (String, String, String) {
    assert!(EXAMPLE.contains(from), "{from}");
    let text = EXAMPLE.replacen(from, to, 1);
    let err = load(&text).expect_err(&text);
    let label = &err.labels[0];
    let spanned = text[label.offset()..label.offset() + label.len()].to_string();
    (err.message, err.help.unwrap_or_default(), spanned)
}

#[test]
fn every_prebuilt_config_loads() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = load_config(&Source::new(path.display().to_string(), text))
            .unwrap_or_else(|e| panic!("{}: {e} ({:?})", path.display(), e.help));
        names.push(path.file_stem().unwrap().to_str().unwrap().to_string());
        assert!(!cfg.to_params().is_empty());
    }
    names.sort();
    for want in [
        "nano_baseline",
        "nano_cosine",
        "small_baseline",
        "medium_baseline",
        "medium_lowlr",
        "large_baseline",
        "xlarge_baseline",
        "2xlarge_baseline",
        "tiny_demo",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
}

#[test]
fn prebuilt_configs_have_their_settings() {
    let read = |name: &str| {
        let text = std::fs::read_to_string(format!("{DIR}/{name}.yaml")).unwrap();
        load_config(&Source::new(name, text)).unwrap()
    };
    let base = read("nano_baseline");
    assert_eq!(base, load(EXAMPLE).unwrap());
    let c = read("nano_cosine");
    assert_eq!(c.training.lr_scheduler, Scheduler::Cosine);
    assert_eq!(c.training.epochs, 60);
    let m = read("medium_lowlr");
    assert_eq!(m.experiment.model_size, ModelSize::Medium);
    assert_eq!(m.training.lr, 5e-5);
    assert_eq!(m.training.lr_scheduler, Scheduler::Cosine);
    assert_eq!(m.training.epochs, 60);
    let t = read("tiny_demo");
    assert_eq!(t.experiment.model_size, ModelSize::Tiny);
    assert_eq!(t.training.epochs, 2);
    assert_eq!(t.training.batch_size, 2);
    assert_eq!(t.data.dataset_dir, "data/synthetic");
    for (name, size) in [
        ("small_baseline", ModelSize::Small),
        ("medium_baseline", ModelSize::Medium),
        ("large_baseline", ModelSize::Large),
        ("xlarge_baseline", ModelSize::XLarge),
        ("2xlarge_baseline", ModelSize::XXLarge),
    ] {
        assert_eq!(read(name).experiment.model_size, size, "{name}");
    }
}

#[test]
fn design_example_loads_with_its_values() {
    let c = load(EXAMPLE).unwrap();
    assert_eq!(c.experiment.name, "nano-baseline");
    assert_eq!(
        c.experiment.description,
        "Nano model with default hyperparameters"
    );
    assert_eq!(c.experiment.model_size, ModelSize::Nano);
    assert_eq!(c.data.dataset_dir, "data/lars_rfdetr");
    let t = &c.training;
    assert_eq!(t.epochs, 50);
    assert_eq!(t.lr, 1e-4);
    assert_eq!(t.lr_encoder, 1.5e-4);
    assert_eq!(t.warmup_epochs, 2);
    assert_eq!(t.lr_scheduler, Scheduler::Step);
    assert_eq!(t.lr_drop, 40);
    assert_eq!(t.lr_min_factor, 0.01);
    assert_eq!(t.weight_decay, 1e-4);
    assert_eq!(t.batch_size, 4);
    assert_eq!(t.grad_accum_steps, 4);
    assert!(t.early_stopping);
    assert_eq!(t.early_stopping_patience, 15);
    assert_eq!(c.checkpoints.save_every_n_epochs, 5);
    assert!(c.logging.tensorboard);
    assert!(!c.logging.wandb);
    assert_eq!(c.trainer, None);
}

#[test]
fn defaults_are_the_reference_values() {
    let c = load(EXAMPLE).unwrap();
    let t = &c.training;
    assert_eq!(t.seed, 42);
    assert_eq!(t.early_stopping_min_delta, 0.001);
    assert_eq!(t.clip_max_norm, 0.1);
    assert!(t.use_ema);
    assert!(t.amp);
    assert!(t.multi_scale);
    assert_eq!(t.num_workers, 2);
    assert_eq!(c.data.num_classes, None);
    assert_eq!(c.model.resolution, 312);
    assert_eq!(
        c.model.pretrain_weights.as_deref(),
        Some("rf-detr-seg-nano.pt")
    );
    assert_eq!(c.resources, flow_engine::slurm::Resources::default());

    let minimal = "experiment:\n  name: x\n  model_size: 2xlarge\ndata:\n  dataset_dir: d\n";
    let m = load(minimal).unwrap();
    assert_eq!(m.training, TrainingConfig::defaults(100));
    assert_eq!(m.training.lr_drop, 100);
    assert_eq!(m.training.batch_size, 4);
    assert_eq!(m.training.grad_accum_steps, 4);
    assert!(!m.training.early_stopping);
    assert_eq!(m.training.early_stopping_patience, 10);
    assert_eq!(m.checkpoints.save_every_n_epochs, 10);
    assert_eq!(m.model.resolution, 768);
    assert!(m.logging.tensorboard && !m.logging.wandb);
    // Every model size has presets.
    for size in ModelSize::ALL {
        assert_eq!(ModelSize::parse(size.as_str()), Some(size));
        assert_eq!(size.default_resolution() % 12, 0, "{size}");
    }
}

#[test]
fn optional_sections_load() {
    let text = format!(
        "{EXAMPLE}model:\n  resolution: 384\n  pretrain_weights: null\ntrainer:\n  command: \"uv run python scripts/train.py --config {{config}}\"\n  code: [\"scripts/*.py\", train.py]\nresources:\n  gpus: 2\n  mem: 64G\n  time: \"12:00:00\"\n"
    );
    let text = text.replace(
        "  early_stopping_patience: 15\n",
        "  early_stopping_patience: 15\n  seed: 7\n  amp: false\n  num_workers: 8\n",
    );
    let c = load(&text).unwrap();
    assert_eq!(c.model.resolution, 384);
    assert_eq!(c.model.pretrain_weights, None);
    let tr = c.trainer.unwrap();
    assert_eq!(tr.code, ["scripts/*.py", "train.py"]);
    assert!(tr.command.starts_with("uv run"));
    assert_eq!(c.resources.gpus, Some(2));
    assert_eq!(c.resources.mem.as_deref(), Some("64G"));
    assert_eq!(c.training.seed, 7);
    assert!(!c.training.amp);
    assert_eq!(c.training.num_workers, 8);
}

#[test]
fn unknown_keys_suggest_the_right_key() {
    let (msg, help, span) = fail("  lr_drop: 40", "  lr_dorp: 40");
    assert_eq!(msg, "unknown key `lr_dorp` in training");
    assert!(help.contains("did you mean `lr_drop`?"), "{help}");
    assert_eq!(span, "lr_dorp");

    let (msg, help, span) = fail("logging:", "loging:");
    assert!(msg.contains("unknown key `loging`"), "{msg}");
    assert!(help.contains("did you mean `logging`?"), "{help}");
    assert_eq!(span, "loging");

    let (_, help, _) = fail("  wandb: false", "  wandbb: false");
    assert!(help.contains("did you mean `wandb`?"), "{help}");

    let text = format!("{EXAMPLE}resources:\n  gpu: 1\n");
    let err = load(&text).unwrap_err();
    assert!(err.help.unwrap().contains("did you mean `gpus`?"));
}

#[test]
fn wrong_types_are_errors() {
    let (msg, _, span) = fail("  epochs: 50", "  epochs: fifty");
    assert!(msg.contains("wrong type for `epochs`"), "{msg}");
    assert_eq!(span, "fifty");
    let (msg, _, span) = fail("  lr: 1.0e-4", "  lr: \"1.0e-4\"");
    assert!(msg.contains("wrong type for `lr`"), "{msg}");
    assert_eq!(span, "\"1.0e-4\"");
    let (msg, _, span) = fail("  wandb: false", "  wandb: no");
    assert!(msg.contains("wrong type for `wandb`"), "{msg}");
    assert_eq!(span, "no");
    let (msg, _, _) = fail("  dataset_dir: \"data/lars_rfdetr\"", "  dataset_dir: [a]");
    assert!(msg.contains("wrong type for `dataset_dir`"), "{msg}");
}

/// Each rule: (text in EXAMPLE, replacement, message fragment, text under the span).
#[test]
fn each_validation_rule_points_at_the_value() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "  model_size: \"nano\"",
            "  model_size: \"nanno\"",
            "unknown model size `nanno`",
            "nanno",
        ),
        (
            "  lr_scheduler: \"step\"",
            "  lr_scheduler: \"cosin\"",
            "unknown learning-rate scheduler `cosin`",
            "cosin",
        ),
        (
            "  lr: 1.0e-4",
            "  lr: 0",
            "learning rate `lr` must be positive",
            "0",
        ),
        (
            "  lr_encoder: 1.5e-4",
            "  lr_encoder: -1.5e-4",
            "learning rate `lr_encoder` must be positive",
            "-1.5e-4",
        ),
        (
            "  epochs: 50",
            "  epochs: 0",
            "`epochs` must be at least 1",
            "0",
        ),
        (
            "  batch_size: 4",
            "  batch_size: 0",
            "`batch_size` must be at least 1",
            "0",
        ),
        (
            "  grad_accum_steps: 4",
            "  grad_accum_steps: 0",
            "`grad_accum_steps` must be at least 1",
            "0",
        ),
        (
            "  warmup_epochs: 2",
            "  warmup_epochs: 50",
            "`warmup_epochs` (50) must be less than `epochs` (50)",
            "50",
        ),
        (
            "  lr_drop: 40",
            "  lr_drop: 51",
            "`lr_drop` (51) must be between 1 and `epochs` (50)",
            "51",
        ),
        (
            "  lr_drop: 40",
            "  lr_drop: 0",
            "`lr_drop` (0) must be between 1 and `epochs` (50)",
            "0",
        ),
        (
            "  lr_min_factor: 0.01",
            "  lr_min_factor: 0.0",
            "`lr_min_factor` must be in (0, 1]",
            "0.0",
        ),
        (
            "  lr_min_factor: 0.01",
            "  lr_min_factor: 1.5",
            "`lr_min_factor` must be in (0, 1]",
            "1.5",
        ),
        (
            "  weight_decay: 1.0e-4",
            "  weight_decay: -0.1",
            "`weight_decay` must not be negative",
            "-0.1",
        ),
        (
            "  early_stopping_patience: 15",
            "  early_stopping_patience: 0",
            "`early_stopping_patience` must be at least 1",
            "0",
        ),
        (
            "  save_every_n_epochs: 5",
            "  save_every_n_epochs: 0",
            "`save_every_n_epochs` must be at least 1",
            "0",
        ),
        (
            "  name: \"nano-baseline\"",
            "  name: \"\"",
            "experiment name is empty",
            "\"\"",
        ),
        (
            "  name: \"nano-baseline\"",
            "  name: \"a/b\"",
            "contains a path separator",
            "a/b",
        ),
        (
            "  name: \"nano-baseline\"",
            "  name: \"a..b\"",
            "contains `..`",
            "a..b",
        ),
        (
            "  name: \"nano-baseline\"",
            "  name: \"a\\tb\"",
            "contains a control character",
            "a\\tb",
        ),
        (
            "  name: \"nano-baseline\"",
            "  name: \".hidden\"",
            "starts with `.`",
            ".hidden",
        ),
    ];
    for (from, to, want, spanned) in cases {
        let (msg, help, span) = fail(from, to);
        assert!(msg.contains(want), "{to}: got {msg:?}");
        assert_eq!(
            msg.chars().next().map(|c| c.is_uppercase()),
            Some(false),
            "{msg}"
        );
        assert!(!help.is_empty(), "{to}: no help");
        assert!(span.contains(spanned), "{to}: span {span:?}");
    }
    let (_, help, _) = fail("  model_size: \"nano\"", "  model_size: \"nanno\"");
    assert!(help.contains("did you mean `nano`?"), "{help}");
    let (_, help, _) = fail("  lr_scheduler: \"step\"", "  lr_scheduler: \"cosin\"");
    assert!(help.contains("did you mean `cosine`?"), "{help}");
}

#[test]
fn lr_drop_is_not_checked_for_cosine() {
    let text = EXAMPLE
        .replace("\"step\"", "\"cosine\"")
        .replace("lr_drop: 40", "lr_drop: 100");
    assert_eq!(load(&text).unwrap().training.lr_drop, 100);
}

#[test]
fn missing_required_keys_are_errors() {
    let err = load("experiment:\n  name: x\ndata:\n  dataset_dir: d\n").unwrap_err();
    assert_eq!(err.message, "missing key `experiment.model_size`");
    assert!(err.help.is_some());
    let err = load("experiment:\n  name: x\n  model_size: nano\n").unwrap_err();
    assert_eq!(err.message, "missing section `data`");
}

#[test]
fn to_params_is_order_independent() {
    let reordered = r#"logging:
  wandb: false
  tensorboard: true
checkpoints:
  save_every_n_epochs: 5
training:
  early_stopping_patience: 15
  early_stopping: true
  grad_accum_steps: 4
  batch_size: 4
  weight_decay: 0.0001
  lr_min_factor: 0.01
  lr_drop: 40
  lr_scheduler: step
  warmup_epochs: 2
  lr_encoder: 0.00015
  lr: 0.0001
  epochs: 50
data:
  dataset_dir: "data/lars_rfdetr"
experiment:
  model_size: "nano"
  description: "Nano model with default hyperparameters"
  name: "nano-baseline"
"#;
    let a = load(EXAMPLE).unwrap().to_params();
    let b = load(reordered).unwrap().to_params();
    assert_eq!(a, b);
    assert_eq!(
        format!("{a:?}"),
        format!("{:?}", load(EXAMPLE).unwrap().to_params())
    );
    assert_eq!(a.get("training.lr"), Some(&Value::Float(1e-4)));
    assert_eq!(
        a.get("experiment.model_size"),
        Some(&Value::Str("nano".into()))
    );
    assert_eq!(a.get("training.seed"), Some(&Value::Int(42)));
    assert!(!a.contains_key("experiment.description"));
    // A changed hyperparameter changes the params.
    let c: BTreeMap<_, _> = load(&EXAMPLE.replace("epochs: 50", "epochs: 51"))
        .unwrap()
        .to_params();
    assert_ne!(a, c);
}

#[test]
fn resolved_yaml_loads_back_to_the_same_config() {
    let mut n = 0;
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut cfg = load(&text).unwrap();
        cfg.checkpoints.keep_last_n = Some(2);
        cfg.trainer = Some(TrainerConfig {
            command: "python t.py --cfg {config} \"quoted\"".into(),
            code: vec!["t.py".into(), "src/**/*.py".into()],
        });
        let again = load(&cfg.to_yaml()).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        let mut expected = cfg.clone();
        expected.resources = Default::default();
        assert_eq!(again, expected, "{path:?}");
        n += 1;
    }
    assert_eq!(n, 9);
}

fn override_of(key: &str, text: &str, offset: usize) -> (String, flow_engine::workflow::Param) {
    let value = Value::from_plain(text);
    (
        key.to_string(),
        flow_engine::workflow::Param {
            value,
            text: text.to_string(),
            span: flow_engine::yaml::Span {
                offset,
                len: text.len(),
            },
        },
    )
}

#[test]
fn overrides_apply_and_blame_the_override() {
    let config = Source::new("c.yaml", EXAMPLE.to_string());
    let workflow = Source::new("w.yaml", "training.lr: 5.0e-5\nwarmup: 60\n".to_string());
    let ov: BTreeMap<_, _> = [override_of("training.lr", "5.0e-5", 13)]
        .into_iter()
        .collect();
    let cfg = load_with_overrides(&config, &ov, &workflow).unwrap();
    assert_eq!(cfg.training.lr, 5e-5);
    assert_eq!(cfg.training.epochs, 50, "the rest comes from the config");
    // A size override changes the size's defaults too.
    let ov: BTreeMap<_, _> = [(
        "experiment.model_size".to_string(),
        flow_engine::workflow::Param {
            value: Value::Str("small".into()),
            text: "small".into(),
            span: flow_engine::yaml::Span { offset: 0, len: 5 },
        },
    )]
    .into_iter()
    .collect();
    let cfg = load_with_overrides(&config, &ov, &workflow).unwrap();
    assert_eq!(cfg.model.resolution, 384);
    // An override that breaks a cross-key rule is blamed, at its own span.
    let ov: BTreeMap<_, _> = [override_of("training.warmup_epochs", "60", 28)]
        .into_iter()
        .collect();
    let err = load_with_overrides(&config, &ov, &workflow).unwrap_err();
    assert!(
        err.message
            .contains("`warmup_epochs` (60) must be less than `epochs` (50)"),
        "{}",
        err.message
    );
    assert!(err.location.starts_with("w.yaml:2:"), "{}", err.location);
    // Unknown keys get a hint.
    let ov: BTreeMap<_, _> = [override_of("training.epoch", "3", 0)]
        .into_iter()
        .collect();
    let err = load_with_overrides(&config, &ov, &workflow).unwrap_err();
    assert_eq!(
        err.help.as_deref().map(|h| h.contains("training.epochs")),
        Some(true)
    );
    // A quoted number stays a string and is refused where a number is expected.
    let ov: BTreeMap<_, _> = [(
        "training.lr".to_string(),
        flow_engine::workflow::Param {
            value: Value::Str("1e-4".into()),
            text: "\"1e-4\"".into(),
            span: flow_engine::yaml::Span { offset: 0, len: 6 },
        },
    )]
    .into_iter()
    .collect();
    assert!(load_with_overrides(&config, &ov, &workflow).is_err());
}

#[test]
fn batch_policy_halves_even_batches_only() {
    use crate::policy::BatchPolicy;
    let mut cfg = load(EXAMPLE).unwrap();
    assert_eq!(BatchPolicy::Halve.apply(&mut cfg), BatchPolicy::Halve);
    assert_eq!(
        (cfg.training.batch_size, cfg.training.grad_accum_steps),
        (2, 8)
    );
    cfg.training.batch_size = 3;
    assert_eq!(BatchPolicy::Halve.apply(&mut cfg), BatchPolicy::Keep);
    assert_eq!(
        (cfg.training.batch_size, cfg.training.grad_accum_steps),
        (3, 8)
    );
    cfg.training.batch_size = 4;
    assert_eq!(BatchPolicy::Keep.apply(&mut cfg), BatchPolicy::Keep);
    assert_eq!(cfg.training.batch_size, 4);
}
