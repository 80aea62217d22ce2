//! Reconciliation: learning from SLURM how in-flight jobs ended, and recording the results.
//!
//! One batched `sacct` call covers every in-flight job (with `squeue` when accounting is
//! down), and each job's exit marker fills in what SLURM has forgotten. A job counts as done
//! only once it completed, its marker says exit 0 and its declared outputs exist and are
//! digested here, on the submitting machine; then the final key (with upstream output
//! digests instead of provisional keys) is recorded.

use std::collections::BTreeMap;

use crate::digest::Digester;
use crate::journal::{Entry, Journal};
use crate::project::Project;
use crate::slurm::cli::{self as slurm_cli, Observation, SlurmCli, Source};
use crate::slurm::script::JobRef;
use crate::slurm::{BudgetSpent, ExitMarker, JobStatus, RequeueNote, SlurmError, SlurmState};
use crate::state::{JobPhase, JobRecord, NodeRecord, RunStatus, State};
use crate::submit::{SubmitError, parse_job_ref};

/// What one reconciliation saw.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    /// Instances recorded as succeeded.
    pub completed: Vec<String>,
    /// Instances recorded as failed, with their status.
    pub failed: Vec<(String, JobStatus, String)>,
    /// Instances still in flight, with their status and job.
    pub in_flight: Vec<(String, JobStatus, String)>,
    pub sacct_calls: usize,
    /// Set when `sacct` was unavailable and `squeue` answered instead.
    pub fallback: Option<String>,
    /// Why each instance of `failed` failed, as recorded (`SLURM job 12 ended timeout on
    /// attempt 4: its requeue budget is spent ...`).
    pub messages: BTreeMap<String, String>,
}

/// The status of a job as flow reports it, from SLURM's view and the job's exit marker.
fn status_of(obs: &Observation, rec: &JobRecord, marker: &Option<ExitMarker>) -> JobStatus {
    let seen = rec
        .job
        .as_deref()
        .and_then(parse_job_ref)
        .and_then(|r| obs.get(r))
        .map(|o| o.state.status());
    match (seen, marker) {
        // Pending with a marker: the marker is from a run SLURM requeued (preemption, node
        // failure, an admin's requeue); the job runs again and writes a new one.
        (Some(JobStatus::Pending), Some(_)) => JobStatus::Pending,
        // Terminated by SLURM (cancel, time limit, preemption, requeue): only SLURM's final
        // state says which, and a preempted or requeued job runs again.
        (Some(JobStatus::Running), Some(m)) if m.terminated() => JobStatus::Running,
        // Otherwise a marker is written as the script ends: trust it over a lagging view.
        (Some(JobStatus::Running) | None, Some(m)) => {
            if m.success() {
                JobStatus::Completed
            } else {
                JobStatus::Failed
            }
        }
        (Some(s), _) => s,
        (None, None) if rec.phase == JobPhase::Intent => JobStatus::Unknown,
        (None, None) => JobStatus::Submitted,
    }
}

/// Whether a job SLURM reports as `status` has ended for good. A preempted or node-failed
/// job has not while slurmctld could not say whether it requeued it
/// ([`Observation::unsettled`]).
fn ended(status: JobStatus, unsettled: bool) -> bool {
    match status {
        JobStatus::Preempted | JobStatus::NodeFail if unsettled => false,
        s => terminal(s),
    }
}

/// What a failed job's record says: SLURM's status, and for a `timeout` why the job did not
/// requeue itself (from its marker and its submission's [`RequeueNote`]), so a user knows
/// whether to raise `time`, `max_requeues` or `requeue_signal_secs`, or turn `requeue` on.
fn failure_message(
    job: &str,
    status: JobStatus,
    marker: Option<&ExitMarker>,
    requeue: Option<(&RequeueNote, usize)>,
) -> String {
    let mut msg = format!("SLURM job {job} ended {}", status.as_str());
    if status != JobStatus::Timeout {
        return msg;
    }
    match (marker, requeue) {
        (Some(m), Some((note, index))) => {
            let (done, spent) = note.requeues(index, m);
            if spent {
                msg.push_str(&format!(
                    " on attempt {}: its requeue budget is spent ({done} of slurm.max_requeues: {})",
                    m.attempt, note.max_requeues
                ));
            } else {
                msg.push_str(&format!(
                    " on attempt {} before it could requeue itself (raise slurm.requeue_signal_secs above {})",
                    m.attempt, note.signal_secs
                ));
            }
        }
        (Some(_), None) => msg.push_str(
            " (it does not requeue itself near its time limit; `slurm: {requeue: true}` makes it)",
        ),
        (None, _) => {}
    }
    msg
}

/// Why a job whose run ended at its start with its requeue budget spent
/// ([`ExitMarker::budget_spent`]) ended, from how its runs ended (`history`, from `sacct
/// -D`, oldest first; `None` when accounting could not say): `node_fail` when SLURM last
/// requeued it after a node failure, else `preempted`. A run that ended `REQUEUED` was
/// requeued with `scontrol requeue` (by the job itself near its time limit, or by hand).
fn spent_budget(
    job: &str,
    marker: &ExitMarker,
    spent: BudgetSpent,
    history: Option<&[SlurmState]>,
) -> (JobStatus, String) {
    let by_slurm: Vec<JobStatus> = history
        .unwrap_or(&[])
        .iter()
        .map(SlurmState::status)
        .filter(|s| matches!(s, JobStatus::Preempted | JobStatus::NodeFail))
        .collect();
    let by_itself = history
        .unwrap_or(&[])
        .iter()
        .filter(|s| **s == SlurmState::Requeued)
        .count();
    let status = by_slurm.last().copied().unwrap_or(JobStatus::Preempted);
    let mut causes: Vec<&str> = Vec::new();
    for s in &by_slurm {
        let c = if *s == JobStatus::NodeFail {
            "node failure"
        } else {
            "preemption"
        };
        if !causes.contains(&c) {
            causes.push(c);
        }
    }
    let causes = if causes.is_empty() {
        "preemption or node failure".to_string()
    } else {
        causes.join(", ")
    };
    let n = spent.requeues;
    let how = if by_itself == 0 {
        format!("requeued {n} times by SLURM ({causes})")
    } else {
        format!(
            "requeued {n} times ({} by SLURM: {causes}; {by_itself} with scontrol requeue)",
            by_slurm.len()
        )
    };
    (
        status,
        format!(
            "SLURM job {job} ended {status} on attempt {}: {how}; the requeue budget ({}) is spent",
            marker.attempt, spent.max_requeues
        ),
    )
}

/// Seconds after which an intent SLURM has never heard of is taken as never submitted
/// (another flow process may be between its intent and its `sbatch`).
const INTENT_GRACE_SECS: u64 = 60;

/// Intents whose job id was never recorded (flow died around `sbatch`): look the jobs up by
/// name with one `sacct` call; adopt the ones SLURM has, abandon the ones it never got.
fn confirm_intents(
    project: &Project,
    state: &mut State,
    cli: &dyn SlurmCli,
    out: &mut Reconciled,
) -> Result<(), SubmitError> {
    let intents: Vec<JobRecord> = state
        .jobs
        .values()
        .filter(|j| j.phase == JobPhase::Intent)
        .cloned()
        .collect();
    if intents.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = intents.iter().map(|j| j.job_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let args = vec![
        "-X".to_string(),
        "-P".to_string(),
        "-n".to_string(),
        "--format=JobID,JobName".to_string(),
        "-S".to_string(),
        "now-30days".to_string(),
        format!("--name={}", names.join(",")),
    ];
    out.sacct_calls += 1;
    let answer = cli.sacct(&args).map_err(|source| SlurmError::Spawn {
        program: crate::slurm::cli::Program::Sacct,
        source,
    })?;
    if !answer.success() {
        // Accounting down: leave the intents for a later look.
        return Ok(());
    }
    let mut base_of: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for line in answer.stdout.lines() {
        let mut parts = line.split('|');
        let (Some(id), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Some(base) = id.split('_').next().and_then(|b| b.parse::<u64>().ok()) {
            base_of.entry(name).or_insert(base);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let journal = Journal::new(&project.cache_dir());
    let mut entries = Vec::new();
    for mut rec in intents {
        match base_of.get(rec.job_name.as_str()) {
            Some(&base) => {
                let script =
                    std::fs::read_to_string(project.root.join(&rec.script)).unwrap_or_default();
                let index = std::path::Path::new(&rec.marker)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u32>().ok());
                rec.job = Some(match (script.contains("#SBATCH --array="), index) {
                    (true, Some(i)) => format!("{base}_{i}"),
                    _ => base.to_string(),
                });
                rec.phase = JobPhase::Submitted;
                entries.push(Entry::Job(rec));
            }
            None if now.saturating_sub(rec.submitted_at) > INTENT_GRACE_SECS => {
                rec.phase = JobPhase::Abandoned;
                entries.push(Entry::Job(rec));
            }
            None => {}
        }
    }
    if !entries.is_empty() {
        let appended = journal.append(&entries)?;
        journal.sync()?;
        state.skip_own(appended);
        for e in entries {
            state.apply(e);
        }
    }
    Ok(())
}

fn terminal(s: JobStatus) -> bool {
    !matches!(
        s,
        JobStatus::Submitted | JobStatus::Pending | JobStatus::Running | JobStatus::Unknown
    )
}

/// Reconciles every in-flight job of `state`, recording the ones that ended.
pub fn reconcile(
    project: &Project,
    state: &mut State,
    digester: &Digester<'_>,
    cli: &dyn SlurmCli,
) -> Result<Reconciled, SubmitError> {
    let mut out = Reconciled::default();
    if state.jobs.is_empty() {
        return Ok(out);
    }
    confirm_intents(project, state, cli, &mut out)?;
    let mut ids: Vec<u64> = state
        .jobs
        .values()
        .filter_map(|j| j.job.as_deref().and_then(parse_job_ref))
        .map(|r| r.job)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let obs = if ids.is_empty() {
        Observation {
            source: Source::Sacct,
            jobs: Vec::new(),
            sacct_error: None,
            unparsed: Vec::new(),
            unsettled: Vec::new(),
            held: Vec::new(),
        }
    } else {
        out.sacct_calls += 1;
        slurm_cli::observe(cli, &ids)?
    };
    if obs.source == Source::Squeue {
        out.fallback = obs.sacct_error.clone();
    }
    // Each job's exit marker, read once per poll.
    let markers: BTreeMap<String, Option<ExitMarker>> = state
        .jobs
        .values()
        .map(|rec| {
            let m = ExitMarker::read(&project.root.join(&rec.marker))
                .ok()
                .flatten();
            (rec.id.clone(), m)
        })
        .collect();
    let marker_of = |rec: &JobRecord| markers.get(&rec.id).cloned().flatten();
    // Jobs whose last run found their requeue budget spent: how their earlier runs ended
    // (one `sacct -D` call for all), to say whether preemption or a node failure did it.
    let spent: Vec<u64> = state
        .jobs
        .values()
        .filter(|rec| marker_of(rec).is_some_and(|m| m.budget_spent.is_some()))
        .filter_map(|rec| rec.job.as_deref().and_then(parse_job_ref))
        .map(|r| r.job)
        .collect();
    let history = if spent.is_empty() {
        Vec::new()
    } else {
        out.sacct_calls += 1;
        slurm_cli::run_history(cli, &spent).unwrap_or_default()
    };
    // Jobs SLURM or an administrator holds would wait forever, and their dependents with
    // them: cancel them (one scancel), so the dependents go too, and record why. SLURM holds
    // jobs it requeued (after too many requeues): one squeue call asks about the ones that
    // are pending again after a run (they left a marker), only while there are any.
    let mut obs = obs;
    let requeued: Vec<u64> = state
        .jobs
        .values()
        .filter(|rec| {
            let m = marker_of(rec);
            m.is_some() && status_of(&obs, rec, &m) == JobStatus::Pending
        })
        .filter_map(|rec| rec.job.as_deref().and_then(parse_job_ref))
        .map(|r| r.job)
        .filter(|j| !obs.held.iter().any(|(id, _)| id.job == *j))
        .collect();
    obs.held.extend(slurm_cli::held(cli, &requeued));
    let held_jobs: Vec<(String, JobRef, String)> = state
        .jobs
        .values()
        .filter_map(|rec| {
            let r = parse_job_ref(rec.job.as_deref()?)?;
            let (_, reason) = obs.held.iter().find(|(id, _)| id.covers(r.job, r.task))?;
            Some((rec.id.clone(), r, reason.clone()))
        })
        .collect();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    if !held_jobs.is_empty() {
        let refs: Vec<JobRef> = held_jobs.iter().map(|(_, r, _)| *r).collect();
        if slurm_cli::cancel(cli, &refs).is_ok() {
            held.extend(held_jobs.into_iter().map(|(id, _, reason)| (id, reason)));
        }
    }
    let journal = Journal::new(&project.cache_dir());
    // Upstream results first: a job's final key needs its upstreams' output digests.
    let mut pending: Vec<JobRecord> = state.jobs.values().cloned().collect();
    pending.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
    loop {
        let mut progressed = false;
        let mut rest = Vec::new();
        for rec in pending {
            let manifest = rec.manifest.parse();
            let waits_on_upstream = manifest
                .upstream
                .keys()
                .any(|u| state.jobs.contains_key(u) && *u != rec.id);
            let marker = marker_of(&rec);
            let status = if held.contains_key(&rec.id) {
                JobStatus::Failed
            } else {
                status_of(&obs, &rec, &marker)
            };
            let job = rec.job.clone().unwrap_or_else(|| rec.job_name.clone());
            let unsettled = rec
                .job
                .as_deref()
                .and_then(parse_job_ref)
                .is_some_and(|r| obs.unsettled.contains(&r.job));
            if !ended(status, unsettled) || (status == JobStatus::Completed && waits_on_upstream) {
                rest.push((rec, status));
                continue;
            }
            let mut final_manifest = manifest;
            for (up, outputs) in final_manifest.upstream.iter_mut() {
                if let Some(r) = state.nodes.get(up).filter(|r| r.status == RunStatus::Ok) {
                    *outputs = r.outputs.clone();
                }
            }
            let mut record = NodeRecord {
                id: rec.id.clone(),
                key: final_manifest.key(),
                check: Some(final_manifest.key_check()),
                status: RunStatus::Failed,
                exit_code: marker.as_ref().map(|m| m.exit_code),
                error: None,
                started_at: rec.submitted_at,
                duration_ms: marker
                    .as_ref()
                    .map(|m| m.end_time.saturating_sub(rec.submitted_at) * 1000)
                    .unwrap_or(0),
                manifest: crate::key::StoredManifest::new(&final_manifest),
                outputs: BTreeMap::new(),
                attempt: marker.as_ref().map(|m| m.attempt),
            };
            if status == JobStatus::Completed && marker.as_ref().is_none_or(ExitMarker::success) {
                let mut missing = Vec::new();
                for o in &final_manifest.outputs {
                    match digester.path(o) {
                        Ok(Some(d)) => {
                            record.outputs.insert(o.clone(), d);
                        }
                        _ => missing.push(o.clone()),
                    }
                }
                if missing.is_empty() {
                    record.status = RunStatus::Ok;
                    out.completed.push(rec.id.clone());
                } else {
                    record.error = Some(format!(
                        "SLURM job {job} completed but outputs are missing: {}",
                        missing.join(", ")
                    ));
                    out.failed
                        .push((rec.id.clone(), JobStatus::Failed, job.clone()));
                }
            } else {
                let status = if status == JobStatus::Completed {
                    JobStatus::Failed
                } else {
                    status
                };
                let note =
                    RequeueNote::read(&RequeueNote::path_for(&project.root.join(&rec.script)))
                        .ok()
                        .flatten();
                let index = std::path::Path::new(&rec.marker)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<usize>().ok())
                    .unwrap_or(0);
                let spent = marker.as_ref().and_then(|m| Some((m, m.budget_spent?)));
                let (status, message) = if let Some(reason) = held.get(&rec.id) {
                    (
                        status,
                        format!(
                            "SLURM job {job} was held ({reason}): flow cancelled it (and so SLURM its dependents) rather than wait for a release"
                        ),
                    )
                } else if let Some((m, spent)) = spent {
                    let runs: Vec<SlurmState> = parse_job_ref(&job)
                        .map(|r| {
                            history
                                .iter()
                                .filter(|(id, _)| id.covers(r.job, r.task))
                                .map(|(_, s)| s.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    spent_budget(&job, m, spent, (!runs.is_empty()).then_some(&runs[..]))
                } else {
                    let message = failure_message(
                        &job,
                        status,
                        marker.as_ref(),
                        note.as_ref().map(|n| (n, index)),
                    );
                    (status, message)
                };
                out.messages.insert(rec.id.clone(), message.clone());
                record.error = Some(message);
                out.failed.push((rec.id.clone(), status, job.clone()));
            }
            let mut entries: Vec<Entry> =
                digester.take_new().into_iter().map(Entry::File).collect();
            entries.push(Entry::Node(record));
            let appended = journal.append(&entries)?;
            state.skip_own(appended);
            for e in entries {
                state.apply(e);
            }
            progressed = true;
        }
        pending = rest.iter().map(|(r, _)| r.clone()).collect();
        if !progressed || pending.is_empty() {
            for (rec, status) in rest {
                let job = rec.job.clone().unwrap_or_else(|| rec.job_name.clone());
                out.in_flight.push((rec.id, status, job));
            }
            break;
        }
    }
    journal.sync()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Manifest, StoredManifest};
    use crate::slurm::cli::{CmdOutput, FakeSlurm, Program, observe};

    fn record(job: &str) -> JobRecord {
        JobRecord {
            id: "train".into(),
            phase: JobPhase::Submitted,
            job_name: "flow-1-1".into(),
            job: Some(job.into()),
            provisional_key: "k".into(),
            manifest: StoredManifest::new(&Manifest::default()),
            script: ".cache/slurm/flow-1-1/job.sh".into(),
            marker: ".cache/slurm/flow-1-1/0.exit".into(),
            submitted_at: 0,
        }
    }

    fn marker(exit_code: i32, end_time: u64) -> ExitMarker {
        ExitMarker {
            version: 1,
            exit_code,
            end_time,
            attempt: 1,
            job_id: "7".into(),
            budget_spent: None,
        }
    }

    /// What one poll makes of `sacct_text` (recorded `sacct -X -P -n` output).
    fn seen(sacct_text: &str, job: &str, m: Option<ExitMarker>) -> JobStatus {
        let fake = FakeSlurm::new();
        fake.answer(Program::Sacct, CmdOutput::ok(sacct_text));
        let obs = observe(&fake, &[7, 8]).unwrap();
        status_of(&obs, &record(job), &m)
    }

    /// `sacct -X -P -n --format=JobIDRaw,JobID,State,ExitCode,Elapsed,AllocTRES -j 7,8` as
    /// SLURM 22.05 prints it for a plain job and an array task that the OOM killer ended
    /// under cgroup memory enforcement (State `OUT_OF_MEMORY`, ExitCode `0:125`). Written in
    /// that shape by hand: the dev cluster has no cgroups, so it cannot produce one.
    const OOM: &str = "\
7|7|OUT_OF_MEMORY|0:125|00:41:07|billing=8,cpu=8,gres/gpu:a100=1,gres/gpu=1,mem=48G,node=1
9|8_0|OUT_OF_MEMORY|0:125|01:02:13|billing=8,cpu=8,gres/gpu:a100=1,gres/gpu=1,mem=48G,node=1
8|8_1|COMPLETED|0:0|02:00:00|billing=8,cpu=8,gres/gpu:a100=1,gres/gpu=1,mem=48G,node=1
";

    #[test]
    fn out_of_memory_from_recorded_sacct_output() {
        assert_eq!(seen(OOM, "7", None), JobStatus::OutOfMemory);
        assert_eq!(seen(OOM, "8_0", None), JobStatus::OutOfMemory);
        assert_eq!(seen(OOM, "8_1", None), JobStatus::Completed);
        // A marker from the killed command does not hide SLURM's verdict.
        assert_eq!(seen(OOM, "7", Some(marker(137, 5))), JobStatus::OutOfMemory);
        assert!(ended(JobStatus::OutOfMemory, false));
        assert_eq!(
            failure_message("7", JobStatus::OutOfMemory, None, None),
            "SLURM job 7 ended out_of_memory"
        );
    }

    #[test]
    fn a_requeued_or_preempted_run_leaves_a_marker_that_does_not_end_the_job() {
        let terminated = Some(marker(143, 100));
        // Requeued (preemption, node failure) and waiting to run again.
        assert_eq!(
            seen("7|7|PENDING|0:0|00:00:00|\n", "7", terminated.clone()),
            JobStatus::Pending
        );
        assert_eq!(
            seen("7|7|REQUEUED|0:0|00:00:00|\n", "7", terminated.clone()),
            JobStatus::Pending
        );
        // Terminated while SLURM still says running: SLURM's final state decides.
        assert_eq!(
            seen("7|7|RUNNING|0:0|00:01:00|\n", "7", terminated.clone()),
            JobStatus::Running
        );
        assert_eq!(
            seen("7|7|TIMEOUT|0:0|00:01:00|\n", "7", terminated.clone()),
            JobStatus::Timeout
        );
        // A finished run's marker still wins over a lagging RUNNING, and decides alone when
        // SLURM has forgotten the job.
        assert_eq!(
            seen("7|7|RUNNING|0:0|00:01:00|\n", "7", Some(marker(0, 100))),
            JobStatus::Completed
        );
        assert_eq!(seen("", "7", Some(marker(2, 100))), JobStatus::Failed);
        assert_eq!(seen("", "7", terminated.clone()), JobStatus::Failed);
        // PREEMPTED or NODE_FAIL (squeue found no requeue) ends the job, unless slurmctld
        // could not be asked.
        assert_eq!(
            seen("7|7|PREEMPTED|0:15|00:01:00|\n", "7", terminated.clone()),
            JobStatus::Preempted
        );
        assert!(ended(JobStatus::Preempted, false));
        assert!(ended(JobStatus::NodeFail, false));
        assert!(!ended(JobStatus::Preempted, true));
        assert!(!ended(JobStatus::NodeFail, true));
        assert!(ended(JobStatus::Timeout, true));
    }

    #[test]
    fn a_spent_budget_says_who_requeued_the_job() {
        let mut m = marker(75, 9);
        m.attempt = 3;
        let spent = BudgetSpent {
            requeues: 2,
            max_requeues: 1,
        };
        use SlurmState::*;
        assert_eq!(
            spent_budget("7", &m, spent, Some(&[Preempted, Preempted, Failed])),
            (
                JobStatus::Preempted,
                "SLURM job 7 ended preempted on attempt 3: requeued 2 times by SLURM (preemption); the requeue budget (1) is spent".to_string()
            )
        );
        let (status, msg) = spent_budget("7", &m, spent, Some(&[Preempted, NodeFail, Failed]));
        assert_eq!(status, JobStatus::NodeFail);
        assert!(msg.contains("by SLURM (preemption, node failure)"), "{msg}");
        let spent3 = BudgetSpent {
            requeues: 3,
            max_requeues: 2,
        };
        let (status, msg) = spent_budget(
            "7",
            &m,
            spent3,
            Some(&[Requeued, Preempted, Preempted, Failed]),
        );
        assert_eq!(status, JobStatus::Preempted);
        assert!(
            msg.contains("requeued 3 times (2 by SLURM: preemption; 1 with scontrol requeue); the requeue budget (2) is spent"),
            "{msg}"
        );
        // Accounting could not say: preempted, and the message says it is not sure.
        let (status, msg) = spent_budget("7", &m, spent, None);
        assert_eq!(status, JobStatus::Preempted);
        assert!(msg.contains("(preemption or node failure)"), "{msg}");
    }

    #[test]
    fn a_timeout_says_why_the_job_did_not_requeue() {
        let note = RequeueNote {
            version: RequeueNote::VERSION,
            signal_secs: 300,
            max_requeues: 3,
            first_attempts: vec![1],
        };
        let mut spent = marker(143, 1);
        spent.attempt = 4;
        assert_eq!(
            failure_message("7", JobStatus::Timeout, Some(&spent), Some((&note, 0))),
            "SLURM job 7 ended timeout on attempt 4: its requeue budget is spent (3 of slurm.max_requeues: 3)"
        );
        assert!(
            failure_message(
                "7",
                JobStatus::Timeout,
                Some(&marker(143, 1)),
                Some((&note, 0))
            )
            .contains("before it could requeue itself (raise slurm.requeue_signal_secs above 300)")
        );
        assert!(
            failure_message("7", JobStatus::Timeout, Some(&marker(143, 1)), None)
                .contains("`slurm: {requeue: true}`")
        );
        assert_eq!(
            failure_message("7", JobStatus::Failed, Some(&spent), Some((&note, 0))),
            "SLURM job 7 ended failed"
        );
    }
}
