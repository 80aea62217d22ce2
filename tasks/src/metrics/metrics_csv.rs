//! RF-DETR ≥ 1.6 `metrics.csv` (spec/rfdetr.md §3): a Lightning CSVLogger file with a header row
//! and separate train and val rows per epoch (and per-step rows for `train/lr`); a cell is empty
//! where that row did not log the column. Per epoch, the last non-empty value of a column wins.
//!
//! Only part of the COCO vectors is logged: `val/mAP_50_95`, `val/mAP_50`, `val/mAP_75`,
//! `val/mAR` (bbox: AP, AP50, AP75, AR@max) and `val/segm_mAP_50_95`, `val/segm_mAP_50`
//! (mask: AP, AP50); `val/ema_*` mirror them for the EMA model. `test/*` (the test split) is not
//! read.

use std::collections::BTreeMap;

use super::model::{CocoSummary, EpochMetrics, Problem};

const BBOX: [(&str, usize); 4] = [("mAP_50_95", 0), ("mAP_50", 1), ("mAP_75", 2), ("mAR", 8)];
const SEGM: [(&str, usize); 2] = [("segm_mAP_50_95", 0), ("segm_mAP_50", 1)];

/// Parses the text of a metrics.csv; bad rows are reported in `problems` and skipped.
pub fn parse(text: &str, problems: &mut Vec<Problem>) -> Vec<EpochMetrics> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        problems.push(Problem::file("metrics.csv is empty"));
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let Some(epoch_col) = cols.iter().position(|c| *c == "epoch") else {
        problems.push(Problem::at(1, "missing column `epoch`"));
        return Vec::new();
    };
    if !cols
        .iter()
        .any(|c| *c == "val/segm_mAP_50_95" || *c == "val/ema_segm_mAP_50_95")
    {
        problems.push(Problem::at(
            1,
            "missing column `val/segm_mAP_50_95` (and `val/ema_segm_mAP_50_95`): no mask mAP",
        ));
    }

    let mut by_epoch: BTreeMap<u32, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut rows = 0;
    for (idx, row) in lines {
        let line = idx + 1;
        rows += 1;
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != cols.len() {
            problems.push(Problem::at(
                line,
                format!(
                    "{} cells, the header has {} (half-written row?)",
                    cells.len(),
                    cols.len()
                ),
            ));
            continue;
        }
        let epoch = match cells[epoch_col].parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => n as u32,
            _ if cells[epoch_col].is_empty() => {
                problems.push(Problem::at(line, "no `epoch` value"));
                continue;
            }
            _ => {
                problems.push(Problem::at(
                    line,
                    format!("bad `epoch` value `{}`", cells[epoch_col]),
                ));
                continue;
            }
        };
        let acc = by_epoch.entry(epoch).or_default();
        for (i, (col, cell)) in cols.iter().zip(&cells).enumerate() {
            if i == epoch_col || cell.is_empty() {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    acc.insert(col, n);
                }
                Ok(_) => problems.push(Problem::at(line, format!("`{col}` is {cell}"))),
                Err(_) => problems.push(Problem::at(
                    line,
                    format!("`{col}` is not a number: `{cell}`"),
                )),
            }
        }
    }
    if rows == 0 {
        problems.push(Problem::file("metrics.csv has a header but no rows"));
    }

    by_epoch
        .into_iter()
        .map(|(epoch, acc)| {
            let get = |k: &str| acc.get(k).copied();
            EpochMetrics {
                epoch,
                train_loss: get("train/loss"),
                train_lr: get("train/lr"),
                test_loss: get("val/loss"),
                ema_test_loss: get("val/ema_loss"),
                losses: acc
                    .iter()
                    .filter(|(k, _)| k.contains("loss"))
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                bbox: summary(&acc, "val/", &BBOX),
                segm: summary(&acc, "val/", &SEGM),
                ema_bbox: summary(&acc, "val/ema_", &BBOX),
                ema_segm: summary(&acc, "val/ema_", &SEGM),
            }
        })
        .collect()
}

fn summary(acc: &BTreeMap<&str, f64>, prefix: &str, map: &[(&str, usize)]) -> Option<CocoSummary> {
    let mut s = CocoSummary::default();
    let mut any = false;
    for (name, slot) in map {
        if let Some(v) = acc.get(format!("{prefix}{name}").as_str()) {
            s.values[*slot] = Some(*v);
            any = true;
        }
    }
    any.then_some(s)
}
