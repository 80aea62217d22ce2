//! `shell`: run a command with declared inputs and outputs.

use flow_engine::diagnostic::SpecError;
use flow_engine::fields::Fields;
use flow_engine::task::{TaskKind, TaskTemplate, Template};

/// A generic command node, so flow is useful beyond the built-in tasks.
pub struct ShellTask;

impl TaskKind for ShellTask {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn version(&self) -> u32 {
        1
    }

    fn keys(&self) -> &'static [&'static str] {
        &["run", "inputs", "outputs"]
    }

    fn parse(&self, node: &Fields<'_>) -> Result<TaskTemplate, SpecError> {
        let Some((text, span)) = node.string("run")? else {
            return Err(SpecError::at(
                node.source,
                node.node.span,
                "shell node has no `run:` command",
                "add `run: <command>`; use {param} placeholders for parameters",
            ));
        };
        let list = |key: &str| -> Result<Vec<Template>, SpecError> {
            Ok(node
                .strings(key)?
                .into_iter()
                .map(|(text, span)| Template { text, span })
                .collect())
        };
        Ok(TaskTemplate {
            run: Some(Template { text, span }),
            inputs: list("inputs")?,
            outputs: list("outputs")?,
            resolver: None,
        })
    }
}
