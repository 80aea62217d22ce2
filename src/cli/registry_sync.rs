//! The registry side of commands that run training nodes: register new runs before they
//! start, and bring entries up to date once the engine recorded what happened.

use flow_engine::graph::Graph;
use flow_engine::project::Project;
use flow_engine::slurm_config::SlurmSection;
use flow_engine::state::State;
use flow_engine::submit::request_for;
use flow_tasks::TaskContext;
use flow_tasks::registry::{
    LiveStatus, MetricsCache, Registry, RegistryError, RegistryStore, sync,
};

use super::{Failure, exit_codes};

/// Registers the new runs among the selected instances (a new run always runs: its run
/// directory does not exist yet), then releases the registry lock (held since the graph
/// was built, so concurrent launches never clash).
pub fn register_runs(
    ctx: &TaskContext,
    graph: &Graph,
    selected: &[bool],
    slurm: Option<(&SlurmSection, &SlurmSection)>,
    quiet: bool,
) -> Result<(), Failure> {
    let allocations = ctx.run_ids.allocations();
    if allocations.is_empty() {
        ctx.run_ids.release();
        return Ok(());
    }
    let stale: Vec<&str> = (0..graph.nodes.len())
        .filter(|&i| selected[i])
        .map(|i| graph.nodes[i].id.as_str())
        .filter(|id| allocations.get(*id).is_some_and(|a| !a.existing))
        .collect();
    // The GPUs a run is given: what the SLURM executor will ask for (its own layering of
    // flow.yaml, the kind, the workflow, the node and the command line), or the local slots.
    let registered = ctx.run_ids.register_with(&stale, |entry| {
        let inst = graph.get(entry.instance.as_deref().unwrap_or_default());
        entry.gpus = inst.map(|i| match slurm {
            Some((settings, command_line)) => request_for(graph, i, settings, command_line)
                .resources
                .gpus
                .unwrap_or(0),
            None => graph.nodes[i].gpus,
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

/// Brings every registry entry up to date with the engine's state (`live`: what SLURM said
/// in this command) and returns the registry (empty when the project has none yet).
pub fn sync_registry(
    project: &Project,
    state: &State,
    live: &LiveStatus,
) -> Result<Registry, Failure> {
    let store = RegistryStore::new(&project.root);
    if !store.path().exists() {
        return store.read().map_err(registry_failure);
    }
    let mut cache = MetricsCache::load(&project.cache_dir());
    let reg = store
        .update(|reg| {
            sync(reg, &project.root, state, live, &mut cache);
            reg.clone()
        })
        .map_err(registry_failure)?;
    cache.save();
    Ok(reg)
}

/// A registry that cannot be read or written: the message names the file and the fix.
pub fn registry_failure(e: RegistryError) -> Failure {
    let code = match e {
        RegistryError::Io { .. } => exit_codes::INTERNAL,
        _ => exit_codes::INVALID_INPUT,
    };
    Failure::msg(code, e.to_string())
}

/// A completed run reached from another workflow (the same resolved config under another
/// instance id) lends its record to this instance, so the engine finds it fresh instead of
/// training it again into the same run directory. In memory only: nothing is journaled
/// unless the instance then runs.
pub fn adopt_records(ctx: &TaskContext, graph: &Graph, state: &mut State) {
    for (instance, a) in ctx.run_ids.allocations() {
        let Some(owner) = a.entry.instance.as_deref().filter(|o| *o != instance) else {
            continue;
        };
        let Some(record) = state.nodes.get(owner) else {
            continue;
        };
        let ours = graph
            .get(&instance)
            .map(|i| graph.nodes[i].outputs.clone())
            .unwrap_or_default();
        let theirs_ok = record.status == flow_engine::state::RunStatus::Ok
            && ours.iter().all(|o| record.outputs.contains_key(o));
        let have_own = state
            .nodes
            .get(&instance)
            .is_some_and(|r| ours.iter().all(|o| r.outputs.contains_key(o)));
        if theirs_ok && !have_own {
            let mut lent = record.clone();
            lent.id = instance.clone();
            state.nodes.insert(instance, lent);
        }
    }
}
