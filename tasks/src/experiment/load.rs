//! Reading an experiment config: unknown keys, types and value ranges, each error located.

use flow_engine::diagnostic::{SpecError, choices_help};
use flow_engine::fields::{Fields, type_error};
use flow_engine::slurm::Resources;
use flow_engine::slurm_config::{RESOURCE_KEYS, read_resources};
use flow_engine::value::Value;
use flow_engine::yaml::{Source, Span, Yaml, YamlKind, parse};

use super::config::{
    CheckpointsConfig, DataConfig, ExperimentConfig, ExperimentSection, LoggingConfig, ModelConfig,
    Scheduler, TrainerConfig, TrainingConfig,
};
use super::sizes::ModelSize;

const TOP_KEYS: &[&str] = &[
    "experiment",
    "data",
    "training",
    "checkpoints",
    "logging",
    "model",
    "trainer",
    "resources",
];
const EXPERIMENT_KEYS: &[&str] = &["name", "description", "model_size"];
const DATA_KEYS: &[&str] = &["dataset_dir", "num_classes"];
const TRAINING_KEYS: &[&str] = &[
    "epochs",
    "lr",
    "lr_encoder",
    "warmup_epochs",
    "lr_scheduler",
    "lr_drop",
    "lr_min_factor",
    "weight_decay",
    "batch_size",
    "grad_accum_steps",
    "early_stopping",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "seed",
    "clip_max_norm",
    "use_ema",
    "amp",
    "multi_scale",
    "num_workers",
];
const CHECKPOINTS_KEYS: &[&str] = &["save_every_n_epochs", "keep_last_n"];
const LOGGING_KEYS: &[&str] = &["tensorboard", "wandb"];
const MODEL_KEYS: &[&str] = &["pretrain_weights", "resolution"];
const TRAINER_KEYS: &[&str] = &["command", "code"];

/// The reference's `checkpoint_interval`.
const DEFAULT_SAVE_EVERY: u32 = 10;
/// The reference's `epochs`.
const DEFAULT_EPOCHS: u32 = 100;

/// Loads and validates an experiment config; every error points at the offending text.
pub fn load_config(source: &Source) -> Result<ExperimentConfig, SpecError> {
    let root = parse(source)?;
    load_tree(source, &root)
}

/// Every key a config may set, dotted (`training.lr`), for overrides and their hints.
pub(crate) fn known_keys() -> Vec<String> {
    let sections: [(&str, &[&str]); 8] = [
        ("experiment", EXPERIMENT_KEYS),
        ("data", DATA_KEYS),
        ("training", TRAINING_KEYS),
        ("checkpoints", CHECKPOINTS_KEYS),
        ("logging", LOGGING_KEYS),
        ("model", MODEL_KEYS),
        ("trainer", TRAINER_KEYS),
        ("resources", RESOURCE_KEYS),
    ];
    sections
        .iter()
        .flat_map(|(s, keys)| keys.iter().map(move |k| format!("{s}.{k}")))
        .collect()
}

/// [`load_config`] on an already parsed (and possibly edited) document.
pub(crate) fn load_tree(source: &Source, root: &Yaml) -> Result<ExperimentConfig, SpecError> {
    let root = root.clone();
    let top = Fields::new(source, &root, "the experiment config", TOP_KEYS)?;
    let empty = Yaml {
        kind: YamlKind::Map(Vec::new()),
        span: Span {
            offset: root.span.offset,
            len: 0,
        },
    };
    let section = |name: &str| top.get(name).unwrap_or(&empty);

    let exp_node = top.get("experiment").ok_or_else(|| {
        SpecError::at(
            source,
            root.span,
            "missing section `experiment`",
            "add an `experiment:` section with `name` and `model_size`",
        )
    })?;
    let experiment = read_experiment(source, exp_node)?;
    let data_node = top.get("data").ok_or_else(|| {
        SpecError::at(
            source,
            root.span,
            "missing section `data`",
            "add a `data:` section with `dataset_dir`",
        )
    })?;
    let data = read_data(source, data_node)?;
    let training = read_training(source, section("training"))?;

    let ck = Fields::new(
        source,
        section("checkpoints"),
        "checkpoints",
        CHECKPOINTS_KEYS,
    )?;
    let save_every_n_epochs = match ck.u32("save_every_n_epochs")? {
        Some((n, span)) => {
            at_least_one(source, span, n, "save_every_n_epochs")?;
            n
        }
        None => DEFAULT_SAVE_EVERY,
    };

    let keep_last_n = match ck.u32("keep_last_n")? {
        Some((n, span)) => {
            at_least_one(source, span, n, "keep_last_n")?;
            Some(n)
        }
        None => None,
    };

    let lg = Fields::new(source, section("logging"), "logging", LOGGING_KEYS)?;
    let logging = LoggingConfig {
        tensorboard: boolean(&lg, "tensorboard")?.unwrap_or(true),
        wandb: boolean(&lg, "wandb")?.unwrap_or(false),
    };

    let size = experiment.model_size;
    let md = Fields::new(source, section("model"), "model", MODEL_KEYS)?;
    let pretrain_weights = match md.get("pretrain_weights") {
        Some(v) if v.is_null() => None,
        Some(_) => md.string("pretrain_weights")?.map(|(s, _)| s),
        None => size.default_pretrain_weights().map(String::from),
    };
    let resolution = match md.u32("resolution")? {
        Some((n, span)) => {
            at_least_one(source, span, n, "resolution")?;
            n
        }
        None => size.default_resolution(),
    };

    let trainer = top
        .get("trainer")
        .map(|node| read_trainer(source, node))
        .transpose()?;

    let resources = match top.get("resources") {
        Some(node) => {
            let fields = Fields::new(source, node, "resources", RESOURCE_KEYS)?;
            read_resources(&fields)?
        }
        None => Resources::default(),
    };

    Ok(ExperimentConfig {
        experiment,
        data,
        training,
        checkpoints: CheckpointsConfig {
            save_every_n_epochs,
            keep_last_n,
        },
        logging,
        model: ModelConfig {
            pretrain_weights,
            resolution,
        },
        trainer,
        resources,
    })
}

fn read_experiment(source: &Source, node: &Yaml) -> Result<ExperimentSection, SpecError> {
    let f = Fields::new(source, node, "experiment", EXPERIMENT_KEYS)?;
    let (name, name_span) = f
        .string("name")?
        .ok_or_else(|| missing(source, node, "experiment.name", "\"nano-baseline\""))?;
    check_name(source, name_span, &name)?;
    let (size, size_span) = f
        .string("model_size")?
        .ok_or_else(|| missing(source, node, "experiment.model_size", "\"nano\""))?;
    let model_size = ModelSize::parse(&size).ok_or_else(|| {
        SpecError::at(
            source,
            size_span,
            format!("unknown model size `{size}`"),
            choices_help(&size, &ModelSize::NAMES),
        )
    })?;
    Ok(ExperimentSection {
        name,
        description: f.string("description")?.map(|(s, _)| s).unwrap_or_default(),
        model_size,
    })
}

/// The name becomes `checkpoints/<name>/`, so it must stay a single plain directory name.
fn check_name(source: &Source, span: Span, name: &str) -> Result<(), SpecError> {
    let problem = if name.is_empty() {
        Some("experiment name is empty".to_string())
    } else if name.contains('/') || name.contains('\\') {
        Some(format!(
            "experiment name `{name}` contains a path separator"
        ))
    } else if name.contains("..") {
        Some(format!("experiment name `{name}` contains `..`"))
    } else if name.chars().any(char::is_control) {
        Some(format!(
            "experiment name {name:?} contains a control character"
        ))
    } else if name.starts_with('.') {
        Some(format!("experiment name `{name}` starts with `.`"))
    } else {
        None
    };
    match problem {
        Some(message) => Err(SpecError::at(
            source,
            span,
            message,
            "the name becomes a directory under checkpoints/: use letters, digits, `-` and `_`, e.g. \"nano-baseline\"",
        )),
        None => Ok(()),
    }
}

fn read_data(source: &Source, node: &Yaml) -> Result<DataConfig, SpecError> {
    let f = Fields::new(source, node, "data", DATA_KEYS)?;
    let (dataset_dir, span) = f
        .string("dataset_dir")?
        .ok_or_else(|| missing(source, node, "data.dataset_dir", "\"data/lars_rfdetr\""))?;
    if dataset_dir.is_empty() {
        return Err(SpecError::at(
            source,
            span,
            "`dataset_dir` is empty",
            "set `data.dataset_dir` to the dataset's directory, e.g. \"data/lars_rfdetr\"",
        ));
    }
    let num_classes = match f.u32("num_classes")? {
        Some((n, span)) => {
            at_least_one(source, span, n, "num_classes")?;
            Some(n)
        }
        None => None,
    };
    Ok(DataConfig {
        dataset_dir,
        num_classes,
    })
}

fn read_training(source: &Source, node: &Yaml) -> Result<TrainingConfig, SpecError> {
    let f = Fields::new(source, node, "training", TRAINING_KEYS)?;
    let epochs = match f.u32("epochs")? {
        Some((n, span)) => {
            at_least_one(source, span, n, "epochs")?;
            n
        }
        None => DEFAULT_EPOCHS,
    };
    let mut t = TrainingConfig::defaults(epochs);

    for (key, slot) in [("lr", &mut t.lr), ("lr_encoder", &mut t.lr_encoder)] {
        if let Some((x, span)) = number(&f, key)? {
            if x <= 0.0 {
                return Err(SpecError::at(
                    source,
                    span,
                    format!("learning rate `{key}` must be positive, found {x}"),
                    format!("set `training.{key}` above 0, e.g. 1.0e-4"),
                ));
            }
            *slot = x;
        }
    }
    if let Some((n, span)) = f.u32("warmup_epochs")? {
        if n >= epochs {
            return Err(SpecError::at(
                source,
                span,
                format!("`warmup_epochs` ({n}) must be less than `epochs` ({epochs})"),
                "lower `training.warmup_epochs` or raise `training.epochs`",
            ));
        }
        t.warmup_epochs = n;
    }
    if let Some((name, span)) = f.string("lr_scheduler")? {
        t.lr_scheduler = Scheduler::parse(&name).ok_or_else(|| {
            SpecError::at(
                source,
                span,
                format!("unknown learning-rate scheduler `{name}`"),
                choices_help(&name, &Scheduler::NAMES),
            )
        })?;
    }
    if let Some((n, span)) = f.u32("lr_drop")? {
        if t.lr_scheduler == Scheduler::Step && !(1..=epochs).contains(&n) {
            return Err(SpecError::at(
                source,
                span,
                format!("`lr_drop` ({n}) must be between 1 and `epochs` ({epochs})"),
                format!("set `training.lr_drop` to an epoch in 1..={epochs}"),
            ));
        }
        t.lr_drop = n;
    }
    if let Some((x, span)) = number(&f, "lr_min_factor")? {
        if !(x > 0.0 && x <= 1.0) {
            return Err(SpecError::at(
                source,
                span,
                format!("`lr_min_factor` must be in (0, 1], found {x}"),
                "set `training.lr_min_factor` to a fraction above 0 and at most 1, e.g. 0.01",
            ));
        }
        t.lr_min_factor = x;
    }
    for (key, slot) in [
        ("weight_decay", &mut t.weight_decay),
        ("early_stopping_min_delta", &mut t.early_stopping_min_delta),
        ("clip_max_norm", &mut t.clip_max_norm),
    ] {
        if let Some((x, span)) = number(&f, key)? {
            if x < 0.0 {
                return Err(SpecError::at(
                    source,
                    span,
                    format!("`{key}` must not be negative, found {x}"),
                    format!("set `training.{key}` to 0 or more"),
                ));
            }
            *slot = x;
        }
    }
    for (key, slot) in [
        ("batch_size", &mut t.batch_size),
        ("grad_accum_steps", &mut t.grad_accum_steps),
        ("early_stopping_patience", &mut t.early_stopping_patience),
    ] {
        if let Some((n, span)) = f.u32(key)? {
            at_least_one(source, span, n, key)?;
            *slot = n;
        }
    }
    if let Some((n, _)) = f.u32("seed")? {
        t.seed = n;
    }
    if let Some((n, _)) = f.u32("num_workers")? {
        t.num_workers = n;
    }
    for (key, slot) in [
        ("early_stopping", &mut t.early_stopping),
        ("use_ema", &mut t.use_ema),
        ("amp", &mut t.amp),
        ("multi_scale", &mut t.multi_scale),
    ] {
        if let Some(b) = boolean(&f, key)? {
            *slot = b;
        }
    }
    Ok(t)
}

fn read_trainer(source: &Source, node: &Yaml) -> Result<TrainerConfig, SpecError> {
    let f = Fields::new(source, node, "trainer", TRAINER_KEYS)?;
    let (command, span) = f.string("command")?.ok_or_else(|| {
        missing(
            source,
            node,
            "trainer.command",
            "\"uv run python scripts/train.py --config {config}\"",
        )
    })?;
    if command.trim().is_empty() {
        return Err(SpecError::at(
            source,
            span,
            "`trainer.command` is empty",
            "write the command that trains, e.g. \"uv run python scripts/train.py --config {config}\"",
        ));
    }
    let code = f.strings("code")?.into_iter().map(|(s, _)| s).collect();
    Ok(TrainerConfig { command, code })
}

fn missing(source: &Source, node: &Yaml, key: &str, example: &str) -> SpecError {
    SpecError::at(
        source,
        node.span,
        format!("missing key `{key}`"),
        format!("add `{key}`, e.g. {example}"),
    )
}

fn at_least_one(source: &Source, span: Span, n: u32, key: &str) -> Result<(), SpecError> {
    if n >= 1 {
        return Ok(());
    }
    Err(SpecError::at(
        source,
        span,
        format!("`{key}` must be at least 1, found {n}"),
        format!("set `{key}` to 1 or more"),
    ))
}

/// A finite number written unquoted.
fn number(f: &Fields<'_>, key: &str) -> Result<Option<(f64, Span)>, SpecError> {
    let Some(node) = f.get(key) else {
        return Ok(None);
    };
    let value = match &node.kind {
        YamlKind::Scalar(s) if !s.quoted => match Value::from_plain(&s.text) {
            Value::Int(i) => Some(i as f64),
            Value::Float(x) if x.is_finite() => Some(x),
            _ => None,
        },
        _ => None,
    };
    match value {
        Some(x) => Ok(Some((x, node.span))),
        None => Err(type_error(f.source, node, key, "a finite number")),
    }
}

/// `true` or `false` written unquoted.
fn boolean(f: &Fields<'_>, key: &str) -> Result<Option<bool>, SpecError> {
    let Some(node) = f.get(key) else {
        return Ok(None);
    };
    match &node.kind {
        YamlKind::Scalar(s) if !s.quoted => match Value::from_plain(&s.text) {
            Value::Bool(b) => Ok(Some(b)),
            _ => Err(type_error(f.source, node, key, "`true` or `false`")),
        },
        _ => Err(type_error(f.source, node, key, "`true` or `false`")),
    }
}
