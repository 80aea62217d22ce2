//! Training metrics read from run directories (RF-DETR log.txt / metrics.csv, flow-train).
//!
//! [`read_run_dir`] never fails: whatever is wrong with the files (a half-written last line, NaN
//! or Infinity values, a missing key, an empty or unreadable file) is listed in
//! [`RunMetrics::problems`], with line numbers where there are any, and every other epoch is
//! still read.

mod best;
mod json;
mod log_txt;
mod metrics_csv;
mod model;
mod writer;

use std::path::Path;

pub use best::best_epoch;
pub use model::{Best, CocoSummary, EpochMetrics, Format, Problem, RunMetrics, Track};
pub use writer::METRICS_FILE_VERSION;

/// RF-DETR ≥ 1.6 writes this (Lightning CSVLogger).
pub const METRICS_CSV: &str = "metrics.csv";
/// RF-DETR ≤ 1.5 (and flow-train) write this.
pub const LOG_TXT: &str = "log.txt";

/// Reads a run directory's metrics.
///
/// When the directory has both files, `metrics.csv` is read: it is the newer format (RF-DETR ≥ 1.6,
/// spec/rfdetr.md §3, which writes no log.txt), so a log.txt beside it is left over from an older
/// run in the same directory. With neither file, the format is [`Format::None`] and a problem says so.
pub fn read_run_dir(dir: &Path) -> RunMetrics {
    let csv = dir.join(METRICS_CSV);
    let log = dir.join(LOG_TXT);
    let (format, path) = if csv.exists() {
        (Format::MetricsCsv, csv)
    } else if log.exists() {
        (Format::LogTxt, log)
    } else {
        return RunMetrics {
            format: Format::None,
            epochs: Vec::new(),
            best: None,
            problems: vec![Problem::file(format!(
                "{} has neither {METRICS_CSV} nor {LOG_TXT}",
                dir.display()
            ))],
        };
    };
    let mut problems = Vec::new();
    let epochs = match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match format {
                Format::MetricsCsv => metrics_csv::parse(&text, &mut problems),
                _ => log_txt::parse(&text, &mut problems),
            }
        }
        Err(e) => {
            problems.push(Problem::file(format!(
                "cannot read {}: {e}",
                path.display()
            )));
            Vec::new()
        }
    };
    let best = best_epoch(&epochs);
    if best.is_none() && !epochs.is_empty() {
        problems.push(Problem::file("no epoch has a mask mAP"));
    }
    RunMetrics {
        format,
        epochs,
        best,
        problems,
    }
}
