//! RF-DETR ≤ 1.5 `log.txt` (spec/rfdetr.md §3): one JSON object per epoch line, with `train_*`,
//! `test_*` (the validation split), `epoch`, `ema_test_*` keys and the 12-number COCO vectors
//! `test_coco_eval_bbox` / `test_coco_eval_masks` (and their `ema_` twins).

use super::json::{self, Json};
use super::model::{CocoSummary, EpochMetrics, Problem};

/// Keys every epoch line must have; a missing one is reported for that line.
const REQUIRED: [&str; 4] = [
    "epoch",
    "train_loss",
    "test_coco_eval_bbox",
    "test_coco_eval_masks",
];

/// Parses the text of a log.txt. Bad lines are reported in `problems` and skipped; a line that
/// parses but lacks keys still yields what it has.
pub fn parse(text: &str, problems: &mut Vec<Problem>) -> Vec<EpochMetrics> {
    let mut epochs: Vec<EpochMetrics> = Vec::new();
    let mut any_line = false;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        any_line = true;
        let obj = match json::parse(raw) {
            Ok(v @ Json::Obj(_)) => v,
            Ok(_) => {
                problems.push(Problem::at(line, "not a JSON object"));
                continue;
            }
            Err(e) => {
                problems.push(Problem::at(line, format!("unreadable JSON: {e}")));
                continue;
            }
        };
        for key in REQUIRED {
            if obj.get(key).is_none() {
                problems.push(Problem::at(line, format!("missing key `{key}`")));
            }
        }
        let epoch = match obj.get("epoch") {
            Some(Json::Num(n)) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 => *n as u32,
            other => {
                let guess = epochs.last().map_or(0, |e| e.epoch + 1);
                if other.is_some() {
                    problems.push(Problem::at(line, "`epoch` is not a non-negative integer"));
                }
                problems.push(Problem::at(line, format!("assuming epoch {guess}")));
                guess
            }
        };
        let mut m = EpochMetrics {
            epoch,
            ..EpochMetrics::default()
        };
        let Json::Obj(kv) = &obj else { unreachable!() };
        for (k, v) in kv {
            let Json::Num(n) = v else { continue };
            if !n.is_finite() {
                problems.push(Problem::at(line, format!("`{k}` is {}", show(*n))));
                continue;
            }
            if k.contains("loss") {
                m.losses.insert(k.clone(), *n);
            }
            match k.as_str() {
                "train_loss" => m.train_loss = Some(*n),
                "train_lr" => m.train_lr = Some(*n),
                "test_loss" => m.test_loss = Some(*n),
                "ema_test_loss" => m.ema_test_loss = Some(*n),
                _ => {}
            }
        }
        m.bbox = coco(&obj, "test_coco_eval_bbox", line, problems);
        m.segm = coco(&obj, "test_coco_eval_masks", line, problems);
        m.ema_bbox = coco(&obj, "ema_test_coco_eval_bbox", line, problems);
        m.ema_segm = coco(&obj, "ema_test_coco_eval_masks", line, problems);
        epochs.push(m);
    }
    if !any_line {
        problems.push(Problem::file("log.txt is empty"));
    }
    epochs
}

fn show(n: f64) -> &'static str {
    if n.is_nan() {
        "NaN"
    } else if n > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn coco(obj: &Json, key: &str, line: usize, problems: &mut Vec<Problem>) -> Option<CocoSummary> {
    let v = obj.get(key)?;
    let Json::Arr(items) = v else {
        problems.push(Problem::at(line, format!("`{key}` is not a list")));
        return None;
    };
    if items.len() != 12 {
        problems.push(Problem::at(
            line,
            format!("`{key}` has {} numbers, expected 12", items.len()),
        ));
    }
    let mut s = CocoSummary::default();
    for (i, item) in items.iter().take(12).enumerate() {
        match item {
            Json::Num(n) if n.is_finite() => s.values[i] = Some(*n),
            Json::Num(n) => {
                problems.push(Problem::at(line, format!("`{key}`[{i}] is {}", show(*n))));
            }
            _ => problems.push(Problem::at(line, format!("`{key}`[{i}] is not a number"))),
        }
    }
    Some(s)
}
