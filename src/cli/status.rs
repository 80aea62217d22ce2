//! `flow status`: reconcile SLURM jobs in flight and show where they stand.
//!
//! The experiment registry view (`--model-size`, `--leaderboard`) comes with the
//! experiments work; this already does the part every project needs: one batched `sacct`
//! call, results recorded, in-flight jobs listed with flow's status names.

use std::path::Path;

use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::reconcile::reconcile;
use flow_engine::slurm::SystemSlurm;
use flow_engine::state::State;

use super::{CmdResult, Failure, exit_codes, open_project};

pub fn status(project: Option<&Path>, json: bool) -> CmdResult {
    let project = open_project(project, None)?;
    let cache = project.cache_dir();
    let mut state = State::load(&cache).map_err(Failure::internal)?;
    let disk = RealDisk::new(&project.root);
    let files = std::mem::take(&mut state.files);
    let digester = Digester::new(&disk, &files);
    let cli = SystemSlurm::default();
    let r = reconcile(&project, &mut state, &digester, &cli).map_err(Failure::internal)?;
    if json {
        let row = |(id, status, job): &(String, flow_engine::slurm::JobStatus, String)| serde_json::json!({"id": id, "status": status, "job": job});
        println!(
            "{}",
            serde_json::json!({
                "completed": r.completed,
                "failed": r.failed.iter().map(row).collect::<Vec<_>>(),
                "in_flight": r.in_flight.iter().map(row).collect::<Vec<_>>(),
                "sacct_calls": r.sacct_calls,
                "accounting": if r.fallback.is_some() { "unavailable: used squeue" } else { "ok" },
            })
        );
        return Ok(exit_codes::OK);
    }
    if let Some(why) = &r.fallback {
        println!("warning: SLURM accounting unavailable ({why}); used squeue and exit markers");
    }
    for id in &r.completed {
        println!("  completed  {id}");
    }
    for (id, status, job) in &r.failed {
        println!("  {:<10} {id} (job {job})", status.as_str());
    }
    for (id, status, job) in &r.in_flight {
        println!("  {:<10} {id} (job {job})", status.as_str());
    }
    println!(
        "{} in flight, {} newly completed, {} newly failed",
        r.in_flight.len(),
        r.completed.len(),
        r.failed.len()
    );
    Ok(exit_codes::OK)
}
