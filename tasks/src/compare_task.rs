//! `compare`: the leaderboard, plots and report over the runs whose metrics it gathers.
//!
//! ```yaml
//! compare:
//!   task: compare
//!   gather: [metrics]
//!   output: reports/sweep      # default: reports/<node name>
//! ```
//!
//! Runs `"$FLOW_BIN" compare --from <metrics files> --output DIR`. The node re-runs when any
//! gathered metrics file changes; inside, each output is rendered again only if the data it
//! shows changed (see [`crate::compare`]).

use std::sync::Arc;

use flow_engine::diagnostic::SpecError;
use flow_engine::fields::Fields;
use flow_engine::task::{InstanceContext, Resolution, ResolveInstance, TaskKind, TaskTemplate};

use crate::compare::Output;
use crate::train::quote;

/// The `compare` task kind.
#[derive(Debug)]
pub struct CompareTask;

impl TaskKind for CompareTask {
    fn name(&self) -> &'static str {
        "compare"
    }

    fn version(&self) -> u32 {
        1
    }

    fn keys(&self) -> &'static [&'static str] {
        &["output"]
    }

    fn parse(&self, node: &Fields<'_>) -> Result<TaskTemplate, SpecError> {
        let output = node.string("output")?.map(|(s, _)| s);
        Ok(TaskTemplate {
            resolver: Some(Arc::new(CompareResolver { output })),
            ..Default::default()
        })
    }
}

#[derive(Debug)]
struct CompareResolver {
    output: Option<String>,
}

impl ResolveInstance for CompareResolver {
    fn resolve(&self, inst: &InstanceContext<'_>) -> Result<Resolution, SpecError> {
        let files: Vec<&String> = inst
            .upstream
            .iter()
            .flat_map(|u| u.outputs.iter())
            .filter(|o| o.ends_with(".json"))
            .collect();
        if files.is_empty() {
            return Err(SpecError::at(
                inst.source,
                inst.node_span,
                format!("compare node `{}` gathers no metrics files", inst.node),
                "write `gather: [metrics]`, naming the metrics node",
            ));
        }
        let dir = self
            .output
            .clone()
            .unwrap_or_else(|| format!("reports/{}", inst.node));
        let dir = dir.trim_end_matches('/').to_string();
        let mut command = format!("\"$FLOW_BIN\" compare --output {} --from", quote(&dir));
        for f in &files {
            command.push(' ');
            command.push_str(&quote(f));
        }
        Ok(Resolution {
            command: Some(command),
            outputs: Some(
                Output::ALL
                    .iter()
                    .map(|o| format!("{dir}/{}", o.file_name()))
                    .collect(),
            ),
            ..Default::default()
        })
    }
}
