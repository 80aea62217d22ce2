//! The driver: feeds the scheduler, runs jobs through an executor, verifies and records.
//!
//! Success is recorded only after the command exited 0 and every declared output exists
//! and is digested; the record is one journal append. An instance whose upstreams re-ran
//! is checked again just before it would start, so identical upstream outputs leave it
//! untouched (early cutoff).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use crate::claim::{Claim, Claims};
use crate::digest::Digester;
use crate::executor::{Executor, Job, JobResult};
use crate::graph::{Graph, NodeId};
use crate::journal::{Entry, Journal, JournalError};
use crate::key::StoredManifest;
use crate::key_check::KeyCheck;
use crate::plan::{self, Plan};
use crate::project::Project;
use crate::scheduler::{Limits, Outcome, Scheduler};
use crate::state::{NodeRecord, RunStatus, State};

/// Options of one `flow run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub limits: Limits,
    pub keep_going: bool,
}

/// What the user is told as the run goes.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        id: String,
    },
    /// Another flow process is running this node; this run waits for it.
    Waiting {
        id: String,
    },
    Succeeded {
        id: String,
        duration: Duration,
    },
    /// Checked again after its upstreams re-ran, and found fresh.
    UpToDate {
        id: String,
    },
    Failed {
        id: String,
        why: String,
        log: std::path::PathBuf,
    },
    Skipped {
        id: String,
        because: String,
    },
    Progress {
        done: usize,
        total: usize,
        running: usize,
        failed: usize,
    },
    Interrupted,
}

/// Receives [`RunEvent`]s; the CLI renders them.
pub trait Reporter {
    fn event(&mut self, event: RunEvent);
}

/// How the run ended.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub ran: Vec<String>,
    pub up_to_date: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
    /// Left alone because a SLURM job for them (or an upstream) is still in flight.
    pub waiting: Vec<String>,
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot claim `{0}`: {1}")]
    Claim(String, std::io::Error),
    #[error("cannot digest files of `{id}`: {source}")]
    Digest { id: String, source: std::io::Error },
}

/// What finished in the background: a command, or a wait for another process's claim.
enum Finished {
    Job {
        id: NodeId,
        result: JobResult,
        duration: Duration,
        started_at: SystemTime,
    },
    Claimed {
        id: NodeId,
        claim: std::io::Result<Claim>,
    },
}

/// Which signal asked the run to stop.
async fn stop_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    match term {
        Some(t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = t.recv() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the stale instances of `plan`.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    project: &Project,
    graph: &Graph,
    plan: &Plan,
    state: &mut State,
    digester: &Digester<'_>,
    executor: &dyn Executor,
    options: &RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<RunSummary, RunError> {
    let cache = project.cache_dir();
    let journal = Journal::new(&cache);
    let claims = Claims::open(&cache).map_err(|e| RunError::Claim("(claims file)".into(), e))?;
    let mut want: Vec<bool> = plan
        .decisions
        .iter()
        .map(|d| d.as_ref().is_some_and(|d| d.is_stale()))
        .collect();
    // Instances with a SLURM job in flight, and what needs them, wait for that job.
    let mut summary = RunSummary::default();
    let mut blocked = vec![false; graph.nodes.len()];
    for id in graph.topo_order() {
        let in_flight = plan.decisions[id].as_ref().is_some_and(|d| d.in_flight());
        if want[id] && (in_flight || graph.nodes[id].deps.iter().any(|&d| blocked[d])) {
            blocked[id] = true;
            want[id] = false;
            summary.waiting.push(graph.nodes[id].id.clone());
            reporter.event(RunEvent::Skipped {
                id: graph.nodes[id].id.clone(),
                because: if in_flight {
                    "its SLURM job is still in flight".into()
                } else {
                    "an upstream SLURM job is still in flight".into()
                },
            });
        }
    }
    let total = want.iter().filter(|w| **w).count();
    let mut sched = Scheduler::new(graph, &want, options.limits, options.keep_going);
    let mut background: JoinSet<Finished> = JoinSet::new();
    // Each started node's key, with its stored manifest and key check: a gather's manifest is
    // large (the compare of a 10,000-point sweep serializes to ~1 MB), so all are computed
    // once, from borrowed parts. The manifest and check of a node just started are computed
    // once its command runs (see `record_manifests`), with the state its key was computed
    // from.
    let mut manifests: BTreeMap<NodeId, Started> = BTreeMap::new();
    let mut unrecorded: Vec<(NodeId, BTreeMap<String, crate::disk::Digest>)> = Vec::new();
    let mut attempts: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut held: HashMap<NodeId, Claim> = HashMap::new();
    let mut claimed: Vec<(NodeId, Claim)> = Vec::new();
    let mut processes = 0usize;
    let mut done = 0;
    let mut interrupted = false;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let visible_gpus: Option<Vec<String>> = std::env::var("CUDA_VISIBLE_DEVICES").ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let progress = |reporter: &mut dyn Reporter, done, sched: &Scheduler, failed: usize| {
        reporter.event(RunEvent::Progress {
            done,
            total,
            running: sched.running(),
            failed,
        });
    };
    let digest_err = |id: &str, source| RunError::Digest {
        id: id.to_string(),
        source,
    };

    loop {
        // Claim everything the limits allow; a node another process runs is waited for.
        while let Some(id) = sched.start_next() {
            let inst = &graph.nodes[id];
            match claims.try_claim(&inst.id) {
                Ok(Some(c)) => claimed.push((id, c)),
                Ok(None) => {
                    reporter.event(RunEvent::Waiting {
                        id: inst.id.clone(),
                    });
                    let claims = claims.clone();
                    let name = inst.id.clone();
                    background.spawn(async move {
                        let claim =
                            tokio::task::spawn_blocking(move || claims.claim_blocking(&name))
                                .await
                                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                        Finished::Claimed { id, claim }
                    });
                }
                Err(e) => return Err(RunError::Claim(inst.id.clone(), e)),
            }
        }
        // Start what is claimed, unless another process (or an identical upstream re-run)
        // has made it fresh in the meantime.
        let mut progressed = false;
        for (id, claim) in std::mem::take(&mut claimed) {
            let inst = &graph.nodes[id];
            record_manifests(graph, state, &mut unrecorded, &mut manifests);
            state.refresh(&cache)?;
            let inputs =
                plan::input_digests(graph, id, digester).map_err(|e| digest_err(&inst.id, e))?;
            let key = plan::key_with_inputs(graph, id, state, &inputs);
            if !is_forced(plan, id) {
                let fresh = plan::is_fresh(graph, id, &key, state.nodes.get(&inst.id), digester)
                    .map_err(|e| digest_err(&inst.id, e))?;
                if fresh {
                    tracing::debug!(node = %inst.id, "fresh after its upstreams ran");
                    sched.finish(id, Outcome::UpToDate);
                    done += 1;
                    progressed = true;
                    summary.up_to_date.push(inst.id.clone());
                    reporter.event(RunEvent::UpToDate {
                        id: inst.id.clone(),
                    });
                    progress(reporter, done, &sched, summary.failed.len());
                    continue;
                }
            }
            for out in &inst.outputs {
                if let Some(dir) = project.root.join(out).parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
            }
            // A retry of a failed run with the same outputs is the next attempt, and resumes.
            let attempt = state.next_attempt(&inst.id, &inst.outputs);
            attempts.insert(id, attempt);
            let mut env = vec![
                ("FLOW_NODE".to_string(), inst.id.clone()),
                ("FLOW_KEY".to_string(), key.clone()),
                ("FLOW_ATTEMPT".to_string(), attempt.to_string()),
                (
                    "FLOW_PROJECT".to_string(),
                    project.root.to_string_lossy().into_owned(),
                ),
                (
                    "FLOW_BIN".to_string(),
                    crate::executor::flow_bin().to_string_lossy().into_owned(),
                ),
            ];
            if attempt > 1 {
                env.push(("FLOW_RESUME".to_string(), "1".to_string()));
            }
            if inst.gpus > 0 {
                // Slots index the GPUs flow itself was given, if it was restricted.
                let slots: Vec<String> = sched
                    .gpus_of(id)
                    .iter()
                    .map(|&s| match &visible_gpus {
                        Some(list) => list
                            .get(s as usize)
                            .cloned()
                            .unwrap_or_else(|| s.to_string()),
                        None => s.to_string(),
                    })
                    .collect();
                env.push(("CUDA_VISIBLE_DEVICES".to_string(), slots.join(",")));
            }
            let job = Job {
                id: inst.id.clone(),
                command: inst.command.clone().unwrap_or_else(|| "true".into()),
                cwd: project.root.clone(),
                log: project.log_path(&inst.id),
                env,
            };
            manifests.insert(id, (None, key));
            unrecorded.push((id, inputs));
            held.insert(id, claim);
            tracing::debug!(node = %inst.id, command = %job.command, "starting");
            reporter.event(RunEvent::Started {
                id: inst.id.clone(),
            });
            progress(reporter, done, &sched, summary.failed.len());
            let fut = executor.start(job);
            let started_at = SystemTime::now();
            processes += 1;
            background.spawn(async move {
                let t = Instant::now();
                let result = fut.await;
                Finished::Job {
                    id,
                    result,
                    duration: t.elapsed(),
                    started_at,
                }
            });
        }
        if !unrecorded.is_empty() {
            // Let the commands just started spawn first: a gather's manifest takes a few
            // milliseconds to serialize, which its command need not wait for.
            tokio::task::yield_now().await;
            record_manifests(graph, state, &mut unrecorded, &mut manifests);
        }
        if progressed {
            continue;
        }
        if background.is_empty() || (interrupted && processes == 0) {
            break;
        }
        let next = tokio::select! {
            r = background.join_next() => r,
            _ = stop_signal(&mut term) => {
                // First signal: stop starting, ask children to stop. Second: kill them.
                executor.terminate_all(interrupted);
                if !interrupted {
                    interrupted = true;
                    sched.stop();
                    reporter.event(RunEvent::Interrupted);
                }
                continue;
            }
        };
        let Some(Ok(finished)) = next else {
            continue;
        };
        let (id, result, duration, started_at) = match finished {
            Finished::Claimed { id, claim: Ok(c) } => {
                if interrupted {
                    sched.finish(id, Outcome::Failed);
                } else {
                    claimed.push((id, c));
                }
                continue;
            }
            Finished::Claimed { id, claim: Err(e) } => {
                return Err(RunError::Claim(graph.nodes[id].id.clone(), e));
            }
            Finished::Job {
                id,
                result,
                duration,
                started_at,
            } => (id, result, duration, started_at),
        };
        processes -= 1;
        let inst = &graph.nodes[id];
        let (recorded, key) = manifests.remove(&id).expect("started jobs have manifests");
        let (manifest, check) = recorded.expect("manifests are recorded before waiting for jobs");
        let mut record = NodeRecord {
            id: inst.id.clone(),
            key,
            check: Some(check),
            status: RunStatus::Failed,
            exit_code: result.exit_code,
            error: result.error.clone(),
            started_at: started_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            duration_ms: duration.as_millis() as u64,
            manifest,
            outputs: BTreeMap::new(),
            attempt: Some(attempts.remove(&id).unwrap_or(1)),
        };
        let mut why = None;
        if result.success() {
            let mut missing = Vec::new();
            for out in &inst.outputs {
                match digester.path(out) {
                    Ok(Some(d)) => {
                        record.outputs.insert(out.clone(), d);
                    }
                    Ok(None) => missing.push(out.clone()),
                    Err(e) => missing.push(format!("{out} ({e})")),
                }
            }
            if missing.is_empty() {
                record.status = RunStatus::Ok;
            } else {
                let msg = format!("declared outputs missing: {}", missing.join(", "));
                record.error = Some(msg.clone());
                why = Some(msg);
            }
        } else {
            why = Some(match (&result.error, result.exit_code, result.signal) {
                (Some(e), _, _) => e.clone(),
                (None, Some(c), _) => format!("exit code {c}"),
                (None, None, Some(s)) if interrupted => format!("interrupted (signal {s})"),
                (None, None, Some(s)) => format!("killed by signal {s}"),
                _ => "failed".into(),
            });
            if interrupted && record.error.is_none() {
                record.error = Some("interrupted".into());
            }
        }
        let mut entries: Vec<Entry> = digester.take_new().into_iter().map(Entry::File).collect();
        tracing::debug!(node = %inst.id, status = ?record.status, exit = ?result.exit_code, ms = record.duration_ms, "finished");
        entries.push(Entry::Node(record));
        let appended = journal.append(&entries)?;
        let Some(Entry::Node(record)) = entries.pop() else {
            unreachable!("the node's record was pushed last");
        };
        state.skip_own(appended);
        held.remove(&id);
        let ok = record.status == RunStatus::Ok;
        state.nodes.insert(record.id.clone(), record);
        done += 1;
        summary.ran.push(inst.id.clone());
        if ok {
            sched.finish(id, Outcome::Succeeded);
            reporter.event(RunEvent::Succeeded {
                id: inst.id.clone(),
                duration,
            });
        } else {
            summary.failed.push(inst.id.clone());
            reporter.event(RunEvent::Failed {
                id: inst.id.clone(),
                why: why.unwrap_or_default(),
                log: project.log_path(&inst.id),
            });
            for s in sched.finish(id, Outcome::Failed) {
                done += 1;
                summary.skipped.push(graph.nodes[s].id.clone());
                reporter.event(RunEvent::Skipped {
                    id: graph.nodes[s].id.clone(),
                    because: format!("upstream `{}` failed", inst.id),
                });
            }
        }
        progress(reporter, done, &sched, summary.failed.len());
    }
    for s in sched.skip_unstarted() {
        summary.skipped.push(graph.nodes[s].id.clone());
        reporter.event(RunEvent::Skipped {
            id: graph.nodes[s].id.clone(),
            because: if interrupted {
                "interrupted".into()
            } else {
                "the run stopped after a failure (use --keep-going to continue)".into()
            },
        });
    }
    let rest: Vec<Entry> = digester.take_new().into_iter().map(Entry::File).collect();
    journal.append(&rest)?;
    journal.sync()?;
    summary.interrupted = interrupted;
    Ok(summary)
}

/// A started node's stored manifest with its key check (once recorded), and its key.
type Started = (Option<(StoredManifest, KeyCheck)>, String);

/// Serializes the manifests of the nodes started since the last call, with their key checks,
/// from the state their keys were computed from: called before that state changes.
fn record_manifests(
    graph: &Graph,
    state: &State,
    unrecorded: &mut Vec<(NodeId, BTreeMap<String, crate::disk::Digest>)>,
    manifests: &mut BTreeMap<NodeId, Started>,
) {
    for (id, inputs) in unrecorded.drain(..) {
        let parts = plan::manifest_parts(graph, id, state, &inputs);
        if let Some((m, _)) = manifests.get_mut(&id) {
            *m = Some((parts.stored(), parts.key_check()));
        }
    }
}

fn is_forced(plan: &Plan, id: NodeId) -> bool {
    matches!(&plan.decisions[id], Some(plan::Decision::Stale { reasons }) if reasons.contains(&plan::Reason::Forced))
}
