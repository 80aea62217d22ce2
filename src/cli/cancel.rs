//! `flow cancel`: cancel SLURM jobs in flight, and their dependents, and record it.

use std::collections::BTreeSet;
use std::path::Path;

use flow_engine::journal::{Entry, Journal};
use flow_engine::slurm::SystemSlurm;
use flow_engine::state::{NodeRecord, RunStatus, State};
use flow_engine::submit::parse_job_ref;

use super::{CmdResult, Failure, exit_codes, open_project};

/// Does a selector (instance id, node name, job id or array job id; a registry run id was
/// already replaced by its job) pick this job?
fn matches(selector: &str, id: &str, job: Option<&str>) -> bool {
    if id == selector
        || id
            .strip_prefix(selector)
            .is_some_and(|r| r.starts_with('['))
    {
        return true;
    }
    match job {
        Some(j) => j == selector || j.split('_').next() == Some(selector),
        None => false,
    }
}

pub fn cancel(project: Option<&Path>, selectors: &[String], json: bool) -> CmdResult {
    let project = open_project(project, None)?;
    let cache = project.cache_dir();
    let mut state = State::load(&cache).map_err(Failure::internal)?;
    // A run id of the registry stands for its job (or its instance).
    let registry = flow_tasks::registry::RegistryStore::new(&project.root);
    let runs = if registry.path().exists() {
        registry
            .read()
            .map_err(super::registry_sync::registry_failure)?
    } else {
        Default::default()
    };
    let selectors: Vec<String> = selectors
        .iter()
        .map(|s| match runs.get(s) {
            Some(e) => e
                .slurm_job_id
                .clone()
                .or_else(|| e.instance.clone())
                .unwrap_or_else(|| s.clone()),
            None => s.clone(),
        })
        .collect();
    let selectors = selectors.as_slice();
    let mut chosen: BTreeSet<String> = state
        .jobs
        .values()
        .filter(|j| {
            selectors
                .iter()
                .any(|s| matches(s, &j.id, j.job.as_deref()))
        })
        .map(|j| j.id.clone())
        .collect();
    if chosen.is_empty() {
        return Err(Failure::msg(
            exit_codes::INVALID_INPUT,
            format!(
                "nothing in flight matches {}; `flow status` lists the jobs in flight",
                selectors.join(", ")
            ),
        ));
    }
    // Dependents in flight go too (SLURM would cancel them anyway, as invalid dependencies).
    let manifests: Vec<(String, Vec<String>)> = state
        .jobs
        .values()
        .map(|j| {
            (
                j.id.clone(),
                j.manifest.parse().upstream.into_keys().collect(),
            )
        })
        .collect();
    loop {
        let before = chosen.len();
        for (id, ups) in &manifests {
            if ups.iter().any(|u| chosen.contains(u)) {
                chosen.insert(id.clone());
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    let jobs: Vec<flow_engine::slurm::script::JobRef> = chosen
        .iter()
        .filter_map(|id| state.jobs[id].job.as_deref().and_then(parse_job_ref))
        .collect();
    flow_engine::slurm::cli::cancel(&SystemSlurm::default(), &jobs).map_err(Failure::internal)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let entries: Vec<Entry> = chosen
        .iter()
        .map(|id| {
            let j = &state.jobs[id];
            Entry::Node(NodeRecord {
                id: id.clone(),
                key: j.provisional_key.clone(),
                check: None,
                status: RunStatus::Failed,
                exit_code: None,
                error: Some(format!(
                    "cancelled with flow cancel (SLURM job {})",
                    j.job.as_deref().unwrap_or(&j.job_name)
                )),
                started_at: j.submitted_at,
                duration_ms: now.saturating_sub(j.submitted_at) * 1000,
                manifest: j.manifest.clone(),
                outputs: Default::default(),
                attempt: None,
            })
        })
        .collect();
    let journal = Journal::new(&cache);
    journal.append(&entries).map_err(Failure::internal)?;
    journal.sync().map_err(Failure::internal)?;
    for e in entries {
        state.apply(e);
    }
    super::registry_sync::sync_registry(&project, &state, &Default::default())?;
    if json {
        println!(
            "{}",
            serde_json::json!({"cancelled": chosen, "scancel_calls": usize::from(!jobs.is_empty())})
        );
    } else {
        for id in &chosen {
            println!("  cancelled {id}");
        }
        println!(
            "cancelled {} node(s); the next `flow run` treats them as stale",
            chosen.len()
        );
    }
    Ok(exit_codes::OK)
}
