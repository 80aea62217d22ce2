//! flow-tasks: the built-in task kinds flow ships (`shell`, `train`, `metrics`, `compare`), the
//! experiment configs and registry they share, metrics parsing and the comparison outputs.

// Spec errors carry their source for rendering and are returned once per command.
#![allow(clippy::result_large_err)]

pub mod atomic;
pub mod compare;
mod compare_task;
mod context;
pub mod experiment;
pub mod metrics;
mod metrics_task;
pub mod policy;
pub mod registry;
mod shell;
pub mod train;

pub use compare_task::CompareTask;
pub use context::TaskContext;
pub use metrics_task::{METRICS_DIR, MetricsTask};
pub use shell::ShellTask;
pub use train::TrainTask;

use std::sync::Arc;

use flow_engine::task::TaskRegistry;

/// Every built-in task kind, sharing `ctx` (the project and the registry's run ids).
pub fn builtin(ctx: Arc<TaskContext>) -> TaskRegistry {
    let mut reg = TaskRegistry::new();
    reg.register(Box::new(ShellTask));
    reg.register(Box::new(TrainTask { ctx }));
    reg.register(Box::new(MetricsTask));
    reg.register(Box::new(CompareTask));
    reg
}
