//! The expanded DAG: one instance per matrix combination, edges only from references.
//!
//! Built once from a checked [`WorkflowSpec`], validated (ids, outputs, inputs), then read
//! only. Instance ids are stable and readable: `train[lr=1.0e-4,lr_scheduler=cosine]`.

use std::collections::{BTreeMap, HashSet};

use foldhash::{HashMap, HashMapExt};
use std::path::{Component, Path};

use crate::diagnostic::{SpecError, choices_help};
use crate::disk::{Disk, is_glob};
use crate::task::Template;
use crate::template::{Resolved, Scope, Target, render};
use crate::workflow::{Axis, MatrixValue, NodeSpec, Param, WorkflowSpec};
use crate::yaml::Span;

/// Index of an instance in [`Graph::nodes`].
pub type NodeId = usize;

/// A declared input of one instance.
#[derive(Debug, Clone)]
pub struct Input {
    /// Project-relative path or glob.
    pub path: String,
    pub glob: bool,
    /// Set when the path is an output of a referenced upstream instance: it then enters
    /// the key through that upstream's output digests, not as an input.
    pub produced_by: Option<NodeId>,
    /// What the graph's existence check found at `path` (a file or directory that no node
    /// produces): the planner digests from it instead of asking the disk again.
    pub seen: Option<crate::disk::FileMeta>,
}

/// One runnable instance of a node.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    /// Index of the node in the workflow spec.
    pub spec: usize,
    /// (axis display name, value as written), in id order.
    pub axes: Vec<(String, String)>,
    /// Resolved parameters by dotted key (matrix values applied).
    pub params: BTreeMap<String, Param>,
    pub command: Option<String>,
    pub inputs: Vec<Input>,
    /// Project-relative output paths.
    pub outputs: Vec<String>,
    /// Upstream instances, mapped and gathered, in reference order.
    pub deps: Vec<NodeId>,
    pub dependents: Vec<NodeId>,
    pub gpus: u32,
    /// The task kind's SLURM layers (see [`crate::task::Resolution`]); shared by the
    /// instances of a node that resolve to the same layers (usually all of them).
    pub kind_resources: std::sync::Arc<KindResources>,
}

/// SLURM requests a task kind adds around the workflow's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindResources {
    pub over_workflow: crate::slurm::Resources,
    pub under_workflow: crate::slurm::Resources,
    /// Long jobs (training) requeue themselves before their time limit and resume.
    pub requeue: bool,
}

/// The sealed, validated graph of a workflow.
#[derive(Debug)]
pub struct Graph {
    pub spec: WorkflowSpec,
    pub nodes: Vec<Instance>,
    ids: HashMap<String, NodeId>,
    by_name: HashMap<String, Vec<NodeId>>,
}

/// A matrix axis with the node it belongs to; values may grow through `include:`.
struct AxisInfo {
    origin: usize,
    key: String,
    values: Vec<MatrixValue>,
}

/// Axis index -> value index, sorted by axis.
type Assignment = Vec<(usize, usize)>;

impl Graph {
    /// Expands and validates a workflow. `disk` answers whether declared inputs exist.
    pub fn build(spec: WorkflowSpec, disk: &dyn Disk) -> Result<Graph, SpecError> {
        Builder::new(&spec, disk)
            .build()
            .map(|(nodes, ids, by_name)| Graph {
                spec,
                nodes,
                ids,
                by_name,
            })
    }

    pub fn get(&self, id: &str) -> Option<NodeId> {
        self.ids.get(id).copied()
    }

    /// The spec node an instance came from.
    /// The spec node an instance was expanded from.
    pub fn node_spec_of(&self, inst: &Instance) -> &NodeSpec {
        &self.spec.nodes[inst.spec]
    }

    pub fn node_spec(&self, id: NodeId) -> &NodeSpec {
        &self.spec.nodes[self.nodes[id].spec]
    }

    /// Resolves a selector: an instance id, or a bare node name for all its instances.
    pub fn select(&self, selector: &str) -> Result<Vec<NodeId>, String> {
        if let Some(id) = self.get(selector) {
            return Ok(vec![id]);
        }
        if let Some(ids) = self.by_name.get(selector) {
            return Ok(ids.clone());
        }
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort();
        let candidates: Vec<&str> = names
            .iter()
            .copied()
            .chain(self.nodes.iter().map(|n| n.id.as_str()))
            .collect();
        let mut msg = format!("no node or instance `{selector}` in this workflow");
        let help = choices_help(selector, &candidates);
        if let Some(best) = crate::diagnostic::did_you_mean(selector, candidates.iter().copied()) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        } else if !help.is_empty() && names.len() <= 20 {
            msg.push_str(&format!("; nodes are {}", names.join(", ")));
        }
        Err(msg)
    }

    /// Instances in an order where every upstream comes first.
    pub fn topo_order(&self) -> impl Iterator<Item = NodeId> {
        0..self.nodes.len()
    }

    /// Runs of instances of one node, upstream nodes first: no instance depends on another
    /// of its own run, so each run can be processed in parallel.
    pub fn groups(&self) -> Vec<std::ops::Range<NodeId>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=self.nodes.len() {
            if i == self.nodes.len() || self.nodes[i].spec != self.nodes[start].spec {
                out.push(start..i);
                start = i;
            }
        }
        out
    }

    /// Every instance `ids` depend on, transitively, plus `ids` themselves.
    pub fn with_ancestors(&self, ids: &[NodeId]) -> Vec<bool> {
        let mut keep = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = ids.to_vec();
        while let Some(n) = stack.pop() {
            if !keep[n] {
                keep[n] = true;
                stack.extend(&self.nodes[n].deps);
            }
        }
        keep
    }
}

struct Builder<'a> {
    spec: &'a WorkflowSpec,
    disk: &'a dyn Disk,
    axes: Vec<AxisInfo>,
    nodes: Vec<Instance>,
    assignments: Vec<Assignment>,
    instances_of: Vec<Vec<NodeId>>,
}

type Built = (
    Vec<Instance>,
    HashMap<String, NodeId>,
    HashMap<String, Vec<NodeId>>,
);

impl<'a> Builder<'a> {
    fn new(spec: &'a WorkflowSpec, disk: &'a dyn Disk) -> Self {
        Builder {
            spec,
            disk,
            axes: Vec::new(),
            nodes: Vec::new(),
            assignments: Vec::new(),
            instances_of: vec![Vec::new(); spec.nodes.len()],
        }
    }

    fn err(&self, span: Span, msg: impl Into<String>, help: impl Into<String>) -> SpecError {
        SpecError::at(&self.spec.source, span, msg, help)
    }

    fn build(mut self) -> Result<Built, SpecError> {
        for idx in self.spec_order() {
            self.expand(idx)?;
        }
        tracing::debug!(instances = self.nodes.len(), "expanded");
        let mut ids: HashMap<String, NodeId> = HashMap::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(&first) = ids.get(&n.id) {
                let spec = &self.spec.nodes[n.spec];
                return Err(self
                    .err(
                        spec.name_span,
                        format!("duplicate instance id `{}`", n.id),
                        "two matrix combinations give the same id; make the values distinct",
                    )
                    .with_label(
                        self.spec.nodes[self.nodes[first].spec].name_span,
                        "first here",
                    ));
            }
            ids.insert(n.id.clone(), i);
        }
        for i in 0..self.nodes.len() {
            for k in 0..self.nodes[i].deps.len() {
                let d = self.nodes[i].deps[k];
                self.nodes[d].dependents.push(i);
            }
        }
        self.check_outputs_and_inputs(self.disk)?;
        tracing::debug!("checked outputs and inputs");
        let mut by_name: HashMap<String, Vec<NodeId>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            by_name
                .entry(self.spec.nodes[n.spec].name.clone())
                .or_default()
                .push(i);
        }
        Ok((self.nodes, ids, by_name))
    }

    /// Spec nodes, upstream first (cycles were rejected when the spec was parsed).
    fn spec_order(&self) -> Vec<usize> {
        let n = self.spec.nodes.len();
        let mut indeg = vec![0usize; n];
        let mut down: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in self.spec.nodes.iter().enumerate() {
            for r in node.needs.iter().chain(&node.gather) {
                let u = self
                    .spec
                    .node_index(&r.name)
                    .expect("references were checked");
                indeg[i] += 1;
                down[u].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            order.push(i);
            for &d in down[i].iter().rev() {
                indeg[d] -= 1;
                if indeg[d] == 0 {
                    ready.push(d);
                }
            }
        }
        order
    }

    /// The node's own combinations, as assignments over newly registered axes.
    fn own_combinations(&mut self, idx: usize) -> Result<Vec<Assignment>, SpecError> {
        let node = &self.spec.nodes[idx];
        if node.matrix.is_empty() && node.include.is_empty() {
            return Ok(vec![Vec::new()]);
        }
        let axis_defs: Vec<Axis> = if node.matrix.is_empty() {
            node.include[0]
                .entries
                .iter()
                .map(|(k, span, _)| Axis {
                    key: k.clone(),
                    key_span: *span,
                    values: Vec::new(),
                })
                .collect()
        } else {
            node.matrix.clone()
        };
        let base = self.axes.len();
        for a in &axis_defs {
            self.axes.push(AxisInfo {
                origin: idx,
                key: a.key.clone(),
                values: a.values.clone(),
            });
        }
        let axis_of = |key: &str| base + axis_defs.iter().position(|a| a.key == key).unwrap();
        let mut combos: Vec<Assignment> = if node.matrix.is_empty() {
            Vec::new()
        } else {
            let mut acc: Vec<Assignment> = vec![Vec::new()];
            for (ai, a) in axis_defs.iter().enumerate() {
                let mut next = Vec::with_capacity(acc.len() * a.values.len());
                for c in &acc {
                    for vi in 0..a.values.len() {
                        let mut c = c.clone();
                        c.push((base + ai, vi));
                        next.push(c);
                    }
                }
                acc = next;
            }
            acc
        };
        for ex in &node.exclude {
            let matches = |c: &Assignment| {
                ex.entries.iter().all(|(k, _, v)| {
                    let ax = axis_of(k);
                    c.iter()
                        .any(|&(a, vi)| a == ax && self.axes[a].values[vi].value == v.value)
                })
            };
            let before = combos.len();
            combos.retain(|c| !matches(c));
            if combos.len() == before {
                return Err(self.err(
                    ex.span,
                    "`exclude` entry matches no matrix combination",
                    "check the values against the matrix; numbers are compared by value",
                ));
            }
        }
        for inc in &node.include {
            let mut c: Assignment = Vec::new();
            for (k, _, v) in &inc.entries {
                let ax = axis_of(k);
                let values = &mut self.axes[ax].values;
                let vi = match values.iter().position(|x| x.value == v.value) {
                    Some(vi) => vi,
                    None => {
                        values.push(v.clone());
                        values.len() - 1
                    }
                };
                c.push((ax, vi));
            }
            c.sort();
            if combos.contains(&c) {
                return Err(self.err(
                    inc.span,
                    "`include` entry duplicates a combination the matrix already has",
                    "remove the entry, or change one of its values",
                ));
            }
            combos.push(c);
        }
        if combos.is_empty() {
            let span = node
                .matrix
                .first()
                .map(|a| a.key_span)
                .unwrap_or(node.name_span);
            return Err(self.err(
                span,
                "the matrix has no combinations left",
                "every combination was excluded; remove an `exclude:` entry",
            ));
        }
        Ok(combos)
    }

    fn expand(&mut self, idx: usize) -> Result<(), SpecError> {
        let own = self.own_combinations(idx)?;
        let node = &self.spec.nodes[idx];
        // Rows: (assignment, mapped upstream instances).
        let mut rows: Vec<(Assignment, Vec<NodeId>)> = vec![(Vec::new(), Vec::new())];
        for r in &node.needs {
            let u = self.spec.node_index(&r.name).expect("checked");
            let u_insts = &self.instances_of[u];
            let row_axes: HashSet<usize> = rows[0].0.iter().map(|&(a, _)| a).collect();
            let shared: Vec<usize> = self.assignments[u_insts[0]]
                .iter()
                .map(|&(a, _)| a)
                .filter(|a| row_axes.contains(a))
                .collect();
            let mut index: HashMap<Vec<usize>, Vec<NodeId>> = HashMap::new();
            for &ui in u_insts {
                index
                    .entry(project(&self.assignments[ui], &shared))
                    .or_default()
                    .push(ui);
            }
            let mut next = Vec::new();
            for (assign, deps) in &rows {
                if let Some(matches) = index.get(&project(assign, &shared)) {
                    for &ui in matches {
                        let mut a = assign.clone();
                        for &(ax, v) in &self.assignments[ui] {
                            if !row_axes.contains(&ax) {
                                a.push((ax, v));
                            }
                        }
                        let mut d = deps.clone();
                        d.push(ui);
                        next.push((a, d));
                    }
                }
            }
            rows = next;
        }
        let mut combined = Vec::with_capacity(rows.len() * own.len());
        for (assign, deps) in &rows {
            for c in &own {
                let mut a = assign.clone();
                a.extend_from_slice(c);
                combined.push((a, deps.clone()));
            }
        }
        // Gathers: every instance that agrees on the axes both sides have — the same axis,
        // or an own axis over the same dotted key (a per-size leaderboard).
        for r in &node.gather {
            let g = self.spec.node_index(&r.name).expect("checked");
            let g_insts = self.instances_of[g].clone();
            let my_axes: Vec<usize> = combined
                .first()
                .map(|c| c.0.iter().map(|&(a, _)| a).collect())
                .unwrap_or_default();
            let g_axes: Vec<usize> = self.assignments[g_insts[0]]
                .iter()
                .map(|&(a, _)| a)
                .collect();
            let axes = &self.axes;
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for &m in &my_axes {
                for &ga in &g_axes {
                    if ga == m || axes[ga].key == axes[m].key {
                        pairs.push((m, ga));
                    }
                }
            }
            let value_of = |assign: &Assignment, axis: usize| -> String {
                assign
                    .iter()
                    .find(|(a, _)| *a == axis)
                    .map(|&(a, v)| {
                        serde_json::to_string(&axes[a].values[v].value).unwrap_or_default()
                    })
                    .unwrap_or_default()
            };
            let mut index: HashMap<Vec<String>, Vec<NodeId>> = HashMap::new();
            for &gi in &g_insts {
                let k = pairs
                    .iter()
                    .map(|&(_, ga)| value_of(&self.assignments[gi], ga))
                    .collect();
                index.entry(k).or_default().push(gi);
            }
            for (assign, deps) in &mut combined {
                let k: Vec<String> = pairs.iter().map(|&(m, _)| value_of(assign, m)).collect();
                if let Some(m) = index.get(&k) {
                    deps.extend(m);
                }
            }
        }
        if combined.is_empty() {
            return Err(self.err(
                node.name_span,
                format!("node `{}` has no instances", node.name),
                "its `needs:` upstreams share matrix axes but no common values",
            ));
        }
        let names = self.display_names(combined[0].0.iter().map(|&(a, _)| a).collect());
        // Instances of one node are independent: render them on every core, straight into
        // one vector of the exact size (a fallible collect would gather them in chunks and
        // copy them again). The first failing combination, in order, is the error.
        let count = combined.len();
        let failed: std::sync::Mutex<Option<(usize, SpecError)>> = std::sync::Mutex::new(None);
        let built: Vec<Option<(Instance, Assignment)>> = {
            use rayon::prelude::*;
            let this = &*self;
            combined
                .into_par_iter()
                .enumerate()
                .map(
                    |(k, (assign, deps))| match this.instantiate(idx, &assign, &names, deps) {
                        Ok(inst) => Some((inst, sorted(assign))),
                        Err(e) => {
                            let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                            if first.as_ref().is_none_or(|(at, _)| k < *at) {
                                *first = Some((k, e));
                            }
                            None
                        }
                    },
                )
                .collect()
        };
        if let Some((_, e)) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        self.nodes.reserve_exact(count);
        self.assignments.reserve_exact(count);
        self.instances_of[idx].reserve_exact(count);
        let mut shared: Option<std::sync::Arc<KindResources>> = None;
        for (mut instance, assign) in built.into_iter().flatten() {
            // Resolvers give each instance its own copy of what is mostly one request.
            match &shared {
                Some(s) if **s == *instance.kind_resources => instance.kind_resources = s.clone(),
                _ => shared = Some(instance.kind_resources.clone()),
            }
            let id = self.nodes.len();
            self.nodes.push(instance);
            self.assignments.push(assign);
            self.instances_of[idx].push(id);
        }
        Ok(())
    }

    /// Display name per axis: the last key segment, or more where that would be ambiguous.
    fn display_names(&self, axes: Vec<usize>) -> HashMap<usize, String> {
        let last = |a: usize| self.axes[a].key.rsplit('.').next().unwrap().to_string();
        let mut out = HashMap::new();
        for &a in &axes {
            let short = last(a);
            let clash_short = axes.iter().any(|&b| b != a && last(b) == short);
            let clash_full = axes
                .iter()
                .any(|&b| b != a && self.axes[b].key == self.axes[a].key);
            let name = if clash_full {
                format!(
                    "{}.{}",
                    self.spec.nodes[self.axes[a].origin].name, self.axes[a].key
                )
            } else if clash_short {
                self.axes[a].key.clone()
            } else {
                short
            };
            out.insert(a, name);
        }
        out
    }

    fn instantiate(
        &self,
        idx: usize,
        assign: &Assignment,
        names: &HashMap<usize, String>,
        deps: Vec<NodeId>,
    ) -> Result<Instance, SpecError> {
        let node = &self.spec.nodes[idx];
        let axes: Vec<(String, String)> = assign
            .iter()
            .map(|&(a, v)| (names[&a].clone(), self.axes[a].values[v].text.clone()))
            .collect();
        let id = if axes.is_empty() {
            node.name.clone()
        } else {
            let inner: Vec<String> = axes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}[{}]", node.name, inner.join(","))
        };
        let mut params = node.params.clone();
        for &(a, v) in assign {
            let axis = &self.axes[a];
            if axis.origin == idx {
                params.retain(|k, _| {
                    !(k.starts_with(&axis.key) && k[axis.key.len()..].starts_with('.'))
                });
                params.insert(axis.key.clone(), axis.values[v].clone());
            }
        }
        let mut inst = Instance {
            id,
            spec: idx,
            axes,
            params,
            command: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            deps,
            dependents: Vec::new(),
            gpus: node.gpus,
            kind_resources: no_kind_resources(),
        };
        let src = &self.spec.source;
        let mut outputs = Vec::with_capacity(node.template.outputs.len());
        for t in &node.template.outputs {
            let path = render(
                src,
                t,
                &InstanceScope::new(self, &inst, Target::Path),
                Target::Path,
            )?;
            outputs.push(self.project_path(t, &path, "output")?);
        }
        inst.outputs = outputs;
        let mut inputs = Vec::with_capacity(node.template.inputs.len());
        for t in &node.template.inputs {
            let path = render(
                src,
                t,
                &InstanceScope::new(self, &inst, Target::Path),
                Target::Path,
            )?;
            let path = self.project_path(t, &path, "input")?;
            inputs.push(Input {
                glob: is_glob(&path),
                path,
                produced_by: None,
                seen: None,
            });
        }
        inst.inputs = inputs;
        if let Some(run) = &node.template.run {
            let cmd = render(
                src,
                run,
                &InstanceScope::new(self, &inst, Target::Command),
                Target::Command,
            )?;
            inst.command = Some(cmd);
        }
        if let Some(resolver) = &node.template.resolver {
            self.resolve(resolver.as_ref(), assign, &mut inst)?;
        }
        Ok(inst)
    }

    /// Lets the node's kind resolve the instance (see [`crate::task::ResolveInstance`]).
    fn resolve(
        &self,
        resolver: &dyn crate::task::ResolveInstance,
        assign: &Assignment,
        inst: &mut Instance,
    ) -> Result<(), SpecError> {
        use crate::task::{AxisValue, InstanceContext, UpstreamInstance};
        let node = &self.spec.nodes[inst.spec];
        let axes = assign
            .iter()
            .zip(&inst.axes)
            .map(|(&(a, v), (name, text))| AxisValue {
                name,
                value: &self.axes[a].values[v].value,
                text,
            })
            .collect();
        let upstream = inst
            .deps
            .iter()
            .map(|&d| UpstreamInstance {
                node: &self.spec.nodes[self.nodes[d].spec].name,
                id: &self.nodes[d].id,
                outputs: &self.nodes[d].outputs,
            })
            .collect();
        let ctx = InstanceContext {
            source: &self.spec.source,
            node: &node.name,
            node_span: node.name_span,
            id: &inst.id,
            axes,
            params: &inst.params,
            upstream,
        };
        let r = resolver.resolve(&ctx)?;
        if let Some(params) = r.params {
            inst.params = params;
        }
        if let Some(cmd) = r.command {
            inst.command = Some(cmd);
        }
        if let Some(outputs) = r.outputs {
            inst.outputs = outputs;
        }
        for path in r.inputs {
            inst.inputs.push(Input {
                glob: is_glob(&path),
                path,
                produced_by: None,
                seen: None,
            });
        }
        let kind = KindResources {
            over_workflow: r.resources_over_workflow,
            under_workflow: r.resources_under_workflow,
            requeue: r.requeue,
        };
        if *inst.kind_resources != kind {
            inst.kind_resources = std::sync::Arc::new(kind);
        }
        Ok(())
    }

    /// Normalises a path to project-relative form, refusing paths that leave the project.
    fn project_path(&self, t: &Template, path: &str, what: &str) -> Result<String, SpecError> {
        // Already normal (relative, no `.`, `..` or empty segments): nothing to rewrite.
        let normal = !path.starts_with('/')
            && path
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if normal && !(what == "output" && path.split('/').next() == Some(".cache")) {
            return Ok(path.to_string());
        }
        let mut parts: Vec<String> = Vec::new();
        let p = Path::new(path);
        if p.is_absolute() {
            return Err(self.err(
                t.span,
                format!("{what} path `{path}` is absolute"),
                format!(
                    "{what}s are paths relative to the project root; write `{path}` relative to it"
                ),
            ));
        }
        for c in p.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir if parts.pop().is_none() => {
                    return Err(self.err(
                            t.span,
                            format!("{what} path `{path}` is outside the project"),
                            format!("{what}s must stay inside the project directory; remove the leading `..`"),
                        ));
                }
                _ => {}
            }
        }
        if parts.is_empty() {
            return Err(self.err(
                t.span,
                format!("{what} path `{path}` names the project root itself"),
                "name a file or directory inside the project".to_string(),
            ));
        }
        if what == "output" && parts[0] == ".cache" {
            return Err(self.err(
                t.span,
                format!("output path `{path}` is inside `.cache/`"),
                "`.cache/` holds flow's own state; write outputs elsewhere",
            ));
        }
        Ok(parts.join("/"))
    }

    fn check_outputs_and_inputs(&mut self, disk: &dyn Disk) -> Result<(), SpecError> {
        let mut owner: HashMap<&str, NodeId> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in &n.outputs {
                if let Some(&first) = owner.get(o.as_str()) {
                    let spec = &self.spec.nodes[n.spec];
                    let first_spec = &self.spec.nodes[self.nodes[first].spec];
                    let span = output_span(spec);
                    return Err(self.err(
                        span,
                        format!(
                            "output `{o}` is declared by both `{}` and `{}`",
                            self.nodes[first].id, n.id
                        ),
                        "each file must have one producer; put a parameter such as `{instance}` in the path",
                    )
                    .with_label(output_span(first_spec), "also declared here"));
                }
                owner.insert(o, i);
            }
        }
        let mut produced: Vec<(NodeId, usize, NodeId)> = Vec::new();
        let mut unproduced: Vec<(NodeId, usize, Span)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let spec = &self.spec.nodes[n.spec];
            for (k, input) in n.inputs.iter().enumerate() {
                let span = spec
                    .template
                    .inputs
                    .get(k)
                    .map_or(spec.name_span, |t| t.span);
                if input.glob {
                    if n.deps.is_empty()
                        && disk.glob(&input.path).map(|v| v.is_empty()).unwrap_or(true)
                    {
                        return Err(self.err(
                            span,
                            format!("input pattern `{}` matches no files", input.path),
                            "check the pattern; paths are relative to the project root",
                        ));
                    }
                    continue;
                }
                if let Some(&p) = owner.get(input.path.as_str()) {
                    if !n.deps.contains(&p) {
                        let producer = &self.spec.nodes[self.nodes[p].spec].name;
                        return Err(self.err(
                            span,
                            format!("input `{}` is produced by `{}`, which `{}` does not reference", input.path, self.nodes[p].id, n.id),
                            format!("add `{producer}` to this node's `needs:` (or `gather:`) so it runs first"),
                        ));
                    }
                    produced.push((i, k, p));
                    continue;
                }
                unproduced.push((i, k, span));
            }
        }
        // One stat per declared input file, on every core; the first missing one is reported.
        let seen: Vec<Option<crate::disk::FileMeta>> = {
            use rayon::prelude::*;
            unproduced
                .par_iter()
                .map(|&(i, k, _)| disk.stat(&self.nodes[i].inputs[k].path).ok().flatten())
                .collect()
        };
        let missing = unproduced
            .iter()
            .zip(&seen)
            .find_map(|(u, m)| m.is_none().then_some(u));
        if let Some(&(i, k, span)) = missing {
            return Err(self.err(
                span,
                format!(
                    "input `{}` does not exist and no node produces it",
                    self.nodes[i].inputs[k].path
                ),
                "create the file, fix the path (relative to the project root), or add the node that writes it as an output",
            ));
        }
        for (i, k, p) in produced {
            self.nodes[i].inputs[k].produced_by = Some(p);
        }
        for ((i, k, _), meta) in unproduced.into_iter().zip(seen) {
            self.nodes[i].inputs[k].seen = meta;
        }
        Ok(())
    }
}

/// The kind resources of an instance no kind resolved: one shared value.
fn no_kind_resources() -> std::sync::Arc<KindResources> {
    static NONE: std::sync::LazyLock<std::sync::Arc<KindResources>> =
        std::sync::LazyLock::new(Default::default);
    NONE.clone()
}

fn output_span(spec: &NodeSpec) -> Span {
    spec.template
        .outputs
        .first()
        .map(|t| t.span)
        .unwrap_or(spec.name_span)
}

fn sorted(mut a: Assignment) -> Assignment {
    a.sort();
    a
}

fn project(a: &Assignment, axes: &[usize]) -> Vec<usize> {
    axes.iter()
        .map(|ax| {
            a.iter()
                .find(|(x, _)| x == ax)
                .map(|&(_, v)| v)
                .unwrap_or(usize::MAX)
        })
        .collect()
}

/// Placeholders visible while instantiating one node.
struct InstanceScope<'a> {
    builder: &'a Builder<'a>,
    inst: &'a Instance,
    target: Target,
}

impl<'a> InstanceScope<'a> {
    fn new(builder: &'a Builder<'a>, inst: &'a Instance, target: Target) -> Self {
        InstanceScope {
            builder,
            inst,
            target,
        }
    }

    fn outputs_of_ref(&self, kind: &str, name: &str) -> Option<Result<Resolved, String>> {
        let node = &self.builder.spec.nodes[self.inst.spec];
        let list = if kind == "needs" {
            &node.needs
        } else {
            &node.gather
        };
        if !list.iter().any(|r| r.name == name) {
            return Some(Err(format!(
                "`{name}` is not listed under `{kind}:` of this node"
            )));
        }
        if self.target == Target::Path {
            return Some(Err("upstream outputs can only be used in `run:`".into()));
        }
        let u = self.builder.spec.node_index(name)?;
        let paths: Vec<String> = self
            .inst
            .deps
            .iter()
            .filter(|&&d| self.builder.nodes[d].spec == u)
            .flat_map(|&d| self.builder.nodes[d].outputs.clone())
            .collect();
        Some(Ok(Resolved::Many(paths)))
    }
}

impl Scope for InstanceScope<'_> {
    fn resolve(&self, name: &str) -> Option<Result<Resolved, String>> {
        match name {
            "node" => {
                return Some(Ok(Resolved::One(
                    self.builder.spec.nodes[self.inst.spec].name.clone(),
                )));
            }
            "instance" => return Some(Ok(Resolved::One(instance_slug(&self.inst.id)))),
            "outputs" | "inputs" if self.target == Target::Path => {
                return Some(Err(format!("`{{{name}}}` can only be used in `run:`")));
            }
            "outputs" => return Some(Ok(Resolved::Many(self.inst.outputs.clone()))),
            "inputs" => {
                // Globs are expanded to the files that match now (sorted); files and
                // directories are passed as declared.
                let mut paths = Vec::new();
                for i in &self.inst.inputs {
                    match i.glob {
                        true => paths.extend(self.builder.disk.glob(&i.path).unwrap_or_default()),
                        false => paths.push(i.path.clone()),
                    }
                }
                return Some(Ok(Resolved::Many(paths)));
            }
            _ => {}
        }
        if let Some(rest) = name.strip_prefix("outputs.") {
            let i: usize = rest.parse().ok()?;
            return Some(
                self.inst
                    .outputs
                    .get(i)
                    .cloned()
                    .map(Resolved::One)
                    .ok_or_else(|| {
                        format!("this node declares {} outputs", self.inst.outputs.len())
                    }),
            );
        }
        if let Some(node) = name.strip_prefix("needs.") {
            return self.outputs_of_ref("needs", node);
        }
        if let Some(node) = name.strip_prefix("gather.") {
            return self.outputs_of_ref("gather", node);
        }
        if let Some(axis) = name.strip_prefix("matrix.") {
            return self
                .inst
                .axes
                .iter()
                .find(|(k, _)| k == axis)
                .map(|(_, v)| Ok(Resolved::One(v.clone())));
        }
        if let Some(p) = self.inst.params.get(name) {
            return Some(Ok(Resolved::One(p.value.to_text())));
        }
        if self
            .inst
            .params
            .keys()
            .any(|k| k.starts_with(name) && k[name.len()..].starts_with('.'))
        {
            return Some(Err(format!(
                "`{name}` is a group of parameters; use one of its keys, e.g. `{name}.<key>`"
            )));
        }
        None
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inst.params.keys().cloned().collect();
        names.extend(["instance", "node", "outputs", "inputs"].map(String::from));
        names.extend(self.inst.axes.iter().map(|(k, _)| format!("matrix.{k}")));
        let node = &self.builder.spec.nodes[self.inst.spec];
        names.extend(node.needs.iter().map(|r| format!("needs.{}", r.name)));
        names.extend(node.gather.iter().map(|r| format!("gather.{}", r.name)));
        names
    }
}

/// A file-name-safe form of an instance id: `train[lr=1e-4,s=cosine]` -> `train/lr=1e-4,s=cosine`.
pub fn instance_slug(id: &str) -> String {
    let body = match id.split_once('[') {
        Some((name, rest)) => format!("{name}/{}", rest.trim_end_matches(']')),
        None => id.to_string(),
    };
    let (head, tail) = body.split_once('/').unwrap_or((&body, ""));
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c })
            .collect()
    };
    if tail.is_empty() {
        clean(head)
    } else {
        format!("{}/{}", clean(head), clean(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::MemDisk;

    fn graph(yaml: &str) -> Graph {
        crate::task::testing::graph(yaml, &MemDisk::default())
    }

    fn deps(g: &Graph, id: &str) -> Vec<String> {
        let n = g.get(id).unwrap_or_else(|| panic!("no {id}"));
        g.nodes[n]
            .deps
            .iter()
            .map(|&d| g.nodes[d].id.clone())
            .collect()
    }

    #[test]
    fn ids_use_last_segments_and_values_as_written() {
        let g = graph(
            "nodes:\n  t:\n    matrix: {training.lr: [1.0e-4, 5e-5], model.size: [nano]}\n    run: x\n",
        );
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["t[lr=1.0e-4,size=nano]", "t[lr=5e-5,size=nano]"]);
    }

    #[test]
    fn clashing_last_segments_use_full_keys() {
        let g = graph("nodes:\n  t:\n    matrix: {a.lr: [1], b.lr: [2]}\n    run: x\n");
        assert_eq!(g.nodes[0].id, "t[a.lr=1,b.lr=2]");
    }

    #[test]
    fn needs_maps_one_to_one_and_gather_fans_in() {
        let g = graph(
            "nodes:\n  t:\n    matrix: {lr: [1, 2], s: [a, b]}\n    run: x\n  m:\n    needs: [t]\n    run: x\n  all:\n    gather: [m]\n    run: x\n",
        );
        assert_eq!(g.nodes.len(), 4 + 4 + 1);
        assert_eq!(deps(&g, "m[lr=2,s=a]"), ["t[lr=2,s=a]"]);
        assert_eq!(deps(&g, "all").len(), 4);
    }

    #[test]
    fn gather_groups_by_an_own_axis_over_the_same_key() {
        let g = graph(
            "nodes:\n  t:\n    matrix: {model_size: [nano, small], lr: [1, 2]}\n    run: x\n  board:\n    matrix: {model_size: [nano, small]}\n    gather: [t]\n    run: x\n",
        );
        assert_eq!(
            deps(&g, "board[model_size=small]"),
            ["t[model_size=small,lr=1]", "t[model_size=small,lr=2]"]
        );
    }

    #[test]
    fn include_adds_and_exclude_removes_combinations() {
        let g = graph(
            "nodes:\n  t:\n    matrix: {lr: [1, 2], s: [a, b]}\n    exclude: [{lr: 2, s: b}]\n    include: [{lr: 3, s: a}]\n    run: x\n",
        );
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["t[lr=1,s=a]", "t[lr=1,s=b]", "t[lr=2,s=a]", "t[lr=3,s=a]"]
        );
    }

    #[test]
    fn two_upstreams_over_the_same_axes_are_zipped() {
        let g = graph(
            "nodes:\n  t:\n    matrix: {lr: [1, 2]}\n    run: x\n  m:\n    needs: [t]\n    run: x\n  both:\n    needs: [t, m]\n    run: x\n",
        );
        assert_eq!(
            g.nodes.iter().filter(|n| n.id.starts_with("both")).count(),
            2
        );
        assert_eq!(deps(&g, "both[lr=2]"), ["t[lr=2]", "m[lr=2]"]);
    }
}
