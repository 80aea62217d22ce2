//! `flow compare`: leaderboard.csv, the plots and report.html over registered runs, each
//! output rendered again only when the data it shows changed.

use std::path::{Path, PathBuf};

use flow_tasks::compare::{CompareOptions, RunFilter, render, runs_from_registry};
use flow_tasks::registry::{Entry, RegistryStore};

use super::registry_sync::registry_failure;
use super::{CmdResult, Failure, exit_codes, open_project};

/// Arguments of `flow compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Only these run ids (default: every registered run).
    #[arg(long, num_args = 1.., value_name = "ID")]
    ids: Vec<String>,
    /// Only runs of this model size.
    #[arg(long, value_name = "S")]
    model_size: Option<String>,
    /// Where to write (default: reports/compare).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// The runs of these metrics files (`experiments/metrics/<run id>.json`): what the
    /// `compare` task passes.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    from: Vec<PathBuf>,
    /// Render every output even if its inputs are unchanged.
    #[arg(long)]
    force: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn compare(project: Option<&Path>, args: CompareArgs) -> CmdResult {
    let size = super::parse_model_size(args.model_size.as_deref())?;
    let project = open_project(project, None)?;
    let reg = RegistryStore::new(&project.root)
        .read()
        .map_err(registry_failure)?;
    let mut selected: Vec<&Entry> = Vec::new();
    if args.from.is_empty() {
        selected.extend(&reg.experiments);
    } else {
        for f in &args.from {
            let id = f
                .file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default();
            let entry = reg.get(&id).ok_or_else(|| {
                Failure::msg(
                    exit_codes::INVALID_INPUT,
                    format!(
                        "{}: no run `{id}` in experiments/registry.json\n  help: metrics files are named after their run's id; `flow import` registers runs made elsewhere",
                        f.display()
                    ),
                )
            })?;
            selected.push(entry);
        }
    }
    let (runs, unknown_size) = runs_from_registry(&project.root, &selected);
    for id in &unknown_size {
        eprintln!("warning: run {id} has no known model size; left out of the comparison");
    }
    let filter = RunFilter {
        ids: args.ids.clone(),
        model_size: size,
    };
    let runs = filter
        .apply(runs)
        .map_err(|e| Failure::msg(exit_codes::INVALID_INPUT, e.to_string()))?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports/compare"));
    let out = if out.is_absolute() {
        out
    } else {
        project.root.join(out)
    };
    let opts = CompareOptions {
        force: args.force,
        ..Default::default()
    };
    let summary = render(&runs, &out, &opts)
        .map_err(|e| Failure::msg(exit_codes::INTERNAL, e.to_string()))?;
    let names = |v: &[flow_tasks::compare::Output]| -> Vec<String> {
        v.iter().map(|o| o.file_name().to_string()).collect()
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "output": out,
                "runs": summary.runs,
                "flagged": summary.flagged,
                "rendered": names(&summary.rendered),
                "up_to_date": names(&summary.up_to_date),
            })
        );
    } else {
        println!(
            "compared {} runs ({} flagged) into {}",
            summary.runs,
            summary.flagged,
            out.display()
        );
        if !summary.rendered.is_empty() {
            println!("  rendered:   {}", names(&summary.rendered).join(", "));
        }
        if !summary.up_to_date.is_empty() {
            println!("  up to date: {}", names(&summary.up_to_date).join(", "));
        }
    }
    Ok(exit_codes::OK)
}
