//! `flow explain`: the key-level reason a node is stale.

use std::path::Path;

use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::plan::{self, Decision};
use flow_engine::state::State;

use super::{CmdResult, Failure, exit_codes, load_graph, open_project, select};

pub fn explain(project: Option<&Path>, workflow: &Path, node: &str, json: bool) -> CmdResult {
    let project = open_project(project, Some(workflow))?;
    let graph = load_graph(&project, workflow)?;
    let ids = select(&graph, &[node.to_string()])?;
    let state = State::peek(&project.cache_dir()).map_err(Failure::internal)?;
    let disk = RealDisk::new(&project.root);
    let digester = Digester::new(&disk, &state.files);
    let selected = graph.with_ancestors(&ids);
    let forced = vec![false; graph.nodes.len()];
    let plan = plan::plan(&graph, &state, &digester, &selected, &forced)
        .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    let mut out = Vec::new();
    for id in ids {
        let inst = &graph.nodes[id];
        let record = state.nodes.get(&inst.id);
        let decision = plan.decisions[id].clone().unwrap_or(Decision::Fresh);
        // Own changes, even when an upstream re-runs first.
        let own = match plan::manifest(&graph, id, &state, &digester) {
            Ok(m) => match record {
                Some(r) => (m.key(), plan::diff(&r.manifest.parse(), &m)),
                None => (m.key(), Vec::new()),
            },
            Err(_) => (String::new(), Vec::new()),
        };
        out.push((
            inst.id.clone(),
            decision,
            record.map(|r| r.key.clone()),
            own,
        ));
    }
    if json {
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|(id, d, old, (new, diffs))| {
                serde_json::json!({
                    "id": id, "decision": d, "recorded_key": old,
                    "current_key": new, "key_diff": diffs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit_codes::OK);
    }
    for (id, decision, old, (new, diffs)) in out {
        match &decision {
            Decision::Fresh => println!("{id}: fresh"),
            Decision::Stale { reasons } => {
                println!("{id}: stale");
                for r in reasons {
                    println!("  {r}");
                }
            }
        }
        match old {
            None => println!("  no recorded run"),
            Some(old) if !new.is_empty() && old != new => {
                println!("  key: {} -> {}", &old[..12.min(old.len())], &new[..12]);
                for d in diffs {
                    println!("    {d}");
                }
            }
            Some(old) => println!("  key: {} (unchanged)", &old[..12.min(old.len())]),
        }
    }
    Ok(exit_codes::OK)
}
