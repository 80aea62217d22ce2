//! `metrics`: a run directory's training log parsed into a versioned metrics file.
//!
//! ```yaml
//! metrics:
//!   task: metrics
//!   needs: [train]
//! ```
//!
//! Reads the run directory its one `needs:` upstream produces (a `train` node's
//! `checkpoints/<run id>`, or any node whose first output is a run directory) and writes
//! `experiments/metrics/<run id>.json`; `flow metrics DIR` shows the same.

use flow_engine::diagnostic::SpecError;
use flow_engine::fields::Fields;
use flow_engine::task::{InstanceContext, Resolution, ResolveInstance, TaskKind, TaskTemplate};
use std::sync::Arc;

use crate::train::quote;

/// Where metrics files go, relative to the project root.
pub const METRICS_DIR: &str = "experiments/metrics";

/// The `metrics` task kind.
#[derive(Debug)]
pub struct MetricsTask;

impl TaskKind for MetricsTask {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn version(&self) -> u32 {
        1
    }

    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn parse(&self, _node: &Fields<'_>) -> Result<TaskTemplate, SpecError> {
        Ok(TaskTemplate {
            resolver: Some(Arc::new(MetricsResolver)),
            ..Default::default()
        })
    }
}

#[derive(Debug)]
struct MetricsResolver;

impl ResolveInstance for MetricsResolver {
    fn resolve(&self, inst: &InstanceContext<'_>) -> Result<Resolution, SpecError> {
        let run_dir = match inst.upstream.as_slice() {
            [one] if !one.outputs.is_empty() => one.outputs[0].clone(),
            _ => {
                return Err(SpecError::at(
                    inst.source,
                    inst.node_span,
                    format!(
                        "metrics node `{}` needs exactly one upstream that produces a run directory",
                        inst.node
                    ),
                    "write `needs: [train]`, naming the training node",
                ));
            }
        };
        let run = run_dir.rsplit('/').next().unwrap_or(&run_dir);
        let out = format!("{METRICS_DIR}/{run}.json");
        Ok(Resolution {
            command: Some(format!(
                "\"$FLOW_BIN\" metrics {} --output {}",
                quote(&run_dir),
                quote(&out)
            )),
            outputs: Some(vec![out]),
            ..Default::default()
        })
    }
}
