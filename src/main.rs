//! The `flow` command line: parse, set up logging, run, map to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// mimalloc rather than glibc's malloc: planning a big sweep makes a few hundred thousand
/// small allocations on both cores, and mimalloc backs them with huge pages (a no-op plan of
/// 20,001 instances took 536 page faults instead of 19,500, and 0.09 s instead of 0.13 s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`flow run -n | head`) instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    cli::init_tracing();
    cli::init_miette();
    cli::run(args)
}
