//! The planner: which instances are stale, and why.
//!
//! Pure over a [`Digester`] (and through it a [`crate::disk::Disk`]) and the loaded
//! [`State`]; the same freshness check runs again in the scheduler when an upstream has
//! re-run, which is what gives early cutoff.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

use crate::digest::Digester;
use crate::graph::{Graph, NodeId};
use crate::key::{Manifest, ParamRecord};
use crate::state::{NodeRecord, RunStatus, State};

/// How one declared file differs from the last run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Modified,
}

/// One parameter's change, values as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Why an instance must run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Never ran (or its record was removed).
    New,
    Forced,
    PreviousFailed {
        exit_code: Option<i32>,
        error: Option<String>,
    },
    TaskChanged {
        old: String,
        new: String,
    },
    ParamsChanged {
        changes: Vec<ParamChange>,
    },
    CommandChanged {
        old: Option<String>,
        new: Option<String>,
    },
    OutputsChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    InputsChanged {
        files: Vec<(String, Change)>,
    },
    UpstreamChanged {
        upstream: Vec<String>,
    },
    /// An upstream instance will run first; this one is checked again afterwards.
    UpstreamStale {
        upstream: Vec<String>,
    },
    OutputMissing {
        path: String,
    },
    OutputModified {
        path: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        match self {
            Reason::New => write!(f, "new: never ran"),
            Reason::Forced => write!(f, "forced"),
            Reason::PreviousFailed { exit_code, error } => {
                write!(f, "previous run failed")?;
                if let Some(c) = exit_code {
                    write!(f, " (exit code {c})")?;
                }
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            Reason::TaskChanged { old, new } => write!(f, "task changed: {old} -> {new}"),
            Reason::ParamsChanged { changes } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{}: {} -> {}", c.key, show(&c.old), show(&c.new)))
                    .collect();
                write!(f, "parameters changed: {}", parts.join(", "))
            }
            Reason::CommandChanged { old, new } => {
                write!(f, "command changed: `{}` -> `{}`", show(old), show(new))
            }
            Reason::OutputsChanged { old, new } => write!(
                f,
                "declared outputs changed: [{}] -> [{}]",
                old.join(", "),
                new.join(", ")
            ),
            Reason::InputsChanged { files } => {
                let parts: Vec<String> = files
                    .iter()
                    .take(5)
                    .map(|(p, c)| {
                        let c = match c {
                            Change::Added => "added",
                            Change::Removed => "removed",
                            Change::Modified => "modified",
                        };
                        format!("{p} ({c})")
                    })
                    .collect();
                let more = files.len().saturating_sub(5);
                write!(f, "input changed: {}", parts.join(", "))?;
                if more > 0 {
                    write!(f, " and {more} more")?;
                }
                Ok(())
            }
            Reason::UpstreamChanged { upstream } => {
                write!(f, "upstream output changed: {}", list(upstream))
            }
            Reason::UpstreamStale { upstream } => {
                write!(f, "upstream will run first: {}", list(upstream))
            }
            Reason::OutputMissing { path } => write!(f, "output missing: {path}"),
            Reason::OutputModified { path } => {
                write!(f, "output modified since it was recorded: {path}")
            }
        }
    }
}

fn list(ids: &[String]) -> String {
    if ids.len() <= 3 {
        ids.join(", ")
    } else {
        format!("{}, {} and {} more", ids[0], ids[1], ids.len() - 2)
    }
}

/// Decision for one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Decision {
    Fresh,
    Stale { reasons: Vec<Reason> },
}

impl Decision {
    pub fn is_stale(&self) -> bool {
        matches!(self, Decision::Stale { .. })
    }
}

/// What a run will do: a decision for every selected instance.
#[derive(Debug)]
pub struct Plan {
    /// Indexed by [`NodeId`]; `None` for instances outside the selection.
    pub decisions: Vec<Option<Decision>>,
}

impl Plan {
    pub fn stale(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.as_ref().is_some_and(Decision::is_stale))
            .map(|(i, _)| i)
    }
}

/// Builds the manifest (and so the key) of an instance whose upstreams are all recorded.
pub fn manifest(
    graph: &Graph,
    id: NodeId,
    state: &State,
    digester: &Digester<'_>,
) -> io::Result<Manifest> {
    let inst = &graph.nodes[id];
    let spec = graph.node_spec(id);
    let mut inputs = BTreeMap::new();
    for input in inst.inputs.iter().filter(|i| i.produced_by.is_none()) {
        digester.input(input, &mut inputs)?;
    }
    let mut upstream = BTreeMap::new();
    for &d in &inst.deps {
        let dep = &graph.nodes[d];
        let outputs = state
            .nodes
            .get(&dep.id)
            .filter(|r| r.status == RunStatus::Ok)
            .map(|r| r.outputs.clone())
            .unwrap_or_default();
        upstream.insert(dep.id.clone(), outputs);
    }
    Ok(Manifest {
        task: spec.task.clone(),
        task_version: spec.task_version,
        params: inst
            .params
            .iter()
            .map(|(k, p)| (k.clone(), ParamRecord::new(&p.value, &p.text)))
            .collect(),
        command: inst.command.clone(),
        outputs: inst.outputs.clone(),
        inputs,
        upstream,
    })
}

/// Why an instance with this manifest is stale against its record; empty when fresh.
pub fn reasons(
    graph: &Graph,
    id: NodeId,
    current: &Manifest,
    record: Option<&NodeRecord>,
    digester: &Digester<'_>,
) -> io::Result<Vec<Reason>> {
    let Some(record) = record else {
        return Ok(vec![Reason::New]);
    };
    if record.status == RunStatus::Failed {
        return Ok(vec![Reason::PreviousFailed {
            exit_code: record.exit_code,
            error: record.error.clone(),
        }]);
    }
    if current.key() != record.key {
        let diff = diff(&record.manifest, current);
        // A key can differ in ways the manifest does not show (a new key format).
        return Ok(if diff.is_empty() {
            vec![Reason::TaskChanged {
                old: format!("{} (key format)", record.manifest.task),
                new: current.task.clone(),
            }]
        } else {
            diff
        });
    }
    for path in &graph.nodes[id].outputs {
        match digester.path(path)? {
            None => return Ok(vec![Reason::OutputMissing { path: path.clone() }]),
            Some(d) if record.outputs.get(path) != Some(&d) => {
                return Ok(vec![Reason::OutputModified { path: path.clone() }]);
            }
            Some(_) => {}
        }
    }
    Ok(Vec::new())
}

/// The key-level difference between two manifests.
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<Reason> {
    let mut out = Vec::new();
    if old.task != new.task || old.task_version != new.task_version {
        out.push(Reason::TaskChanged {
            old: format!("{} v{}", old.task, old.task_version),
            new: format!("{} v{}", new.task, new.task_version),
        });
    }
    let mut changes = Vec::new();
    let keys: std::collections::BTreeSet<&String> =
        old.params.keys().chain(new.params.keys()).collect();
    for k in keys {
        let (a, b) = (old.params.get(k), new.params.get(k));
        let same = match (a, b) {
            (Some(a), Some(b)) => a.v == b.v,
            (None, None) => true,
            _ => false,
        };
        if !same {
            changes.push(ParamChange {
                key: k.clone(),
                old: a.map(|p: &ParamRecord| p.w.clone()),
                new: b.map(|p| p.w.clone()),
            });
        }
    }
    if !changes.is_empty() {
        out.push(Reason::ParamsChanged { changes });
    }
    if old.command != new.command && out.is_empty() {
        out.push(Reason::CommandChanged {
            old: old.command.clone(),
            new: new.command.clone(),
        });
    }
    if old.outputs != new.outputs && out.is_empty() {
        out.push(Reason::OutputsChanged {
            old: old.outputs.clone(),
            new: new.outputs.clone(),
        });
    }
    let mut files = Vec::new();
    for (p, d) in &new.inputs {
        match old.inputs.get(p) {
            None => files.push((p.clone(), Change::Added)),
            Some(o) if o != d => files.push((p.clone(), Change::Modified)),
            _ => {}
        }
    }
    for p in old.inputs.keys() {
        if !new.inputs.contains_key(p) {
            files.push((p.clone(), Change::Removed));
        }
    }
    if !files.is_empty() {
        out.push(Reason::InputsChanged { files });
    }
    let ups: Vec<String> = new
        .upstream
        .iter()
        .filter(|(id, d)| old.upstream.get(*id) != Some(*d))
        .map(|(id, _)| id.clone())
        .chain(
            old.upstream
                .keys()
                .filter(|id| !new.upstream.contains_key(*id))
                .cloned(),
        )
        .collect();
    if !ups.is_empty() {
        out.push(Reason::UpstreamChanged { upstream: ups });
    }
    out
}

/// Plans the selected instances (`selected[i]`), forcing those in `forced`.
pub fn plan(
    graph: &Graph,
    state: &State,
    digester: &Digester<'_>,
    selected: &[bool],
    forced: &[bool],
) -> io::Result<Plan> {
    let mut decisions: Vec<Option<Decision>> = vec![None; graph.nodes.len()];
    for id in graph.topo_order() {
        if !selected[id] {
            continue;
        }
        let inst = &graph.nodes[id];
        let stale_ups: Vec<String> = inst
            .deps
            .iter()
            .filter(|&&d| decisions[d].as_ref().is_some_and(Decision::is_stale))
            .map(|&d| graph.nodes[d].id.clone())
            .collect();
        let mut reasons_now = Vec::new();
        if forced[id] {
            reasons_now.push(Reason::Forced);
        }
        if !stale_ups.is_empty() {
            if !state.nodes.contains_key(&inst.id) {
                reasons_now.push(Reason::New);
            }
            reasons_now.push(Reason::UpstreamStale {
                upstream: stale_ups,
            });
        } else {
            let m = manifest(graph, id, state, digester)?;
            let r = reasons(graph, id, &m, state.nodes.get(&inst.id), digester)?;
            reasons_now.extend(r);
        }
        decisions[id] = Some(if reasons_now.is_empty() {
            Decision::Fresh
        } else {
            Decision::Stale {
                reasons: reasons_now,
            }
        });
    }
    Ok(Plan { decisions })
}
