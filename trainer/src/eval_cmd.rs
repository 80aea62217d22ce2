//! `flow-train eval`: evaluates a COCO results file against its annotations.

use std::process::ExitCode;

/// Arguments of `flow-train eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {}

/// Runs `flow-train eval`.
pub fn run(_args: EvalArgs) -> ExitCode {
    eprintln!("flow-train eval: not implemented yet");
    ExitCode::FAILURE
}
