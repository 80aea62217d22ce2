//! `flow graph`: the DAG as text, Graphviz dot or Mermaid, each node with its state.

use std::path::Path;

use clap::ValueEnum;
use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::graph::Graph;
use flow_engine::plan::{self, Decision, Reason};
use flow_engine::state::State;

use super::{CmdResult, Failure, exit_codes, load_graph, open_project};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

/// A node's state for drawing.
fn state_of(decision: &Option<Decision>) -> (&'static str, String) {
    match decision {
        None | Some(Decision::Fresh) => ("fresh", "fresh".into()),
        Some(Decision::Stale { reasons }) => {
            let failed = reasons
                .iter()
                .any(|r| matches!(r, Reason::PreviousFailed { .. }));
            let why = reasons.first().map(|r| r.to_string()).unwrap_or_default();
            if failed {
                ("failed", format!("failed: {why}"))
            } else {
                ("stale", format!("stale: {why}"))
            }
        }
    }
}

pub fn graph(project: Option<&Path>, workflow: &Path, format: Format) -> CmdResult {
    let project = open_project(project, Some(workflow))?;
    let graph = load_graph(&project, workflow)?;
    let state = State::peek(&project.cache_dir()).map_err(Failure::internal)?;
    let disk = RealDisk::new(&project.root);
    let digester = Digester::new(&disk, &state.files);
    let all = vec![true; graph.nodes.len()];
    let forced = vec![false; graph.nodes.len()];
    let plan = plan::plan(&graph, &state, &digester, &all, &forced)
        .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    let text = match format {
        Format::Text => text(&graph, &plan.decisions),
        Format::Dot => dot(&graph, &plan.decisions),
        Format::Mermaid => mermaid(&graph, &plan.decisions),
    };
    print!("{text}");
    Ok(exit_codes::OK)
}

fn text(graph: &Graph, decisions: &[Option<Decision>]) -> String {
    let mut out = String::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let (_, label) = state_of(&decisions[i]);
        out.push_str(&format!("{}  [{label}]\n", n.id));
        for &d in &n.deps {
            out.push_str(&format!("    <- {}\n", graph.nodes[d].id));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot(graph: &Graph, decisions: &[Option<Decision>]) -> String {
    let mut out =
        String::from("digraph flow {\n  rankdir=LR;\n  node [shape=box, style=filled];\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        let (state, label) = state_of(&decisions[i]);
        let color = match state {
            "fresh" => "palegreen",
            "failed" => "salmon",
            _ => "khaki",
        };
        out.push_str(&format!(
            "  n{i} [label=\"{}\\n{}\", fillcolor={color}];\n",
            escape(&n.id),
            escape(&label)
        ));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        for &d in &n.deps {
            out.push_str(&format!("  n{d} -> n{i};\n"));
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(graph: &Graph, decisions: &[Option<Decision>]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        let (state, label) = state_of(&decisions[i]);
        let text = format!("{}<br/>{}", n.id, label).replace('"', "#quot;");
        out.push_str(&format!("  n{i}[\"{text}\"]:::{state}\n"));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        for &d in &n.deps {
            out.push_str(&format!("  n{d} --> n{i}\n"));
        }
    }
    out.push_str("  classDef fresh fill:#b8f0b8\n  classDef stale fill:#f0e68c\n  classDef failed fill:#fa8072\n");
    out
}
