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
use crate::slurm::{ExitMarker, JobStatus, SlurmError};
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
        // A marker is written as the script ends: trust it over a lagging view.
        (Some(JobStatus::Pending | JobStatus::Running) | None, Some(m)) => {
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
        }
    } else {
        out.sacct_calls += 1;
        slurm_cli::observe(cli, &ids)?
    };
    if obs.source == Source::Squeue {
        out.fallback = obs.sacct_error.clone();
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
            let marker = ExitMarker::read(&project.root.join(&rec.marker))
                .ok()
                .flatten();
            let status = status_of(&obs, &rec, &marker);
            let job = rec.job.clone().unwrap_or_else(|| rec.job_name.clone());
            if !terminal(status) || (status == JobStatus::Completed && waits_on_upstream) {
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
                record.error = Some(format!(
                    "SLURM job {job} ended {}",
                    serde_json::to_value(status)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ));
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
