//! The registry side of commands that run training nodes: register new runs before they
//! start, and bring entries up to date once the engine recorded what happened.

use flow_engine::graph::Graph;
use flow_engine::plan::Plan;
use flow_engine::project::Project;
use flow_engine::state::State;
use flow_tasks::TaskContext;
use flow_tasks::registry::{LiveStatus, MetricsCache, RegistryStore, sync};

use flow_tasks::registry::RegistryError;

use super::{Failure, exit_codes};

/// Registers the new runs among the instances about to run, then releases the registry
/// lock (held since the graph was built, so concurrent launches never clash).
pub fn register_runs(
    ctx: &TaskContext,
    graph: &Graph,
    plan: &Plan,
    slurm: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let allocations = ctx.run_ids.allocations();
    if allocations.is_empty() {
        ctx.run_ids.release();
        return Ok(());
    }
    let stale: Vec<&str> = plan
        .stale()
        .map(|id| graph.nodes[id].id.as_str())
        .filter(|id| allocations.contains_key(*id))
        .collect();
    let registered = ctx.run_ids.register_with(&stale, |entry| {
        let inst = graph.get(entry.instance.as_deref().unwrap_or_default());
        entry.gpus = inst.map(|i| {
            let n = &graph.nodes[i];
            if slurm {
                let spec = graph.node_spec(i);
                spec.resources
                    .gpus
                    .or(n.kind_resources.over_workflow.gpus)
                    .or(graph.spec.slurm.resources.gpus)
                    .or(n.kind_resources.under_workflow.gpus)
                    .unwrap_or(0)
            } else {
                n.gpus
            }
        });
    });
    let registered = registered.map_err(registry_failure)?;
    if !quiet {
        for id in &registered {
            println!("registered run {id}");
        }
    }
    Ok(())
}

/// Brings every registry entry up to date with the engine's state; `live` holds what SLURM
/// said in this command.
pub fn sync_registry(project: &Project, state: &State, live: &LiveStatus) -> Result<(), Failure> {
    let store = RegistryStore::new(&project.root);
    if !store.path().exists() {
        return Ok(());
    }
    let mut cache = MetricsCache::load(&project.cache_dir());
    store
        .update(|reg| sync(reg, &project.root, state, live, &mut cache))
        .map_err(registry_failure)?;
    cache.save();
    Ok(())
}

/// A registry that cannot be read or written: the message names the file and the fix.
pub fn registry_failure(e: RegistryError) -> Failure {
    let code = match e {
        RegistryError::Io { .. } => exit_codes::INTERNAL,
        _ => exit_codes::INVALID_INPUT,
    };
    Failure::msg(code, e.to_string())
}
