//! The ranking every output shares: runs with a best epoch by mask mAP, then the flagged ones.

use std::cmp::Ordering;

use super::run::CompareRun;
use crate::metrics::{Best, Track};

/// Whether a run's metrics are usable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    /// A best epoch and no problem.
    Ok,
    /// A best epoch, but the metrics file had problems (e.g. a half-written last line); the run
    /// is ranked and the problems are shown.
    Warning(String),
    /// No best epoch (no metrics, unreadable, or no mask mAP): listed last with the reason.
    Flagged(String),
}

impl Status {
    /// The leaderboard's status column.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning(_) => "warning",
            Status::Flagged(_) => "flagged",
        }
    }

    /// The leaderboard's note column: the error or problems, empty when ok.
    pub(crate) fn note(&self) -> &str {
        match self {
            Status::Ok => "",
            Status::Warning(s) | Status::Flagged(s) => s,
        }
    }
}

/// One leaderboard line.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// 1-based; `None` for flagged runs.
    pub rank: Option<usize>,
    pub run: &'a CompareRun,
    pub best: Option<Best>,
    pub status: Status,
}

/// Ranked runs first (mask mAP descending; ties by bbox mAP descending, then id), flagged runs
/// after them by id. The order is total, so every output lists runs the same way.
pub(crate) fn rank(runs: &[CompareRun]) -> Vec<Entry<'_>> {
    let mut entries: Vec<Entry<'_>> = runs.iter().map(entry).collect();
    entries.sort_by(|a, b| match (&a.best, &b.best) {
        (Some(x), Some(y)) => y
            .mask_map
            .total_cmp(&x.mask_map)
            .then_with(|| cmp_opt_desc(x.bbox_map, y.bbox_map))
            .then_with(|| a.run.id.cmp(&b.run.id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.run.id.cmp(&b.run.id),
    });
    let mut next = 1;
    for e in &mut entries {
        if e.best.is_some() {
            e.rank = Some(next);
            next += 1;
        }
    }
    entries
}

/// Descending, with a missing value after any present one.
fn cmp_opt_desc(x: Option<f64>, y: Option<f64>) -> Ordering {
    match (x, y) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn entry(run: &CompareRun) -> Entry<'_> {
    let (best, status) = match &run.metrics {
        Err(e) => (None, Status::Flagged(e.clone())),
        Ok(m) => {
            let problems = m
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            match m.best {
                Some(b) if problems.is_empty() => (Some(b), Status::Ok),
                Some(b) => (Some(b), Status::Warning(problems)),
                None if problems.is_empty() => {
                    (None, Status::Flagged("no epoch has a mask mAP".to_string()))
                }
                None => (None, Status::Flagged(problems)),
            }
        }
    };
    Entry {
        rank: None,
        run,
        best,
        status,
    }
}

/// How the winning track is written in the leaderboard.
pub(crate) fn track_name(t: Track) -> &'static str {
    match t {
        Track::Regular => "regular",
        Track::Ema => "ema",
    }
}
