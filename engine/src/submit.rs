//! Whole-DAG submission to SLURM: the stale sub-DAG goes in at once, as job arrays chained
//! by dependencies, and flow can exit while it runs.
//!
//! Each node's instances that are stale form one array (chunked to MaxArraySize); an array
//! depends on the jobs of its upstream instances, with `aftercorr` where the mapping is
//! one-to-one task by task, so a failing task cancels only its own dependents. Nodes are
//! submitted under provisional keys (upstream keys stand in for outputs that do not exist
//! yet); reconciliation records the final key. The intent is synced before `sbatch` and the
//! job id right after, so a crash never submits a job twice or loses one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::Digester;
use crate::graph::{Graph, NodeId};
use crate::journal::{Entry, Journal, JournalError};
use crate::key::StoredManifest;
use crate::plan::{self, Plan};
use crate::project::Project;
use crate::slurm::cli::{self as slurm_cli, SlurmCli};
use crate::slurm::script::{ArrayOptions, Dependency, DependencyKind, JobRef, Requeue};
use crate::slurm::{BatchScript, RequeueNote, ScriptTask, SlurmError};
use crate::slurm_config::SlurmSection;
use crate::state::{JobPhase, JobRecord, State};

/// What a submission did.
#[derive(Debug, Default, Clone)]
pub struct Submission {
    /// (instance id, job) in submission order.
    pub jobs: Vec<(String, String)>,
    /// Instances left for the submitting machine (`executor: local`).
    pub local: Vec<NodeId>,
    pub sbatch_calls: usize,
    pub scontrol_calls: usize,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SubmitError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot digest the inputs of `{id}`")]
    Digest {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SLURM refused the job for `{id}`{more}")]
    #[diagnostic(help(
        "the node's resources come from its `resources:`, the workflow's and configs/flow.yaml's `slurm:` sections and the command line"
    ))]
    Rejected {
        id: String,
        more: String,
        #[source]
        source: SlurmError,
    },
    #[error("cannot write the batch script for `{id}`")]
    Script {
        id: String,
        #[source]
        source: crate::slurm::ScriptError,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Slurm(#[from] SlurmError),
    #[error("cannot write the requeue note (requeue.json) beside the batch script of `{id}`")]
    Note {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The job that will produce an instance's outputs: submitted now or earlier.
fn job_of(
    submitted: &HashMap<NodeId, JobRef>,
    state: &State,
    graph: &Graph,
    id: NodeId,
) -> Option<JobRef> {
    if let Some(j) = submitted.get(&id) {
        return Some(*j);
    }
    let rec = state.jobs.get(&graph.nodes[id].id)?;
    parse_job_ref(rec.job.as_deref()?)
}

/// Parses `123` or `123_4`.
pub fn parse_job_ref(s: &str) -> Option<JobRef> {
    match s.split_once('_') {
        Some((j, t)) => Some(JobRef {
            job: j.parse().ok()?,
            task: Some(t.parse().ok()?),
        }),
        None => Some(JobRef {
            job: s.parse().ok()?,
            task: None,
        }),
    }
}

/// Submits every stale instance of `plan` that is not in flight already.
#[allow(clippy::too_many_arguments)]
pub fn submit(
    project: &Project,
    graph: &Graph,
    plan: &Plan,
    state: &mut State,
    digester: &Digester<'_>,
    cli: &dyn SlurmCli,
    settings: &SlurmSection,
    command_line: &SlurmSection,
) -> Result<Submission, SubmitError> {
    let cache = project.cache_dir();
    let journal = Journal::new(&cache);
    let mut out = Submission::default();
    let stale: Vec<bool> = plan
        .decisions
        .iter()
        .map(|d| d.as_ref().is_some_and(|d| d.is_stale() && !d.in_flight()))
        .collect();
    // Local nodes stay here, and so does everything downstream of one.
    let mut local = vec![false; graph.nodes.len()];
    for id in graph.topo_order() {
        let spec = graph.node_spec(id);
        if stale[id]
            && (spec.executor.as_deref() == Some("local")
                || graph.nodes[id].deps.iter().any(|&d| local[d]))
        {
            local[id] = true;
            out.local.push(id);
        }
    }
    let mut provisional: HashMap<NodeId, String> = HashMap::new();
    let mut submitted: HashMap<NodeId, JobRef> = HashMap::new();
    let mut max_array: Option<u32> = None;
    let batch = format!("{}-{}", now(), std::process::id());
    let mut chunk_no = 0usize;
    // One job array per node and resource request: a kind may ask differently per instance
    // (a matrix over model sizes), so a node's instances are split by their kind's layers.
    let mut batches: Vec<Vec<NodeId>> = Vec::new();
    for group in graph.groups() {
        let mut by_request: Vec<Vec<NodeId>> = Vec::new();
        for i in group.filter(|&i| stale[i] && !local[i]) {
            let request = &graph.nodes[i].kind_resources;
            match by_request
                .iter_mut()
                .find(|b| &graph.nodes[b[0]].kind_resources == request)
            {
                Some(b) => b.push(i),
                None => by_request.push(vec![i]),
            }
        }
        batches.extend(by_request);
    }
    for ids in batches {
        let section = request_for(graph, ids[0], settings, command_line);
        let kind = &graph.nodes[ids[0]].kind_resources;
        let fanned = !graph.nodes[ids[0]].axes.is_empty();
        let limit = if fanned {
            if max_array.is_none() {
                out.scontrol_calls += 1;
                max_array = Some(slurm_cli::max_array_size(cli)?);
            }
            let cluster = max_array.unwrap_or(1001).max(1);
            section
                .max_array_size
                .map_or(cluster, |m| m.min(cluster))
                .max(1) as usize
        } else {
            1
        };
        for chunk in ids.chunks(limit) {
            chunk_no += 1;
            let job_name = format!("flow-{batch}-{chunk_no}");
            let dir = cache.join("slurm").join(&job_name);
            let mut tasks = Vec::with_capacity(chunk.len());
            let mut intents = Vec::with_capacity(chunk.len());
            for (index, &id) in chunk.iter().enumerate() {
                let inst = &graph.nodes[id];
                let mut manifest =
                    plan::manifest(graph, id, state, digester).map_err(|source| {
                        SubmitError::Digest {
                            id: inst.id.clone(),
                            source,
                        }
                    })?;
                for &d in &inst.deps {
                    if let Some(key) = provisional.get(&d) {
                        manifest.upstream.insert(
                            graph.nodes[d].id.clone(),
                            BTreeMap::from([("(pending)".to_string(), key.clone())]),
                        );
                    } else if let Some(job) = state.jobs.get(&graph.nodes[d].id) {
                        manifest.upstream.insert(
                            graph.nodes[d].id.clone(),
                            BTreeMap::from([(
                                "(pending)".to_string(),
                                job.provisional_key.clone(),
                            )]),
                        );
                    }
                }
                let key = manifest.key();
                provisional.insert(id, key.clone());
                let marker = dir.join(format!("{index}.exit"));
                for o in &inst.outputs {
                    if let Some(parent) = project.root.join(o).parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                }
                tasks.push(ScriptTask {
                    node: inst.id.clone(),
                    key: key.clone(),
                    command: inst.command.clone().unwrap_or_else(|| "true".into()),
                    marker: marker.clone(),
                    log: Some(project.log_path(&inst.id)),
                    attempt: state.next_attempt(&inst.id, &inst.outputs),
                });
                intents.push(JobRecord {
                    id: inst.id.clone(),
                    phase: JobPhase::Intent,
                    job_name: job_name.clone(),
                    job: None,
                    provisional_key: key,
                    manifest: StoredManifest::new(&manifest),
                    script: rel(project, &dir.join("job.sh")),
                    marker: rel(project, &marker),
                    submitted_at: now(),
                });
            }
            let dependencies = dependencies_of(graph, chunk, &submitted, state);
            let script = BatchScript {
                job_name: job_name.clone(),
                project_root: project.root.clone(),
                output_dir: dir.clone(),
                resources: section.resources.clone(),
                tasks,
                array: fanned.then_some(ArrayOptions {
                    throttle: section.throttle,
                }),
                dependencies,
                requeue: section
                    .resources
                    .requeue
                    .unwrap_or(kind.requeue)
                    .then_some(Requeue {
                        signal_secs: section.requeue_signal_secs.unwrap_or(REQUEUE_SIGNAL_SECS),
                        max_requeues: section.resources.max_requeues.unwrap_or(MAX_REQUEUES),
                    }),
                preamble: section.preamble.clone(),
            };
            let path = dir.join("job.sh");
            let first = graph.nodes[chunk[0]].id.clone();
            script.write(&path).map_err(|source| SubmitError::Script {
                id: first.clone(),
                source,
            })?;
            if let Some(rq) = script.requeue {
                RequeueNote {
                    version: RequeueNote::VERSION,
                    signal_secs: rq.signal_secs,
                    max_requeues: rq.max_requeues,
                    first_attempts: script.tasks.iter().map(|t| t.attempt).collect(),
                }
                .write(&RequeueNote::path_for(&path))
                .map_err(|source| SubmitError::Note {
                    id: first.clone(),
                    source,
                })?;
            }
            // The intent is durable before sbatch runs.
            journal.append(&intents.iter().cloned().map(Entry::Job).collect::<Vec<_>>())?;
            journal.sync()?;
            out.sbatch_calls += 1;
            let answer = slurm_cli::submit(cli, &path);
            if let Err(SlurmError::Failed { code: Some(_), .. } | SlurmError::Spawn { .. }) =
                &answer
            {
                // sbatch refused the job or never ran: no job exists, so the intents must not
                // stay in flight (they would block the next run until the grace period). An
                // sbatch killed by a signal or printing something unexpected may have
                // submitted it: those intents stay, to be adopted by name or abandoned.
                let abandoned: Vec<Entry> = intents
                    .iter()
                    .cloned()
                    .map(|mut rec| {
                        rec.phase = JobPhase::Abandoned;
                        Entry::Job(rec)
                    })
                    .collect();
                let appended = journal.append(&abandoned)?;
                journal.sync()?;
                state.skip_own(appended);
                for e in abandoned {
                    state.apply(e);
                }
            }
            let job = answer.map_err(|source| SubmitError::Rejected {
                more: if chunk.len() > 1 {
                    format!(
                        " (and {} more instances of `{}`)",
                        chunk.len() - 1,
                        graph.node_spec(chunk[0]).name
                    )
                } else {
                    String::new()
                },
                id: first,
                source,
            })?;
            let mut done = Vec::with_capacity(chunk.len());
            for (index, (&id, mut rec)) in chunk.iter().zip(intents).enumerate() {
                let r = JobRef {
                    job,
                    task: fanned.then_some(index as u32),
                };
                rec.phase = JobPhase::Submitted;
                rec.job = Some(r.to_string());
                out.jobs.push((rec.id.clone(), r.to_string()));
                submitted.insert(id, r);
                done.push(Entry::Job(rec));
            }
            let appended = journal.append(&done)?;
            journal.sync()?;
            state.skip_own(appended);
            for e in done {
                state.apply(e);
            }
            test_hook_kill_after(out.sbatch_calls);
        }
    }
    Ok(out)
}

/// TEST HOOK, for the resilience tests only: with `FLOW_TEST_KILL_AFTER_SBATCH=N`, the process
/// dies (exit status 137, as if killed with SIGKILL, no unwinding or cleanup) right after the
/// N-th `sbatch` call of this submission and its journal record, i.e. between two chunks or
/// nodes. It is how tests interrupt a submission half-way at a deterministic point; it does
/// nothing when the variable is unset.
fn test_hook_kill_after(sbatch_calls: usize) {
    let Some(n) = std::env::var_os("FLOW_TEST_KILL_AFTER_SBATCH") else {
        return;
    };
    if n.to_str().and_then(|n| n.parse::<usize>().ok()) == Some(sbatch_calls) {
        eprintln!("flow: FLOW_TEST_KILL_AFTER_SBATCH={sbatch_calls}: dying as if killed");
        std::process::exit(137);
    }
}

fn rel(project: &Project, p: &Path) -> String {
    p.strip_prefix(&project.root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// The `--dependency` clauses of one chunk: `aftercorr` when task i needs exactly task i
/// of one upstream array, else `afterok` on every upstream job the chunk needs.
fn dependencies_of(
    graph: &Graph,
    chunk: &[NodeId],
    submitted: &HashMap<NodeId, JobRef>,
    state: &State,
) -> Vec<Dependency> {
    let per_task: Vec<Vec<JobRef>> = chunk
        .iter()
        .map(|&id| {
            graph.nodes[id]
                .deps
                .iter()
                .filter_map(|&d| job_of(submitted, state, graph, d))
                .collect()
        })
        .collect();
    if per_task.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    let corr_job = per_task[0].first().map(|r| r.job);
    let corr = chunk.len() > 1
        && per_task.iter().enumerate().all(|(i, refs)| {
            refs.len() == 1 && Some(refs[0].job) == corr_job && refs[0].task == Some(i as u32)
        });
    if corr {
        return vec![Dependency {
            kind: DependencyKind::AfterCorr,
            jobs: vec![JobRef {
                job: corr_job.expect("checked"),
                task: None,
            }],
        }];
    }
    let mut all: Vec<JobRef> = per_task.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    // Every task of an array needed: name the array once.
    let mut by_job: BTreeMap<u64, Vec<JobRef>> = BTreeMap::new();
    for r in all {
        by_job.entry(r.job).or_default().push(r);
    }
    let mut jobs = Vec::new();
    for (job, refs) in by_job {
        let whole = refs.iter().all(|r| r.task.is_some())
            && submitted
                .values()
                .chain(std::iter::empty())
                .filter(|r| r.job == job)
                .count()
                == refs.len();
        if whole || refs.iter().any(|r| r.task.is_none()) {
            jobs.push(JobRef { job, task: None });
        } else {
            jobs.extend(refs);
        }
    }
    vec![Dependency {
        kind: DependencyKind::AfterOk,
        jobs,
    }]
}

/// How long before its time limit a requeueing job is signalled (`--signal=B:USR1@N`),
/// unless `slurm.requeue_signal_secs` says otherwise.
pub const REQUEUE_SIGNAL_SECS: u32 = 300;
/// Requeues a job may go through (its own near the time limit, and SLURM's after a
/// preemption or a node failure) before it ends `timeout` or `preempted` (the per-node retry
/// budget), unless `max_requeues` (a `slurm:` section or the node's `resources:`) says
/// otherwise.
pub const MAX_REQUEUES: u32 = 3;

/// The SLURM request of one instance, layered (DESIGN §5, lowest first):
/// `configs/flow.yaml`, the kind's policy, the workflow's defaults, the kind's own request
/// (a config's `resources:`), the node, the command line.
pub fn request_for(
    graph: &Graph,
    id: NodeId,
    settings: &SlurmSection,
    command_line: &SlurmSection,
) -> SlurmSection {
    let spec = graph.node_spec(id);
    let kind = &graph.nodes[id].kind_resources;
    settings
        .overlay(&SlurmSection {
            resources: kind.under_workflow.clone(),
            ..Default::default()
        })
        .overlay(&graph.spec.slurm)
        .overlay(&SlurmSection {
            resources: kind.over_workflow.clone(),
            ..Default::default()
        })
        .overlay(&SlurmSection {
            resources: spec.resources.clone(),
            ..Default::default()
        })
        .overlay(command_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::MemDisk;
    use crate::task::testing::graph;

    /// Each node's (requeue, max_requeues) as submitted under `settings` (configs/flow.yaml).
    fn requeue_settings(
        workflow: &str,
        settings: &SlurmSection,
    ) -> Vec<(String, Option<bool>, Option<u32>)> {
        let g = graph(workflow, &MemDisk::default());
        (0..g.nodes.len())
            .map(|id| {
                let s = request_for(&g, id, settings, &SlurmSection::default());
                (
                    g.nodes[id].id.clone(),
                    s.resources.requeue,
                    s.resources.max_requeues,
                )
            })
            .collect()
    }

    #[test]
    fn the_requeue_switch_and_budget_layer_like_resources() {
        let flow_yaml = SlurmSection {
            resources: crate::slurm::Resources {
                requeue: Some(true),
                max_requeues: Some(4),
                ..Default::default()
            },
            ..Default::default()
        };
        let wf = "slurm:\n  requeue: false\nnodes:\n  a:\n    run: x\n    resources: {requeue: true}\n  b:\n    run: x\n  c:\n    run: x\n    resources: {max_requeues: 1}\n";
        assert_eq!(
            requeue_settings(wf, &flow_yaml),
            [
                ("a".to_string(), Some(true), Some(4)),
                ("b".to_string(), Some(false), Some(4)),
                ("c".to_string(), Some(false), Some(1)),
            ],
            "node over workflow over configs/flow.yaml"
        );
        // Nothing set anywhere: the task kind decides (`None`).
        assert_eq!(
            requeue_settings("nodes:\n  a:\n    run: x\n", &SlurmSection::default()),
            [("a".to_string(), None, None)]
        );
        // A node's switch, in a workflow without one, wins over the kind too.
        assert_eq!(
            requeue_settings(
                "nodes:\n  a:\n    run: x\n    resources: {requeue: false}\n",
                &flow_yaml
            ),
            [("a".to_string(), Some(false), Some(4))]
        );
    }

    #[test]
    fn a_node_requeue_switch_must_be_a_boolean() {
        let mut reg = crate::task::TaskRegistry::new();
        reg.register(Box::new(crate::task::testing::TestShell));
        let err = crate::workflow::WorkflowSpec::parse(
            crate::yaml::Source::new(
                "w.yaml",
                "nodes:\n  a:\n    run: x\n    resources: {requeue: often}\n",
            ),
            &reg,
        )
        .unwrap_err();
        assert!(err.to_string().contains("requeue"), "{err}: names the key");
    }
}
