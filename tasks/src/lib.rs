//! flow-tasks: the built-in task kinds flow ships (for now `shell`).

mod shell;

pub use shell::ShellTask;

use flow_engine::task::TaskRegistry;

/// Every built-in task kind.
pub fn builtin() -> TaskRegistry {
    let mut reg = TaskRegistry::new();
    reg.register(Box::new(ShellTask));
    reg
}
