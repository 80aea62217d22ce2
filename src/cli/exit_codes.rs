//! Exit codes, documented in one place (also in README.md and docs/cli.md).

/// Everything requested is fresh or succeeded.
pub const OK: u8 = 0;
/// At least one node failed (or was skipped because an upstream failed).
pub const NODE_FAILED: u8 = 1;
/// The command line, workflow or a config is invalid; nothing ran.
pub const INVALID_INPUT: u8 = 2;
/// flow itself failed: state unreadable, disk full, cannot start processes.
pub const INTERNAL: u8 = 3;
/// Interrupted by Ctrl-C / SIGTERM.
pub const INTERRUPTED: u8 = 130;
