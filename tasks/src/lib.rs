//! flow-tasks: the built-in task kinds flow ships (for now `shell`).

// Spec errors carry their source for rendering and are returned once per command.
#![allow(clippy::result_large_err)]

pub mod compare;
pub mod experiment;
pub mod metrics;
mod shell;

pub use shell::ShellTask;

use flow_engine::task::TaskRegistry;

/// Every built-in task kind.
pub fn builtin() -> TaskRegistry {
    let mut reg = TaskRegistry::new();
    reg.register(Box::new(ShellTask));
    reg
}
