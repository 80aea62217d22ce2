//! `flow graph`: the DAG as text, Graphviz dot, Mermaid, SVG or HTML, each node with its state.
//!
//! text, dot and mermaid list every instance. svg and html are drawn by flow itself (no
//! Graphviz, nothing fetched) and collapse each node's instances into one box, so that a sweep
//! of a few hundred instances stays readable: see [`model`], [`layout`], [`svg`] and [`html`].

use std::path::Path;

use clap::ValueEnum;
use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::graph::Graph;
use flow_engine::plan::{self, Decision, Reason};
use flow_engine::state::State;

use super::{CmdResult, Failure, exit_codes, load_graph, open_project};

mod html;
mod layout;
mod model;
mod svg;

/// Output formats of `flow graph`; every one goes to stdout so it can be piped or redirected.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum Format {
    /// Every instance and its upstreams, for reading in a terminal.
    Text,
    /// Graphviz, every instance a box (render with `dot -Tsvg`).
    Dot,
    /// Mermaid flowchart, every instance a box (for Markdown that renders Mermaid).
    Mermaid,
    /// Self-contained SVG drawn by flow, one box per node with its instances' state counts.
    Svg,
    /// One self-contained HTML page: the SVG plus a filterable table of every instance.
    Html,
}

/// The three states a drawing distinguishes; `failed` is a stale instance whose last run
/// failed, shown apart because it needs a person rather than just another run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drawn {
    Fresh,
    Stale,
    Failed,
}

impl Drawn {
    /// All states, in the order counts and legends list them.
    pub const ALL: [Drawn; 3] = [Drawn::Fresh, Drawn::Stale, Drawn::Failed];

    /// The word used in labels, class names and the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            Drawn::Fresh => "fresh",
            Drawn::Stale => "stale",
            Drawn::Failed => "failed",
        }
    }
}

/// A node's state for drawing, with a one-line label (`stale: <first reason>`).
fn state_of(decision: &Option<Decision>) -> (Drawn, String) {
    match decision {
        None | Some(Decision::Fresh) => (Drawn::Fresh, "fresh".into()),
        Some(Decision::Stale { reasons }) => {
            let failed = reasons
                .iter()
                .any(|r| matches!(r, Reason::PreviousFailed { .. }));
            let why = reasons.first().map(|r| r.to_string()).unwrap_or_default();
            if failed {
                (Drawn::Failed, format!("failed: {why}"))
            } else {
                (Drawn::Stale, format!("stale: {why}"))
            }
        }
    }
}

/// Every reason of a decision on one line, for the HTML table (the label keeps only the first).
fn all_reasons(decision: &Option<Decision>) -> String {
    match decision {
        None | Some(Decision::Fresh) => String::new(),
        Some(Decision::Stale { reasons }) => reasons
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; "),
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
        Format::Svg => svg::standalone(&graph, &plan.decisions),
        Format::Html => html::page(&graph, &plan.decisions),
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
            Drawn::Fresh => "palegreen",
            Drawn::Failed => "salmon",
            Drawn::Stale => "khaki",
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
        out.push_str(&format!("  n{i}[\"{text}\"]:::{}\n", state.as_str()));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        for &d in &n.deps {
            out.push_str(&format!("  n{d} --> n{i}\n"));
        }
    }
    out.push_str("  classDef fresh fill:#b8f0b8\n  classDef stale fill:#f0e68c\n  classDef failed fill:#fa8072\n");
    out
}
