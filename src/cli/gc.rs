//! `flow gc`: drop state that no workflow reaches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use flow_engine::journal::Journal;

use super::{CmdResult, Failure, exit_codes, load_graph, open_project};

pub fn gc(project: Option<&Path>, workflows: &[PathBuf], dry_run: bool, json: bool) -> CmdResult {
    let project = open_project(project, workflows.first().map(PathBuf::as_path))?;
    let files = if workflows.is_empty() {
        all_workflows(&project.root.join("workflows"))?
    } else {
        workflows.to_vec()
    };
    if files.is_empty() {
        return Err(Failure::msg(
            exit_codes::INVALID_INPUT,
            "no workflows found in workflows/; name the workflows whose state to keep".into(),
        ));
    }
    // Every workflow must load: collecting with a broken one would drop its state.
    let mut reachable = HashSet::new();
    for w in &files {
        let graph = load_graph(&project, w)?;
        reachable.extend(graph.nodes.iter().map(|n| n.id.clone()));
    }
    let journal = Journal::new(&project.cache_dir());
    let mut report = None;
    if dry_run {
        let entries = journal.load().map_err(Failure::internal)?.entries;
        report = Some(flow_engine::gc::collect(entries, &reachable).1);
    } else if journal.path().exists() {
        journal
            .compact(|entries| {
                let (live, r) = flow_engine::gc::collect(entries, &reachable);
                report = Some(r);
                live
            })
            .map_err(Failure::internal)?;
    }
    let report = report.unwrap_or_default();
    if !dry_run {
        for id in &report.dropped_nodes {
            let _ = std::fs::remove_file(project.log_path(id));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": dry_run,
                "dropped_nodes": report.dropped_nodes,
                "dropped_files": report.dropped_files,
                "kept_nodes": report.kept_nodes,
                "kept_files": report.kept_files,
            })
        );
    } else {
        let verb = if dry_run { "would drop" } else { "dropped" };
        println!(
            "{verb} {} node record(s) and {} cached digest(s); kept {} and {}",
            report.dropped_nodes.len(),
            report.dropped_files,
            report.kept_nodes,
            report.kept_files
        );
        for id in &report.dropped_nodes {
            println!("  {id}");
        }
    }
    Ok(exit_codes::OK)
}

fn all_workflows(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    Ok(out)
}
