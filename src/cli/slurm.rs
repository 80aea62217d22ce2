//! `flow run --executor slurm`: reconcile, submit the stale sub-DAG, optionally wait.

use std::time::{Duration, Instant};

use flow_engine::digest::Digester;
use flow_engine::graph::Graph;
use flow_engine::plan::{self, Plan};
use flow_engine::project::Project;
use flow_engine::reconcile::reconcile;
use flow_engine::slurm::SlurmCli;
use flow_engine::slurm_config::SlurmSection;
use flow_engine::state::State;
use flow_engine::submit::submit;

use super::{CmdResult, Failure, exit_codes};

/// SLURM tool calls made by this command, reported with `--json` (and benchmarked).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub sbatch: usize,
    pub sacct: usize,
    pub scontrol: usize,
    /// Instances reconciliation recorded as completed or failed during this command.
    pub completed: usize,
    pub failed: usize,
}

/// Everything the SLURM branch of `flow run` works with.
pub struct SlurmRun<'a> {
    pub project: &'a Project,
    pub graph: &'a Graph,
    pub plan: Plan,
    pub state: &'a mut State,
    pub digester: &'a Digester<'a>,
    pub cli: &'a dyn SlurmCli,
    pub command_line: SlurmSection,
    pub wait: bool,
    /// With `wait`: how many times a failed chain is submitted again.
    pub retries: u32,
    pub json: bool,
    pub counts: Counts,
    pub selected: &'a [bool],
}

fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Records what ended since the last look and says so; returns (completed, failed, in flight).
pub fn reconcile_and_report(
    project: &Project,
    state: &mut State,
    digester: &Digester<'_>,
    cli: &dyn SlurmCli,
    counts: &mut Counts,
    json: bool,
) -> Result<(usize, usize, usize), Failure> {
    let r = reconcile(project, state, digester, cli).map_err(Failure::internal)?;
    counts.sacct += r.sacct_calls;
    counts.completed += r.completed.len();
    counts.failed += r.failed.len();
    if let Some(why) = &r.fallback {
        say(
            json,
            format!("warning: SLURM accounting unavailable ({why}); used squeue and exit markers"),
        );
    }
    for id in &r.completed {
        say(json, format!("  ok      {id} (SLURM)"));
    }
    for (id, status, job) in &r.failed {
        let message = r
            .messages
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("SLURM job {job} ended {}", status.as_str()));
        say(json, format!("  FAILED  {id}: {message}"));
    }
    Ok((r.completed.len(), r.failed.len(), r.in_flight.len()))
}

/// Polls with backoff until no job of this project is in flight.
fn wait_for_jobs(r: &mut SlurmRun<'_>) -> Result<(), Failure> {
    let mut delay = Duration::from_millis(500);
    let max = std::env::var("FLOW_SLURM_POLL_MAX_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30));
    let started = Instant::now();
    while !r.state.jobs.is_empty() {
        std::thread::sleep(delay);
        delay = (delay * 3 / 2).min(max);
        let (c, f, left) =
            reconcile_and_report(r.project, r.state, r.digester, r.cli, &mut r.counts, r.json)?;
        if c + f > 0 && !r.json {
            println!(
                "  [{:.0}s] {} done, {} failed, {left} in flight",
                started.elapsed().as_secs_f64(),
                r.counts.completed,
                r.counts.failed
            );
        }
    }
    Ok(())
}

pub fn run(mut r: SlurmRun<'_>) -> CmdResult {
    let settings = r.project.settings.slurm.clone();
    let mut submitted: Vec<(String, String)> = Vec::new();
    let mut round = 0;
    let sub = loop {
        let failed_before = r.counts.failed;
        let sub = submit(
            r.project,
            r.graph,
            &r.plan,
            r.state,
            r.digester,
            r.cli,
            &settings,
            &r.command_line,
        )
        .map_err(Failure::internal)?;
        r.counts.sbatch += sub.sbatch_calls;
        r.counts.scontrol += sub.scontrol_calls;
        submitted.extend(sub.jobs.iter().cloned());
        let in_flight_before = r
            .plan
            .decisions
            .iter()
            .filter(|d| d.as_ref().is_some_and(|d| d.in_flight()))
            .count();
        if sub.jobs.is_empty() && in_flight_before == 0 && sub.local.is_empty() {
            if !r.json && round == 0 {
                println!("nothing to do: all selected nodes are fresh");
            }
        } else if !sub.jobs.is_empty() {
            say(
                r.json,
                format!(
                    "submitted {} node(s) to SLURM in {} sbatch call(s); {} already in flight",
                    sub.jobs.len(),
                    sub.sbatch_calls,
                    in_flight_before
                ),
            );
        } else if in_flight_before > 0 {
            say(
                r.json,
                format!("{in_flight_before} node(s) in flight on SLURM; nothing new to submit"),
            );
        }
        if !r.wait {
            break sub;
        }
        wait_for_jobs(&mut r)?;
        let failed_now = r.counts.failed - failed_before;
        if failed_now == 0 || round >= r.retries {
            break sub;
        }
        round += 1;
        say(
            r.json,
            format!(
                "retry {round} of {}: {failed_now} node(s) failed; submitting the failed chain again",
                r.retries
            ),
        );
        let forced = vec![false; r.graph.nodes.len()];
        r.plan = plan::plan(r.graph, r.state, r.digester, r.selected, &forced)
            .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    };
    // Local nodes run here once everything they need is recorded.
    let mut local_failed = 0;
    if !sub.local.is_empty() {
        let mut selected = vec![false; r.graph.nodes.len()];
        for &id in &sub.local {
            selected[id] = r.selected[id];
        }
        let selected = r.graph.with_ancestors(
            &selected
                .iter()
                .enumerate()
                .filter(|(_, s)| **s)
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
        );
        let forced = vec![false; r.graph.nodes.len()];
        let plan = plan::plan(r.graph, r.state, r.digester, &selected, &forced)
            .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
        let runnable = plan.stale().filter(|&id| sub.local.contains(&id)).count();
        if runnable > 0 {
            let options = flow_engine::run::RunOptions {
                limits: flow_engine::scheduler::Limits { jobs: 2, gpus: 0 },
                keep_going: true,
            };
            let summary = super::run::run_local(
                r.project, r.graph, &plan, r.state, r.digester, &options, r.json,
            )?;
            local_failed = summary.failed.len();
        }
    }
    let in_flight: Vec<String> = r.state.jobs.keys().cloned().collect();
    if r.json {
        println!(
            "{}",
            serde_json::json!({
                "submitted": submitted.iter().map(|(id, job)| serde_json::json!({"id": id, "job": job})).collect::<Vec<_>>(),
                "retries": round,
                "in_flight": in_flight,
                "completed": r.counts.completed,
                "failed": r.counts.failed + local_failed,
                "sbatch_calls": r.counts.sbatch,
                "sacct_calls": r.counts.sacct,
                "scontrol_calls": r.counts.scontrol,
            })
        );
    } else if !r.wait && !in_flight.is_empty() {
        println!(
            "{} node(s) in flight; `flow run` again (or with --wait) to reconcile",
            in_flight.len()
        );
    }
    // The outcome is what is recorded now: a failure a retry fixed does not count.
    let failed_now = r
        .graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            r.selected[*i]
                && !r.state.jobs.contains_key(&n.id)
                && r.state
                    .nodes
                    .get(&n.id)
                    .is_some_and(|rec| rec.status == flow_engine::state::RunStatus::Failed)
        })
        .count();
    Ok(if failed_now + local_failed > 0 {
        exit_codes::NODE_FAILED
    } else {
        exit_codes::OK
    })
}
