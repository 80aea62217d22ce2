//! The run directory's checkpoints, seen from the loop: the log kept on resume, restoring
//! the full state from `checkpoint.safetensors`, and writing the last, periodic and best files
//! each epoch (the decisions come from `policy`).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use tch::Tensor;
use tch::nn::VarStore;

use super::checkpoint::{self, TrainState};
use super::early_stop::EarlyStopping;
use super::policy;
use super::run::{Run, TrainError, io_err};

impl Run {
    /// Fresh runs start an empty log; resumed runs keep the lines of completed epochs only
    /// (a crash between the checkpoint and the log line must not duplicate an epoch).
    pub(super) fn prepare_log(&self) -> Result<(), TrainError> {
        let path = self.opts.output_dir.join("log.txt");
        let kept = if self.state.epochs_done == 0 {
            String::new()
        } else {
            let text = fs::read_to_string(&path).unwrap_or_default();
            text.lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                        .is_some_and(|e| e < self.state.epochs_done as u64)
                })
                .map(|l| format!("{l}\n"))
                .collect()
        };
        fs::write(&path, kept).map_err(io_err(&path))
    }

    pub(super) fn restore(&mut self, path: &Path) -> Result<(), TrainError> {
        let (tensors, meta) = checkpoint::read(path)?;
        let state = checkpoint::state_of(path, &meta)?;
        if state.model != self.state.model {
            return Err(TrainError::Resume {
                path: path.to_owned(),
                message: format!(
                    "it holds a {} model, the config asks for {}",
                    state.model, self.state.model
                ),
            });
        }
        let missing = |name: String| TrainError::Resume {
            path: path.to_owned(),
            message: format!("tensor `{name}` is missing or has another shape"),
        };
        let copy = |prefix: &str, vs: &VarStore| -> Result<(), TrainError> {
            for (name, mut var) in vs.variables() {
                let key = format!("{prefix}{name}");
                let src = tensors
                    .get(&key)
                    .filter(|t| t.size() == var.size())
                    .ok_or_else(|| missing(key.clone()))?;
                tch::no_grad(|| var.copy_(src));
            }
            Ok(())
        };
        copy("model.", &self.vs)?;
        if let Some((evs, _)) = &self.ema {
            copy("ema.", evs)?;
        }
        for p in &mut self.opt.params {
            for (prefix, dst) in [
                ("optim.exp_avg.", &mut p.exp_avg),
                ("optim.exp_avg_sq.", &mut p.exp_avg_sq),
            ] {
                let key = format!("{prefix}{}", p.name);
                let src = tensors
                    .get(&key)
                    .filter(|t| t.size() == dst.size())
                    .ok_or_else(|| missing(key.clone()))?;
                tch::no_grad(|| dst.copy_(src));
            }
        }
        self.opt.step = state.optimizer_step as i64;
        self.state = TrainState {
            early_stopping: EarlyStopping {
                patience: self.cfg.training.early_stopping_patience,
                min_delta: self.cfg.training.early_stopping_min_delta,
                ..state.early_stopping.clone()
            },
            ..state
        };
        Ok(())
    }
    pub(super) fn full_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let mut add = |prefix: &str, vs: &VarStore| {
            let mut vars: Vec<_> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(vars.into_iter().map(|(n, t)| (format!("{prefix}{n}"), t)));
        };
        add("model.", &self.vs);
        if let Some((evs, _)) = &self.ema {
            add("ema.", evs);
        }
        for p in &self.opt.params {
            out.push((
                format!("optim.exp_avg.{}", p.name),
                p.exp_avg.shallow_clone(),
            ));
            out.push((
                format!("optim.exp_avg_sq.{}", p.name),
                p.exp_avg_sq.shallow_clone(),
            ));
        }
        out
    }

    pub(super) fn weights_of(vs: &VarStore) -> Vec<(String, Tensor)> {
        let mut vars: Vec<_> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    pub(super) fn save_checkpoints(
        &self,
        epoch: u32,
        best: policy::BestDecision,
    ) -> Result<(), TrainError> {
        let full = self.full_tensors();
        let meta = checkpoint::full_metadata(&self.state);
        checkpoint::write(&self.path(policy::LAST), &full, meta.clone())?;
        let every = self.cfg.checkpoints.save_every_n_epochs;
        // As the reference: multiples of `lr_drop` too, whatever the schedule.
        if policy::periodic_due(epoch, every, self.cfg.training.lr_drop) {
            checkpoint::write(&self.path(&policy::periodic_stem(epoch)), &full, meta)?;
            let existing: Vec<u32> = (0..=epoch)
                .filter(|e| self.path(&policy::periodic_stem(*e)).exists())
                .collect();
            for e in policy::prune(existing, self.cfg.checkpoints.keep_last_n) {
                let p = self.path(&policy::periodic_stem(e));
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        let best_meta = |track: &str| {
            let mut m = HashMap::new();
            m.insert("format".to_owned(), "flow-train-weights".to_owned());
            m.insert("track".to_owned(), track.to_owned());
            m.insert("epoch".to_owned(), epoch.to_string());
            m.insert("model".to_owned(), self.state.model.clone());
            m
        };
        if best.regular {
            let w = Self::weights_of(&self.vs);
            checkpoint::write(&self.path(policy::BEST_REGULAR), &w, best_meta("regular"))?;
            checkpoint::write(&self.path(policy::BEST_TOTAL), &w, best_meta("regular"))?;
        }
        if best.ema
            && let Some((evs, _)) = &self.ema
        {
            let w = Self::weights_of(evs);
            checkpoint::write(&self.path(policy::BEST_EMA), &w, best_meta("ema"))?;
            checkpoint::write(&self.path(policy::BEST_TOTAL), &w, best_meta("ema"))?;
        }
        Ok(())
    }
}
