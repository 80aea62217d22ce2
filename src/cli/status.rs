//! `flow status`: the experiment registry, synced with SLURM (one batched `sacct` call
//! when runs are in flight) and with the runs' logs (parsed again only when they changed).

use std::path::Path;

use flow_engine::diagnostic::choices_help;
use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::reconcile::reconcile;
use flow_engine::slurm::SystemSlurm;
use flow_engine::state::State;
use flow_tasks::registry::{Entry, LiveStatus, Status};

use super::{CmdResult, Failure, exit_codes, open_project};

/// Filters and views of `flow status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only runs of this model size.
    #[arg(long, value_name = "SIZE")]
    model_size: Option<String>,
    /// Only runs in this status (submitted, pending, running, completed, failed, ...).
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    /// Rank runs by best mask mAP (runs without metrics last).
    #[arg(long)]
    leaderboard: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn status(project: Option<&Path>, args: StatusArgs) -> CmdResult {
    let size = super::parse_model_size(args.model_size.as_deref())?;
    let wanted = match &args.status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Failure::msg(
                exit_codes::INVALID_INPUT,
                format!(
                    "unknown status `{s}`\n  help: {}",
                    choices_help(s, &Status::NAMES)
                ),
            )
        })?),
        None => None,
    };
    let project = open_project(project, None)?;
    let cache = project.cache_dir();
    let mut state = if cache.join("journal").exists() {
        State::load(&cache).map_err(Failure::internal)?
    } else {
        State::default()
    };
    let mut live = LiveStatus::new();
    let mut jobs =
        serde_json::json!({"completed": [], "failed": [], "in_flight": [], "sacct_calls": 0});
    let mut slurm_note = "not queried (nothing in flight)".to_string();
    if !state.jobs.is_empty() {
        let disk = RealDisk::new(&project.root);
        let files = std::mem::take(&mut state.files);
        let digester = Digester::new(&disk, &files);
        match reconcile(&project, &mut state, &digester, &SystemSlurm::default()) {
            Ok(r) => {
                let row = |(id, status, job): &(String, flow_engine::slurm::JobStatus, String)| serde_json::json!({"id": id, "status": status, "job": job});
                jobs = serde_json::json!({
                    "completed": r.completed,
                    "failed": r.failed.iter().map(row).collect::<Vec<_>>(),
                    "in_flight": r.in_flight.iter().map(row).collect::<Vec<_>>(),
                    "sacct_calls": r.sacct_calls,
                });
                if !args.json {
                    for (id, s, job) in &r.in_flight {
                        println!("  {:<13} {id} (job {job})", s.as_str());
                    }
                }
                for (id, s, job) in r.in_flight.iter().chain(&r.failed) {
                    live.insert(id.clone(), (*s, job.clone()));
                }
                slurm_note = match &r.fallback {
                    Some(why) => format!("accounting unavailable ({why}): used squeue"),
                    None => "ok".to_string(),
                };
            }
            Err(e) => {
                slurm_note = format!("unreachable ({e}): showing the last known state");
                if !args.json {
                    eprintln!("warning: SLURM {slurm_note}");
                }
                // What the journal last recorded: submitted (with a job id) or unconfirmed.
                let mut last: Vec<_> = state.jobs.values().collect();
                last.sort_by(|a, b| a.id.cmp(&b.id));
                let status_of = |j: &flow_engine::state::JobRecord| match j.job {
                    Some(_) => flow_engine::slurm::JobStatus::Submitted,
                    None => flow_engine::slurm::JobStatus::Unknown,
                };
                if !args.json {
                    for j in &last {
                        let job = j.job.as_deref().unwrap_or("unconfirmed");
                        println!(
                            "  {:<13} {} (job {job}, last known)",
                            status_of(j).as_str(),
                            j.id
                        );
                    }
                }
                jobs["in_flight"] = last
                    .iter()
                    .map(|j| serde_json::json!({"id": j.id, "status": status_of(j), "job": j.job, "last_known": true}))
                    .collect();
            }
        }
    }
    let reg = super::registry_sync::sync_registry(&project, &state, &live)?;

    let mut rows: Vec<&Entry> = reg
        .experiments
        .iter()
        .filter(|e| size.is_none_or(|s| e.model_size == s.as_str()))
        .filter(|e| wanted.is_none_or(|s| e.status == s))
        .collect();
    if args.leaderboard {
        rows.sort_by(|a, b| {
            let m = |e: &Entry| e.best.as_ref().and_then(|b| b.mask_map);
            match (m(a), m(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.id.cmp(&b.id)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.id.cmp(&b.id),
            }
        });
    }
    if args.json {
        // The per-job view (`completed`, `failed`, `in_flight`, `sacct_calls`) covers every
        // SLURM job of the project, training or not.
        let mut doc = serde_json::json!({
            "version": 1,
            "slurm": slurm_note,
            "experiments": rows,
        });
        if let (Some(d), Some(j)) = (doc.as_object_mut(), jobs.as_object()) {
            d.extend(j.clone());
        }
        println!("{doc}");
        return Ok(exit_codes::OK);
    }
    print_table(&rows, args.leaderboard);
    let total = reg.experiments.len();
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for e in &rows {
        match counts.iter_mut().find(|(s, _)| *s == e.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.status, 1)),
        }
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    println!(
        "{} of {total} runs shown{}{}",
        rows.len(),
        if summary.is_empty() { "" } else { ": " },
        summary.join(", ")
    );
    if !state.jobs.is_empty() {
        println!("SLURM: {slurm_note}");
    }
    Ok(exit_codes::OK)
}

fn print_table(rows: &[&Entry], ranked: bool) {
    if rows.is_empty() {
        println!("no runs (launch one with `flow launch --config F` or `flow run WORKFLOW`)");
        return;
    }
    let width = rows.iter().map(|e| e.id.len()).max().unwrap_or(2).max(2);
    let num = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    let rank = if ranked { "RANK  " } else { "" };
    println!(
        "{rank}{:<width$}  {:<8} {:<13} {:>6} {:>9} {:>9} {:>5} {:>7}  JOB",
        "ID", "SIZE", "STATUS", "EPOCHS", "MASK mAP", "BBOX mAP", "BEST", "GPU-h"
    );
    for (i, e) in rows.iter().enumerate() {
        let b = e.best.as_ref();
        let flag = if e.metrics_problems.is_empty() || e.status.in_flight() {
            ""
        } else {
            "  (metrics problems: see --json)"
        };
        let rank = if ranked {
            format!("{:<6}", i + 1)
        } else {
            String::new()
        };
        println!(
            "{rank}{:<width$}  {:<8} {:<13} {:>6} {:>9} {:>9} {:>5} {:>7}  {}{flag}",
            e.id,
            e.model_size,
            e.status.as_str(),
            b.map_or("-".to_string(), |b| b.epochs.to_string()),
            num(b.and_then(|b| b.mask_map)),
            num(b.and_then(|b| b.bbox_map)),
            b.and_then(|b| b.best_epoch)
                .map_or("-".to_string(), |x| x.to_string()),
            e.gpu_hours.map_or("-".to_string(), |h| format!("{h:.2}")),
            e.slurm_job_id.as_deref().unwrap_or("-"),
        );
    }
}
