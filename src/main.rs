//! The `flow` command line: parse, set up logging, run, map to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    cli::init_miette();
    cli::run(args)
}
