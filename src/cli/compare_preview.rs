//! What `flow run -n` adds for a stale `compare` node: which of its outputs would be drawn
//! again. Known exactly when every gathered metrics file is already fresh; otherwise the
//! answer waits for the metrics nodes that will run first.

use std::path::Path;

use flow_engine::graph::{Graph, NodeId};
use flow_engine::plan::Plan;
use flow_tasks::compare::{CompareOptions, preview, runs_from_registry};
use flow_tasks::registry::{Registry, RegistryStore};

/// One line per stale compare instance: (instance index, text).
pub fn compare_previews(root: &Path, graph: &Graph, plan: &Plan) -> Vec<(NodeId, String)> {
    let mut out = Vec::new();
    let mut registry: Option<Registry> = None;
    for id in plan.stale() {
        if graph.node_spec(id).task != "compare" {
            continue;
        }
        let inst = &graph.nodes[id];
        let waiting = inst
            .deps
            .iter()
            .filter(|&&d| plan.decisions[d].as_ref().is_some_and(|x| x.is_stale()))
            .count();
        if waiting > 0 {
            out.push((
                id,
                format!("outputs to redraw: known once {waiting} gathered node(s) ran"),
            ));
            continue;
        }
        let reg =
            registry.get_or_insert_with(|| RegistryStore::new(root).read().unwrap_or_default());
        let entries: Vec<_> = inst
            .deps
            .iter()
            .flat_map(|&d| graph.nodes[d].outputs.iter())
            .filter_map(|f| Path::new(f).file_stem())
            .filter_map(|stem| reg.get(&stem.to_string_lossy()))
            .collect();
        let (runs, _) = runs_from_registry(root, &entries);
        let Some(dir) = inst.outputs.first().and_then(|o| Path::new(o).parent()) else {
            continue;
        };
        let text = match preview(&runs, &root.join(dir), &CompareOptions::default()) {
            Ok(v) if v.is_empty() => {
                "outputs to redraw: none (its inputs are unchanged)".to_string()
            }
            Ok(v) => format!(
                "outputs to redraw: {}",
                v.iter()
                    .map(|o| o.file_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("outputs to redraw: unknown ({e})"),
        };
        out.push((id, text));
    }
    out
}
