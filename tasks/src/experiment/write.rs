//! The resolved config as YAML: what a run directory keeps and the trainer reads.

use std::fmt::Write;

use super::config::ExperimentConfig;

impl ExperimentConfig {
    /// Every key, resolved (defaults filled in), in the schema's layout and order.
    ///
    /// Loading the text again gives back an equal config (resources aside: they are the
    /// scheduler's business and are not written).
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let e = &self.experiment;
        y.push_str("experiment:\n");
        kv(&mut y, "name", &q(&e.name));
        kv(&mut y, "description", &q(&e.description));
        kv(&mut y, "model_size", &q(e.model_size.as_str()));
        y.push_str("data:\n");
        kv(&mut y, "dataset_dir", &q(&self.data.dataset_dir));
        if let Some(n) = self.data.num_classes {
            kv(&mut y, "num_classes", &n.to_string());
        }
        let t = &self.training;
        y.push_str("training:\n");
        kv(&mut y, "epochs", &t.epochs.to_string());
        kv(&mut y, "lr", &f(t.lr));
        kv(&mut y, "lr_encoder", &f(t.lr_encoder));
        kv(&mut y, "warmup_epochs", &t.warmup_epochs.to_string());
        kv(&mut y, "lr_scheduler", &q(t.lr_scheduler.as_str()));
        kv(&mut y, "lr_drop", &t.lr_drop.to_string());
        kv(&mut y, "lr_min_factor", &f(t.lr_min_factor));
        kv(&mut y, "weight_decay", &f(t.weight_decay));
        kv(&mut y, "batch_size", &t.batch_size.to_string());
        kv(&mut y, "grad_accum_steps", &t.grad_accum_steps.to_string());
        kv(&mut y, "early_stopping", &t.early_stopping.to_string());
        kv(
            &mut y,
            "early_stopping_patience",
            &t.early_stopping_patience.to_string(),
        );
        kv(
            &mut y,
            "early_stopping_min_delta",
            &f(t.early_stopping_min_delta),
        );
        kv(&mut y, "seed", &t.seed.to_string());
        kv(&mut y, "clip_max_norm", &f(t.clip_max_norm));
        kv(&mut y, "use_ema", &t.use_ema.to_string());
        kv(&mut y, "amp", &t.amp.to_string());
        kv(&mut y, "multi_scale", &t.multi_scale.to_string());
        kv(&mut y, "num_workers", &t.num_workers.to_string());
        y.push_str("checkpoints:\n");
        kv(
            &mut y,
            "save_every_n_epochs",
            &self.checkpoints.save_every_n_epochs.to_string(),
        );
        if let Some(n) = self.checkpoints.keep_last_n {
            kv(&mut y, "keep_last_n", &n.to_string());
        }
        y.push_str("logging:\n");
        kv(&mut y, "tensorboard", &self.logging.tensorboard.to_string());
        kv(&mut y, "wandb", &self.logging.wandb.to_string());
        y.push_str("model:\n");
        let weights = match &self.model.pretrain_weights {
            Some(w) => q(w),
            None => "null".to_string(),
        };
        kv(&mut y, "pretrain_weights", &weights);
        kv(&mut y, "resolution", &self.model.resolution.to_string());
        if let Some(tr) = &self.trainer {
            y.push_str("trainer:\n");
            kv(&mut y, "command", &q(&tr.command));
            let code: Vec<String> = tr.code.iter().map(|c| q(c)).collect();
            kv(&mut y, "code", &format!("[{}]", code.join(", ")));
        }
        y
    }
}

fn kv(y: &mut String, key: &str, value: &str) {
    let _ = writeln!(y, "  {key}: {value}");
}

/// A double-quoted YAML string (JSON's escapes are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// A float that reads back as a float: always with a `.` or an exponent.
fn f(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}
