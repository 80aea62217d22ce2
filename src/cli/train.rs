//! `flow train --config F [--model-size S]`: direct training in the foreground.

use std::path::{Path, PathBuf};

use flow_tasks::train::{ForegroundError, train_foreground};

use super::{CmdResult, Failure, exit_codes, open_project};

/// Arguments of `flow train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Experiment config.
    #[arg(long, value_name = "F")]
    config: PathBuf,
    /// Model size over the config's (nano, small, medium, large, xlarge, 2xlarge, tiny).
    #[arg(long, value_name = "S")]
    model_size: Option<String>,
    /// Train again even if a run of the same resolved config completed.
    #[arg(long)]
    new: bool,
}

pub fn train(project: Option<&Path>, args: TrainArgs) -> CmdResult {
    let project = open_project(project, None)?;
    let rel = super::launch::relative(&project, &args.config)?;
    match train_foreground(
        &project.root,
        &rel,
        args.model_size.as_deref(),
        args.new,
        &project.cache_dir(),
    ) {
        Ok(run) if run.exit_code.is_none() && run.status.as_str() == "completed" => {
            println!(
                "run {} of this config is already completed: nothing to train (--new trains again)",
                run.run_id
            );
            Ok(exit_codes::OK)
        }
        Ok(run) => {
            println!("run {}: {}", run.run_id, run.status.as_str());
            Ok(match run.exit_code {
                Some(0) => exit_codes::OK,
                None => exit_codes::INTERRUPTED,
                Some(_) => exit_codes::NODE_FAILED,
            })
        }
        Err(ForegroundError::Spec(e)) => Err(Failure::invalid(*e)),
        Err(ForegroundError::Other(e)) => Err(Failure::msg(exit_codes::NODE_FAILED, e)),
    }
}
