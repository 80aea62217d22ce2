//! What users read while a run goes: one line per finished node, a live progress line on a
//! terminal, and the tail of the log when a node fails.

use std::io::IsTerminal;
use std::path::Path;

use flow_engine::run::{Reporter, RunEvent};
use indicatif::{ProgressBar, ProgressStyle};

/// Lines of a failed node's log shown inline.
const LOG_TAIL_LINES: usize = 20;

pub struct ConsoleReporter {
    bar: Option<ProgressBar>,
    /// With --json, stdout carries only the final JSON; node lines go to stderr.
    json: bool,
}

impl ConsoleReporter {
    pub fn new(json: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        ConsoleReporter { bar, json }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.json => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for ConsoleReporter {
    fn event(&mut self, event: RunEvent) {
        match event {
            RunEvent::Started { .. } => {}
            RunEvent::Waiting { id } => {
                self.line(format!(
                    "  waiting {id}: another flow process is running it"
                ));
            }
            RunEvent::Succeeded { id, duration } => {
                self.line(format!("  ok      {id} ({:.1}s)", duration.as_secs_f64()));
            }
            RunEvent::UpToDate { id } => {
                self.line(format!(
                    "  fresh   {id} (upstream re-ran with identical outputs)"
                ));
            }
            RunEvent::Failed { id, why, log } => {
                let mut text = format!("  FAILED  {id}: {why}\n          log: {}", log.display());
                let tail = log_tail(&log, LOG_TAIL_LINES);
                if !tail.is_empty() {
                    text.push_str("\n          last lines of the log:");
                    for l in tail {
                        text.push_str(&format!("\n          | {l}"));
                    }
                }
                self.line(text);
            }
            RunEvent::Skipped { id, because } => {
                self.line(format!("  skipped {id}: {because}"));
            }
            RunEvent::Progress {
                done,
                total,
                running,
                failed,
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(format!("running {running}, failed {failed}"));
                }
            }
            RunEvent::Interrupted => {
                self.line(
                    "interrupted: stopping running nodes (Ctrl-C again to exit at once)".into(),
                );
            }
        }
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
