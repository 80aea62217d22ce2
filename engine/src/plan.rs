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
use crate::key::{KeyParts, Manifest, ManifestParts, ParamRecord};
use crate::key_check::{CheckedParts, KeyCheck};
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
    /// A SLURM job for it is in flight; it is neither run nor submitted again.
    InFlight {
        job: String,
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
            Reason::InFlight { job } => write!(f, "in flight on SLURM as job {job}"),
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

    /// True when a SLURM job for the instance is in flight.
    pub fn in_flight(&self) -> bool {
        matches!(self, Decision::Stale { reasons } if reasons.iter().any(|r| matches!(r, Reason::InFlight { .. })))
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

/// What a key covers of each dependency of `id`: its recorded outputs when its last run
/// succeeded, none otherwise.
fn upstream_outputs<'a>(
    graph: &'a Graph,
    id: NodeId,
    state: &'a State,
) -> BTreeMap<&'a str, &'a BTreeMap<String, crate::disk::Digest>> {
    graph.nodes[id]
        .deps
        .iter()
        .map(|&d| {
            let dep = &graph.nodes[d];
            (dep.id.as_str(), recorded_outputs(state, &dep.id))
        })
        .collect()
}

/// The output digests an upstream's key contribution is made of: those of its successful
/// record, none otherwise.
fn recorded_outputs<'a>(state: &'a State, id: &str) -> &'a BTreeMap<String, crate::disk::Digest> {
    static NO_OUTPUTS: BTreeMap<String, crate::disk::Digest> = BTreeMap::new();
    state
        .nodes
        .get(id)
        .filter(|r| r.status == RunStatus::Ok)
        .map_or(&NO_OUTPUTS, |r| &r.outputs)
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
    let inputs = input_digests(graph, id, digester)?;
    let upstream = upstream_outputs(graph, id, state)
        .into_iter()
        .map(|(dep, outputs)| (dep.to_owned(), outputs.clone()))
        .collect();
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

/// Whether the key [`manifest`] would give is `record`'s: through the record's key check when
/// it has one and it matches, else by computing the key from borrowed parts (no manifest is
/// built).
fn key_matches(
    graph: &Graph,
    id: NodeId,
    state: &State,
    digester: &Digester<'_>,
    record: &NodeRecord,
) -> io::Result<bool> {
    let inst = &graph.nodes[id];
    let mut inputs = BTreeMap::new();
    for input in inst.inputs.iter().filter(|i| i.produced_by.is_none()) {
        digester.input_as_seen(input, &mut inputs)?;
    }
    if let Some(check) = record.check
        && check == key_check(graph, id, state, &inputs)
    {
        return Ok(true);
    }
    Ok(key_with_inputs(graph, id, state, &inputs) == record.key)
}

/// The [`KeyCheck`] of what [`key_with_inputs`] covers, for the same arguments: the task, the
/// parameters, the command, the outputs, the input digests and each upstream's output digests
/// (by upstream id, as the key's map; sorted here rather than built into a map, which for a
/// gather's 10,000 upstreams costs several times more).
fn key_check(
    graph: &Graph,
    id: NodeId,
    state: &State,
    inputs: &BTreeMap<String, crate::disk::Digest>,
) -> KeyCheck {
    let inst = &graph.nodes[id];
    let spec = graph.node_spec(id);
    let mut upstream: Vec<(&str, &BTreeMap<String, crate::disk::Digest>)> = inst
        .deps
        .iter()
        .map(|&d| {
            let dep = graph.nodes[d].id.as_str();
            (dep, recorded_outputs(state, dep))
        })
        .collect();
    upstream.sort_unstable_by(|a, b| a.0.cmp(b.0));
    upstream.dedup_by(|a, b| a.0 == b.0);
    CheckedParts {
        task: &spec.task,
        task_version: spec.task_version,
        params: inst.params.iter().map(|(k, p)| (k.as_str(), &p.value)),
        command: inst.command.as_deref(),
        outputs: &inst.outputs,
        inputs,
        upstream: upstream.into_iter(),
    }
    .check()
}

/// The digests of an instance's declared inputs (files, directories and globs expanded) as
/// [`manifest`] records them, for [`key_with_inputs`] and [`manifest_parts`].
pub fn input_digests(
    graph: &Graph,
    id: NodeId,
    digester: &Digester<'_>,
) -> io::Result<BTreeMap<String, crate::disk::Digest>> {
    let mut inputs = BTreeMap::new();
    for input in graph.nodes[id]
        .inputs
        .iter()
        .filter(|i| i.produced_by.is_none())
    {
        digester.input(input, &mut inputs)?;
    }
    Ok(inputs)
}

/// The key of the manifest of `id` with these input digests.
pub fn key_with_inputs(
    graph: &Graph,
    id: NodeId,
    state: &State,
    inputs: &BTreeMap<String, crate::disk::Digest>,
) -> String {
    let inst = &graph.nodes[id];
    let spec = graph.node_spec(id);
    let values: Vec<(&str, serde_json::Value)> = inst
        .params
        .iter()
        .map(|(k, p)| (k.as_str(), ParamRecord::new(&p.value, "").v))
        .collect();
    KeyParts {
        task: &spec.task,
        task_version: spec.task_version,
        params: values.iter().map(|(k, v)| (*k, v)).collect(),
        command: &inst.command,
        outputs: &inst.outputs,
        inputs,
        upstream: upstream_outputs(graph, id, state),
    }
    .key()
}

/// The manifest of `id` with these input digests, borrowed: what [`manifest`] builds, without
/// cloning the upstream outputs (all of a gather's).
pub fn manifest_parts<'a>(
    graph: &'a Graph,
    id: NodeId,
    state: &'a State,
    inputs: &'a BTreeMap<String, crate::disk::Digest>,
) -> ManifestParts<'a> {
    let inst = &graph.nodes[id];
    let spec = graph.node_spec(id);
    ManifestParts {
        task: &spec.task,
        task_version: spec.task_version,
        params: inst
            .params
            .iter()
            .map(|(k, p)| (k.as_str(), ParamRecord::new(&p.value, &p.text)))
            .collect(),
        command: &inst.command,
        outputs: &inst.outputs,
        inputs,
        upstream: upstream_outputs(graph, id, state),
    }
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
        let old = record.manifest.parse();
        let diff = diff(&old, current);
        // A key can differ in ways the manifest does not show (a new key format).
        return Ok(if diff.is_empty() {
            vec![Reason::TaskChanged {
                old: format!("{} (key format)", old.task),
                new: current.task.clone(),
            }]
        } else {
            diff
        });
    }
    output_reasons(graph, id, record, digester)
}

/// Whether an instance whose current manifest has this key is fresh against its record:
/// [`reasons`] without explaining a changed key (which parses the recorded manifest, large
/// for a gather).
pub fn is_fresh(
    graph: &Graph,
    id: NodeId,
    key: &str,
    record: Option<&NodeRecord>,
    digester: &Digester<'_>,
) -> io::Result<bool> {
    match record {
        Some(r) if r.status == RunStatus::Ok && key == r.key => {
            Ok(output_reasons(graph, id, r, digester)?.is_empty())
        }
        _ => Ok(false),
    }
}

/// Why an instance whose key matches its record is stale: a declared output is missing or
/// differs from what was recorded. Empty when fresh.
fn output_reasons(
    graph: &Graph,
    id: NodeId,
    record: &NodeRecord,
    digester: &Digester<'_>,
) -> io::Result<Vec<Reason>> {
    for path in &graph.nodes[id].outputs {
        match digester.path_matches(path, record.outputs.get(path))? {
            None => return Ok(vec![Reason::OutputMissing { path: path.clone() }]),
            Some(false) => return Ok(vec![Reason::OutputModified { path: path.clone() }]),
            Some(true) => {}
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

/// Plans the selected instances (`selected[i]`), forcing those in `forced`. Instances of one
/// node never depend on each other, so each node's instances are planned in parallel.
pub fn plan(
    graph: &Graph,
    state: &State,
    digester: &Digester<'_>,
    selected: &[bool],
    forced: &[bool],
) -> io::Result<Plan> {
    use rayon::prelude::*;
    let mut decisions: Vec<Option<Decision>> = vec![None; graph.nodes.len()];
    for group in graph.groups() {
        let group_len = group.len();
        let decided: Vec<(NodeId, Decision)> = group
            .into_par_iter()
            .filter(|&id| selected[id])
            .map(|id| decide(graph, id, state, digester, &decisions, forced[id]).map(|d| (id, d)))
            .collect::<io::Result<_>>()?;
        for (id, d) in decided {
            decisions[id] = Some(d);
        }
        tracing::debug!(instances = group_len, "planned a node's instances");
    }
    Ok(Plan { decisions })
}

fn decide(
    graph: &Graph,
    id: NodeId,
    state: &State,
    digester: &Digester<'_>,
    decisions: &[Option<Decision>],
    forced: bool,
) -> io::Result<Decision> {
    let inst = &graph.nodes[id];
    let stale_ups: Vec<String> = inst
        .deps
        .iter()
        .filter(|&&d| decisions[d].as_ref().is_some_and(Decision::is_stale))
        .map(|&d| graph.nodes[d].id.clone())
        .collect();
    let mut reasons_now = Vec::new();
    if let Some(job) = state.jobs.get(&inst.id) {
        return Ok(Decision::Stale {
            reasons: vec![Reason::InFlight {
                job: job
                    .job
                    .clone()
                    .unwrap_or_else(|| format!("{} (unconfirmed)", job.job_name)),
            }],
        });
    }
    if forced {
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
        match state.nodes.get(&inst.id) {
            Some(record)
                if record.status == RunStatus::Ok
                    && key_matches(graph, id, state, digester, record)? =>
            {
                reasons_now.extend(output_reasons(graph, id, record, digester)?);
            }
            // Never ran: nothing to compare a manifest with (and no input worth hashing
            // before the run, which hashes them itself).
            None => reasons_now.push(Reason::New),
            record => {
                let m = manifest(graph, id, state, digester)?;
                reasons_now.extend(reasons(graph, id, &m, record, digester)?);
            }
        }
    }
    Ok(if reasons_now.is_empty() {
        Decision::Fresh
    } else {
        Decision::Stale {
            reasons: reasons_now,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::MemDisk;

    const WF: &str = "nodes:\n  a:\n    params: {training: {lr: 1.0e-4}}\n    inputs: [in.txt]\n    run: make {training.lr}\n    outputs: [a.out]\n  b:\n    needs: [a]\n    run: use\n    outputs: [b.out]\n";

    use crate::task::testing::graph;

    /// Plans everything, then "runs" every stale node by recording what the disk holds.
    fn plan_and_record(g: &Graph, state: &mut State, disk: &MemDisk) -> Vec<(String, Vec<Reason>)> {
        let all = vec![true; g.nodes.len()];
        let none = vec![false; g.nodes.len()];
        let digester = Digester::new(disk, &state.files);
        let p = plan(g, state, &digester, &all, &none).unwrap();
        let stale: Vec<(String, Vec<Reason>)> = p
            .decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                Some(Decision::Stale { reasons }) => Some((g.nodes[i].id.clone(), reasons.clone())),
                _ => None,
            })
            .collect();
        for id in g.topo_order() {
            if !p.decisions[id].as_ref().unwrap().is_stale() {
                continue;
            }
            let m = manifest(g, id, state, &digester).unwrap();
            let outputs = g.nodes[id]
                .outputs
                .iter()
                .map(|o| (o.clone(), digester.path(o).unwrap().unwrap()))
                .collect();
            let rec = NodeRecord {
                id: g.nodes[id].id.clone(),
                key: m.key(),
                check: None,
                status: RunStatus::Ok,
                exit_code: Some(0),
                error: None,
                started_at: 0,
                duration_ms: 0,
                manifest: crate::key::StoredManifest::new(&m),
                outputs,
                attempt: None,
            };
            state.nodes.insert(rec.id.clone(), rec);
        }
        stale
    }

    fn setup() -> (MemDisk, State) {
        let disk = MemDisk::default();
        disk.write("in.txt", b"data");
        disk.write("a.out", b"A");
        disk.write("b.out", b"B");
        (disk, State::default())
    }

    #[test]
    fn borrowed_manifest_parts_agree_with_the_manifest() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        plan_and_record(&g, &mut state, &disk);
        let digester = Digester::new(&disk, &state.files);
        for id in g.topo_order() {
            let m = manifest(&g, id, &state, &digester).unwrap();
            let inputs = input_digests(&g, id, &digester).unwrap();
            let parts = manifest_parts(&g, id, &state, &inputs);
            assert_eq!(
                parts.stored().text(),
                crate::key::StoredManifest::new(&m).text()
            );
            assert_eq!(key_with_inputs(&g, id, &state, &inputs), m.key());
            assert_eq!(key_check(&g, id, &state, &inputs), m.key_check());
            assert_eq!(parts.key_check(), m.key_check());
            let record = &state.nodes[&g.nodes[id].id];
            assert!(record.check.is_none());
            assert!(key_matches(&g, id, &state, &digester, record).unwrap());
        }
    }

    /// A SLURM completion records the check of the manifest it built; the planner computes
    /// the check from the graph. They agree, whatever order the gather's upstreams come in
    /// and whatever the parameter values' types.
    #[test]
    fn a_manifest_s_key_check_is_the_graph_s() {
        const GATHER: &str = "nodes:\n  n:\n    params: {cfg: {lr: 1.0e-4, name: \"x y\", steps: 3, on: true}}\n    matrix: {x: [b, a, c]}\n    run: echo {x} > {outputs.0}\n    outputs: [\"n-{x}.out\"]\n  g:\n    gather: [n]\n    run: cat n-*.out > {outputs.0}\n    outputs: [g.out]\n";
        let (disk, mut state) = setup();
        for x in ["a", "b", "c"] {
            disk.write(&format!("n-{x}.out"), x.as_bytes());
        }
        disk.write("g.out", b"bac");
        let g = graph(GATHER, &disk);
        plan_and_record(&g, &mut state, &disk);
        let digester = Digester::new(&disk, &state.files);
        let gather = g.nodes.iter().position(|n| n.id == "g").unwrap();
        let deps: Vec<&str> = g.nodes[gather]
            .deps
            .iter()
            .map(|&d| g.nodes[d].id.as_str())
            .collect();
        assert_eq!(deps, ["n[x=b]", "n[x=a]", "n[x=c]"], "not in id order");
        for id in g.topo_order() {
            let m = manifest(&g, id, &state, &digester).unwrap();
            let inputs = input_digests(&g, id, &digester).unwrap();
            assert_eq!(
                key_check(&g, id, &state, &inputs),
                m.key_check(),
                "{}",
                g.nodes[id].id
            );
            // What a local run records, from the parts its stored manifest is written from.
            assert_eq!(
                manifest_parts(&g, id, &state, &inputs).key_check(),
                m.key_check(),
                "{}",
                g.nodes[id].id
            );
        }
    }

    /// Each instance's (key, key check) in a graph of `wf` over this disk and state.
    fn keys_and_checks(wf: &str, disk: &MemDisk, state: &State) -> Vec<(String, KeyCheck)> {
        let g = graph(wf, disk);
        let digester = Digester::new(disk, &state.files);
        g.topo_order()
            .map(|id| {
                let inputs = input_digests(&g, id, &digester).unwrap();
                (
                    key_with_inputs(&g, id, state, &inputs),
                    key_check(&g, id, state, &inputs),
                )
            })
            .collect()
    }

    #[test]
    fn key_checks_change_exactly_when_keys_do() {
        let (disk, mut state) = setup();
        plan_and_record(&graph(WF, &disk), &mut state, &disk);
        let base = keys_and_checks(WF, &disk, &state);
        let same = |a: &[(String, KeyCheck)], b: &[(String, KeyCheck)]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x.0 == y.0, x.1 == y.1))
                .collect::<Vec<_>>()
        };
        // The same value written differently: same keys, same checks.
        let respelled = keys_and_checks(&WF.replace("1.0e-4", "0.0001"), &disk, &state);
        assert_eq!(same(&base, &respelled), [(true, true), (true, true)]);
        // A parameter, the command, an output path: that node's key and check change.
        for wf in [
            WF.replace("1.0e-4", "2.0e-4"),
            WF.replace("run: make", "run: remake"),
            WF.replace("[a.out]", "[a2.out]"),
        ] {
            let changed = keys_and_checks(&wf, &disk, &state);
            assert_eq!(same(&base, &changed)[0], (false, false), "{wf}");
        }
        // An input file's content.
        disk.write("in.txt", b"other data");
        let changed = keys_and_checks(WF, &disk, &state);
        assert_eq!(same(&base, &changed), [(false, false), (true, true)]);
        disk.write("in.txt", b"data");
        // An upstream's recorded outputs.
        state
            .nodes
            .get_mut("a")
            .unwrap()
            .outputs
            .insert("a.out".into(), "e".repeat(64));
        let changed = keys_and_checks(WF, &disk, &state);
        assert_eq!(same(&base, &changed), [(true, true), (false, false)]);
    }

    #[test]
    fn a_matching_key_check_spares_the_key_and_a_stale_one_does_not() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        plan_and_record(&g, &mut state, &disk);
        let digester = Digester::new(&disk, &state.files);
        let a = g.topo_order().next().unwrap();
        let inputs = input_digests(&g, a, &digester).unwrap();
        let check = key_check(&g, a, &state, &inputs);
        let mut record = state.nodes["a"].clone();
        // A record whose check matches is taken at its word: its key is not recomputed
        // (a garbled key proves it).
        record.key = "not the key".into();
        record.check = Some(check);
        assert!(key_matches(&g, a, &state, &digester, &record).unwrap());
        // A check of other inputs, or none: the key decides.
        record.check = Some(KeyCheck([0; 16]));
        assert!(!key_matches(&g, a, &state, &digester, &record).unwrap());
        record.check = None;
        assert!(!key_matches(&g, a, &state, &digester, &record).unwrap());
        record.key = state.nodes["a"].key.clone();
        record.check = Some(KeyCheck([0; 16]));
        assert!(key_matches(&g, a, &state, &digester, &record).unwrap());
    }

    #[test]
    fn new_nodes_run_once_then_are_fresh() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        let first = plan_and_record(&g, &mut state, &disk);
        assert_eq!(first[0], ("a".to_string(), vec![Reason::New]));
        assert!(matches!(
            first[1].1[..],
            [Reason::New, Reason::UpstreamStale { .. }]
        ));
        assert!(plan_and_record(&g, &mut state, &disk).is_empty());
    }

    #[test]
    fn a_parameter_change_is_a_key_level_diff_as_written() {
        let (disk, mut state) = setup();
        plan_and_record(&graph(WF, &disk), &mut state, &disk);
        let g = graph(&WF.replace("1.0e-4", "5.0e-5"), &disk);
        let stale = plan_and_record(&g, &mut state, &disk);
        assert_eq!(
            stale[0].1,
            vec![Reason::ParamsChanged {
                changes: vec![ParamChange {
                    key: "training.lr".into(),
                    old: Some("1.0e-4".into()),
                    new: Some("5.0e-5".into()),
                }]
            }]
        );
    }

    #[test]
    fn input_content_changes_are_found_and_unchanged_files_not_rehashed() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        plan_and_record(&g, &mut state, &disk);
        disk.write("in.txt", b"other");
        let stale = plan_and_record(&g, &mut state, &disk);
        assert_eq!(
            stale[0].1,
            vec![Reason::InputsChanged {
                files: vec![("in.txt".into(), Change::Modified)]
            }]
        );
        // Feed the cache the planner learnt, then plan again: nothing is hashed.
        let digester = Digester::new(&disk, &state.files);
        for r in digester.take_new() {
            state.files.insert(r.path.clone(), r);
        }
        let digester = Digester::new(&disk, &state.files);
        let all = vec![true; g.nodes.len()];
        let none = vec![false; g.nodes.len()];
        // Warm the cache once, then count hashes of a second plan.
        let _ = plan(&g, &state, &digester, &all, &none).unwrap();
        for r in digester.take_new() {
            state.files.insert(r.path.clone(), r);
        }
        let before = *disk.hashes.lock().unwrap();
        let digester = Digester::new(&disk, &state.files);
        let p = plan(&g, &state, &digester, &all, &none).unwrap();
        assert_eq!(p.stale().count(), 0);
        assert_eq!(
            *disk.hashes.lock().unwrap(),
            before,
            "unchanged files are not re-hashed"
        );
    }

    #[test]
    fn missing_and_modified_outputs_are_stale() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        plan_and_record(&g, &mut state, &disk);
        disk.write("b.out", b"edited");
        disk.remove("a.out");
        let all = vec![true; g.nodes.len()];
        let none = vec![false; g.nodes.len()];
        let digester = Digester::new(&disk, &state.files);
        let p = plan(&g, &state, &digester, &all, &none).unwrap();
        assert_eq!(
            p.decisions[0],
            Some(Decision::Stale {
                reasons: vec![Reason::OutputMissing {
                    path: "a.out".into()
                }]
            })
        );
        assert!(matches!(
            &p.decisions[1],
            Some(Decision::Stale { reasons }) if matches!(reasons[0], Reason::UpstreamStale { .. })
        ));
    }

    #[test]
    fn forced_nodes_are_stale_with_their_reason() {
        let (disk, mut state) = setup();
        let g = graph(WF, &disk);
        plan_and_record(&g, &mut state, &disk);
        let digester = Digester::new(&disk, &state.files);
        let p = plan(&g, &state, &digester, &[true, true], &[false, true]).unwrap();
        assert_eq!(p.decisions[0], Some(Decision::Fresh));
        assert_eq!(
            p.decisions[1],
            Some(Decision::Stale {
                reasons: vec![Reason::Forced]
            })
        );
    }
}
