//! `flow exec-train`: what a `train` node runs, on the local machine or in a SLURM job.
//!
//! Writes the resolved config into the run directory (with the SLURM batch policy applied,
//! which never changes the key), records what was applied in `flow-run.json`, then replaces
//! itself with the trainer: `flow-train train`, or the config's `trainer.command` with
//! `{config}`, `{model_size}`, `{output_dir}` and `{resume}` substituted.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flow_engine::yaml::Source;
use serde::{Deserialize, Serialize};

use crate::experiment::{ExperimentConfig, load_config};
use crate::policy::BatchPolicy;

use super::quote;

/// The placeholders a `trainer.command` may use.
pub const TRAINER_PLACEHOLDERS: [&str; 4] = ["config", "model_size", "output_dir", "resume"];

/// What `exec-train` applied, kept beside the run's config (`flow-run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub version: u32,
    pub batch_policy: String,
    pub batch_size: u32,
    pub grad_accum_steps: u32,
    pub attempt: u32,
    pub resume: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
    pub trainer: String,
}

/// Why a training run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Policy(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "trainer.command uses `{{{name}}}`, which flow does not know\n  help: the placeholders are {{config}}, {{model_size}}, {{output_dir}} and {{resume}}"
    )]
    Placeholder { name: String },
    #[error(
        "cannot start {program}: {source}\n  help: build flow-train (scripts/torch/install, then cargo build --release -p flow-trainer) so it sits beside flow, set FLOW_TRAIN=/path/to/flow-train, or give the config a `trainer.command`"
    )]
    Start {
        program: String,
        source: std::io::Error,
    },
}

/// Prepares the run directory and execs the trainer; returns only on failure.
pub fn exec_train(run_dir: &Path, config_yaml: &str) -> ExecError {
    match prepare(run_dir, config_yaml) {
        Ok(mut cmd) => {
            let program = format!("{:?}", cmd.get_program());
            let source = cmd.exec();
            ExecError::Start { program, source }
        }
        Err(e) => e,
    }
}

/// Everything up to the trainer's command line.
pub fn prepare(run_dir: &Path, config_yaml: &str) -> Result<Command, ExecError> {
    let config_path = run_dir.join("config.yaml");
    let source = Source::new(config_path.to_string_lossy(), config_yaml);
    let mut config = load_config(&source)
        .map_err(|e| ExecError::Config(format!("{}: {}", e.location, e.message)))?;
    let slurm_job = std::env::var("SLURM_JOB_ID").ok().filter(|s| !s.is_empty());
    // What sacct and `flow cancel` call the job: `123_4` for an array task.
    let job_ref = match (
        std::env::var("SLURM_ARRAY_JOB_ID")
            .ok()
            .filter(|s| !s.is_empty()),
        std::env::var("SLURM_ARRAY_TASK_ID")
            .ok()
            .filter(|s| !s.is_empty()),
    ) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => slurm_job.clone(),
    };
    let setting = std::env::var(BatchPolicy::ENV).ok();
    let policy = BatchPolicy::for_environment(slurm_job.is_some(), setting.as_deref())
        .map_err(ExecError::Policy)?;
    let applied = policy.apply(&mut config);
    let attempt = std::env::var("FLOW_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let resume = std::env::var("FLOW_RESUME").is_ok_and(|v| v == "1");
    std::fs::create_dir_all(run_dir).map_err(|source| ExecError::Write {
        path: run_dir.to_path_buf(),
        source,
    })?;
    write_atomic(&config_path, config.to_yaml().as_bytes())?;
    let (cmd, trainer) = command(&config, run_dir, &config_path, resume)?;
    let info = RunInfo {
        version: 1,
        batch_policy: applied.as_str().to_string(),
        batch_size: config.training.batch_size,
        grad_accum_steps: config.training.grad_accum_steps,
        attempt,
        resume,
        slurm_job_id: job_ref,
        trainer,
    };
    let text = serde_json::to_string_pretty(&info).unwrap_or_default();
    write_atomic(&run_dir.join("flow-run.json"), text.as_bytes())?;
    eprintln!(
        "flow: training {} (attempt {attempt}{}, batch {} x {} accumulation, policy {})",
        run_dir.display(),
        if resume { ", resuming" } else { "" },
        config.training.batch_size,
        config.training.grad_accum_steps,
        applied.as_str()
    );
    Ok(cmd)
}

/// Reads `flow-run.json` of a run directory, if there is one.
pub fn read_run_info(run_dir: &Path) -> Option<RunInfo> {
    let text = std::fs::read_to_string(run_dir.join("flow-run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn command(
    config: &ExperimentConfig,
    run_dir: &Path,
    config_path: &Path,
    resume: bool,
) -> Result<(Command, String), ExecError> {
    match &config.trainer {
        Some(t) => {
            let line = substitute(&t.command, |name| {
                Some(match name {
                    "config" => quote(&config_path.to_string_lossy()),
                    "model_size" => quote(config.experiment.model_size.as_str()),
                    "output_dir" => quote(&run_dir.to_string_lossy()),
                    "resume" => if resume { "--resume" } else { "" }.to_string(),
                    _ => return None,
                })
            })?;
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&line);
            // Single-process trainers must not mistake the job for a distributed launch
            // (spec/rfdetr.md §6): a set SLURM_PROCID turns DDP on in RF-DETR.
            for v in flow_engine::slurm::script::RANK_VARS {
                cmd.env_remove(v);
            }
            Ok((cmd, line))
        }
        None => {
            let program = flow_train_binary();
            let mut cmd = Command::new(&program);
            cmd.arg("train")
                .arg("--config")
                .arg(config_path)
                .arg("--output-dir")
                .arg(run_dir);
            if resume {
                cmd.arg("--resume");
            }
            Ok((cmd, program.to_string_lossy().into_owned()))
        }
    }
}

/// `FLOW_TRAIN`, else `flow-train` beside the running flow, else `flow-train` on PATH.
fn flow_train_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOW_TRAIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
        && dir.join("flow-train").is_file()
    {
        return dir.join("flow-train");
    }
    PathBuf::from("flow-train")
}

/// Replaces `{name}` by `value(name)`; an unknown name is an error.
fn substitute(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, ExecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                let v = value(name).ok_or_else(|| ExecError::Placeholder {
                    name: name.to_string(),
                })?;
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    crate::atomic::write_atomic(path, bytes).map_err(|source| ExecError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_and_unknown_ones_refused() {
        let out = substitute("python t.py --cfg {config} {resume}", |n| match n {
            "config" => Some("'a b'".into()),
            "resume" => Some("--resume".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(out, "python t.py --cfg 'a b' --resume");
        let err = substitute("x {epochs}", |_| None).unwrap_err();
        assert!(err.to_string().contains("`{epochs}`"), "{err}");
    }
}
