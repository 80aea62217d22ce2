//! Keeps registry entries in step with the engine's state, SLURM and the runs' logs.

use std::collections::HashMap;
use std::path::Path;

use flow_engine::slurm::JobStatus;
use flow_engine::state::{RunStatus, State};

use super::clock::{rfc3339, unix_now};
use super::entry::{Entry, Status};
use super::metrics_cache::MetricsCache;
use super::store::Registry;
use crate::train::exec::read_run_info;

/// What SLURM said in this command's reconciliation: instance -> (status, job id).
pub type LiveStatus = HashMap<String, (JobStatus, String)>;

/// Updates every entry from the engine's records, SLURM's answers and the run's log;
/// returns how many entries changed.
pub fn sync(
    reg: &mut Registry,
    root: &Path,
    state: &State,
    live: &LiveStatus,
    cache: &mut MetricsCache,
) -> usize {
    let now = rfc3339(unix_now());
    let mut changed = 0;
    for entry in &mut reg.experiments {
        let before = entry.clone();
        update_status(entry, state, live);
        let dir = resolve(root, &entry.output_dir);
        // A run directory that is gone (or elsewhere, for imported entries) keeps the
        // metrics last known.
        if entry.status != Status::Pending && entry.status != Status::Submitted && dir.is_dir() {
            let m = cache.get(&entry.output_dir, &dir);
            entry.best = m.best;
            entry.metrics_problems = m.problems;
            // Read once per run (every run info names its policy): not on every status.
            if entry.provenance.batch_policy.is_none()
                && let Some(info) = read_run_info(&dir)
            {
                entry.provenance.batch_policy = Some(info.batch_policy);
                // The job id, also for runs reconciled after their job left the queue.
                if entry.slurm_job_id.is_none() {
                    entry.slurm_job_id = info.slurm_job_id;
                }
            }
        }
        if *entry != before {
            entry.updated_at = now.clone();
            changed += 1;
        }
    }
    changed
}

fn resolve(root: &Path, dir: &str) -> std::path::PathBuf {
    if Path::new(dir).is_absolute() {
        dir.into()
    } else {
        root.join(dir)
    }
}

fn update_status(entry: &mut Entry, state: &State, live: &LiveStatus) {
    let Some(instance) = entry.instance.clone() else {
        return;
    };
    if let Some(job) = state.jobs.get(&instance)
        && job.manifest.parse().outputs.contains(&entry.output_dir)
    {
        entry.slurm_job_id = job.job.clone().or(entry.slurm_job_id.take());
        entry.status = match live.get(&instance) {
            Some((s, _)) => *s,
            None => Status::Submitted,
        };
        return;
    }
    let Some(record) = state.nodes.get(&instance) else {
        return;
    };
    let ours = record.outputs.contains_key(&entry.output_dir)
        || record.manifest.parse().outputs.contains(&entry.output_dir);
    if !ours {
        return;
    }
    entry.node_key = Some(record.key.clone());
    entry.status = match record.status {
        RunStatus::Ok => Status::Completed,
        RunStatus::Failed
            if record
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("cancelled")) =>
        {
            Status::Cancelled
        }
        RunStatus::Failed => match live.get(&instance) {
            Some((s, job)) => {
                entry.slurm_job_id = Some(job.clone());
                *s
            }
            None => match record.error.as_deref().and_then(slurm_ending) {
                Some((job, status)) => {
                    entry.slurm_job_id = Some(job);
                    status
                }
                None => Status::Failed,
            },
        },
    };
    if let Some(gpus) = entry.gpus {
        let hours = record.duration_ms as f64 / 3_600_000.0 * f64::from(gpus);
        entry.gpu_hours = Some((hours * 1e4).round() / 1e4);
    }
}

/// The job and status of a record reconciliation wrote for a SLURM job that ended badly
/// (`SLURM job 123_4 ended timeout`).
fn slurm_ending(error: &str) -> Option<(String, Status)> {
    let rest = error.strip_prefix("SLURM job ")?;
    let (job, rest) = rest.split_once(' ')?;
    let status = rest.strip_prefix("ended ")?.split_whitespace().next()?;
    Some((job.to_string(), Status::parse(status.trim_matches('"'))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_endings_are_read_back() {
        assert_eq!(
            slurm_ending("SLURM job 12_3 ended timeout"),
            Some(("12_3".to_string(), Status::Timeout))
        );
        assert_eq!(slurm_ending("exit code 1"), None);
    }
}
