//! `flow metrics RUN_DIR...`: what a run directory's training log says, in one place.

use std::path::PathBuf;

use flow_tasks::metrics::{Format, Track, read_run_dir};

use super::{CmdResult, exit_codes};

pub fn metrics(dirs: &[PathBuf], json: bool, output: Option<&std::path::Path>) -> CmdResult {
    if let Some(out) = output {
        return write_metrics(dirs, out);
    }
    let mut any_problem = false;
    let mut docs = Vec::new();
    for dir in dirs {
        let m = read_run_dir(dir);
        any_problem |= !m.problems.is_empty();
        if json {
            docs.push(m.to_json());
            continue;
        }
        let format = match m.format {
            Format::LogTxt => "log.txt",
            Format::MetricsCsv => "metrics.csv",
            Format::None => "no metrics file",
        };
        println!("{} ({format}, {} epochs)", dir.display(), m.epochs.len());
        match &m.best {
            Some(b) => {
                let track = match b.track {
                    Track::Regular => "regular",
                    Track::Ema => "EMA",
                };
                let bbox = b
                    .bbox_map
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "  best epoch {} ({track}): mask mAP {:.4}, bbox mAP {bbox}",
                    b.epoch, b.mask_map
                );
            }
            None => println!("  no best epoch: no mask AP recorded"),
        }
        for p in &m.problems {
            println!("  problem: {p}");
        }
    }
    if json {
        if docs.len() == 1 {
            println!("{}", docs[0]);
        } else {
            println!("[{}]", docs.join(","));
        }
    }
    // Problems are reported per run, never a crash; the exit code says some were found.
    Ok(if any_problem {
        exit_codes::NODE_FAILED
    } else {
        exit_codes::OK
    })
}

/// The `metrics` task's command: one run directory's versioned metrics file, written
/// atomically. Problems in the log are kept in the file (and printed), not a failure:
/// compare flags the run instead of losing it.
fn write_metrics(dirs: &[PathBuf], out: &std::path::Path) -> CmdResult {
    let [dir] = dirs else {
        return Err(super::Failure::msg(
            exit_codes::INVALID_INPUT,
            "`flow metrics --output FILE` takes exactly one run directory".to_string(),
        ));
    };
    let m = read_run_dir(dir);
    for p in &m.problems {
        eprintln!("{}: {p}", dir.display());
    }
    let fail = |e: std::io::Error| {
        super::Failure::msg(
            exit_codes::INTERNAL,
            format!("cannot write {}: {e}", out.display()),
        )
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(fail)?;
    flow_tasks::atomic::write_atomic(out, format!("{}\n", m.to_json()).as_bytes()).map_err(fail)?;
    Ok(exit_codes::OK)
}
