//! The seam between the engine and the task kinds built on it.
//!
//! The engine runs commands with declared inputs and outputs and knows nothing of training
//! or plotting; a task kind turns its own YAML keys into that generic shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diagnostic::SpecError;
use crate::fields::Fields;
use crate::slurm::Resources;
use crate::value::Value;
use crate::workflow::Param;
use crate::yaml::{Source, Span};

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
    /// Kinds whose instances depend on more than templates (an experiment config merged
    /// with the matrix values, a run directory from a registry) resolve each instance here.
    pub resolver: Option<Arc<dyn ResolveInstance>>,
}

/// One matrix value of an instance, for names built from them (`nano-baseline-lr5.0e-5`).
#[derive(Debug, Clone)]
pub struct AxisValue<'a> {
    /// The name the id shows (`lr`).
    pub name: &'a str,
    pub value: &'a Value,
    /// As written (`5.0e-5`).
    pub text: &'a str,
}

/// An upstream instance as a resolver sees it.
#[derive(Debug, Clone)]
pub struct UpstreamInstance<'a> {
    pub node: &'a str,
    pub id: &'a str,
    pub outputs: &'a [String],
}

/// What the engine knows of one instance when its kind resolves it.
#[derive(Debug)]
pub struct InstanceContext<'a> {
    /// The workflow file, for errors located in it.
    pub source: &'a Source,
    pub node: &'a str,
    pub node_span: Span,
    pub id: &'a str,
    pub axes: Vec<AxisValue<'a>>,
    /// The node's parameters with this instance's matrix values applied.
    pub params: &'a BTreeMap<String, Param>,
    /// `needs:` and `gather:` upstreams, in reference order.
    pub upstream: Vec<UpstreamInstance<'a>>,
}

/// A resolved instance: what replaces the template-rendered parts.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Replace the instance's parameters (and so what its key and `explain` show).
    pub params: Option<BTreeMap<String, Param>>,
    pub command: Option<String>,
    /// Project-relative paths or globs added to the declared inputs.
    pub inputs: Vec<String>,
    /// Replace the declared outputs.
    pub outputs: Option<Vec<String>>,
    /// SLURM request of the kind above the workflow's defaults (an experiment config's
    /// `resources:`); never part of the key.
    pub resources_over_workflow: Resources,
    /// SLURM request of the kind below the workflow's defaults (a model-size policy).
    pub resources_under_workflow: Resources,
    /// On SLURM, requeue the job shortly before its time limit (and after preemption) so it
    /// resumes under the same job id; for long jobs that checkpoint.
    pub requeue: bool,
}

/// Resolves instances of one node; see [`TaskTemplate::resolver`].
pub trait ResolveInstance: Send + Sync + std::fmt::Debug {
    fn resolve(&self, ctx: &InstanceContext<'_>) -> Result<Resolution, SpecError>;
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
                resolver: None,
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
