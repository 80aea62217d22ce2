//! The seam between the engine and the task kinds built on it.
//!
//! The engine runs commands with declared inputs and outputs and knows nothing of training
//! or plotting; a task kind turns its own YAML keys into that generic shape.

use crate::diagnostic::SpecError;
use crate::fields::Fields;
use crate::yaml::Span;

/// A string with `{placeholder}`s, remembered with where it was written.
#[derive(Debug, Clone)]
pub struct Template {
    pub text: String,
    pub span: Span,
}

/// What a node of some task kind runs, before parameters are substituted.
#[derive(Debug, Clone, Default)]
pub struct TaskTemplate {
    /// Shell command; placeholders are substituted shell-quoted.
    pub run: Option<Template>,
    /// Files, directories or globs whose contents enter the node's key.
    pub inputs: Vec<Template>,
    /// Paths the node must produce; success is recorded only once all exist.
    pub outputs: Vec<Template>,
}

/// A kind of node (`shell`, later `train`, `metrics`, `compare`).
pub trait TaskKind: Send + Sync {
    /// The name written as `task:` in workflows.
    fn name(&self) -> &'static str;
    /// Bumped whenever the kind's behaviour changes, so existing results become stale.
    fn version(&self) -> u32;
    /// Node keys this kind reads in addition to the common ones.
    fn keys(&self) -> &'static [&'static str];
    /// Reads this kind's keys of one node.
    fn parse(&self, node: &Fields<'_>) -> Result<TaskTemplate, SpecError>;
}

/// The task kinds a workflow may use.
#[derive(Default)]
pub struct TaskRegistry {
    kinds: Vec<Box<dyn TaskKind>>,
}

impl TaskRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, kind: Box<dyn TaskKind>) {
        self.kinds.push(kind);
    }

    pub fn get(&self, name: &str) -> Option<&dyn TaskKind> {
        self.kinds
            .iter()
            .find(|k| k.name() == name)
            .map(|k| k.as_ref())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

#[cfg(test)]
pub mod testing {
    //! A shell-like task kind and graph builder for the engine's unit tests (the real
    //! `shell` kind lives in flow-tasks, which depends on this crate).
    use super::*;
    use crate::disk::fake::MemDisk;
    use crate::graph::Graph;
    use crate::workflow::WorkflowSpec;
    use crate::yaml::Source;

    pub struct TestShell;

    impl TaskKind for TestShell {
        fn name(&self) -> &'static str {
            "shell"
        }
        fn version(&self) -> u32 {
            1
        }
        fn keys(&self) -> &'static [&'static str] {
            &["run", "inputs", "outputs"]
        }
        fn parse(&self, f: &Fields<'_>) -> Result<TaskTemplate, SpecError> {
            let list = |k| -> Result<Vec<Template>, SpecError> {
                Ok(f.strings(k)?
                    .into_iter()
                    .map(|(text, span)| Template { text, span })
                    .collect())
            };
            Ok(TaskTemplate {
                run: f.string("run")?.map(|(text, span)| Template { text, span }),
                inputs: list("inputs")?,
                outputs: list("outputs")?,
            })
        }
    }

    /// Parses and expands a workflow against an in-memory disk.
    pub fn graph(yaml: &str, disk: &MemDisk) -> Graph {
        let mut reg = TaskRegistry::new();
        reg.register(Box::new(TestShell));
        let spec = WorkflowSpec::parse(Source::new("w.yaml", yaml), &reg).unwrap();
        Graph::build(spec, disk).unwrap()
    }
}
