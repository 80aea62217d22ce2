//! `flow-train synth`: writes the synthetic COCO dataset.

use std::process::ExitCode;

/// Arguments of `flow-train synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {}

/// Runs `flow-train synth`.
pub fn run(_args: SynthArgs) -> ExitCode {
    eprintln!("flow-train synth: not implemented yet");
    ExitCode::FAILURE
}
