//! RF-DETR's `results_json` (spec §3): per class and over all classes, AP50:95, AP50 and
//! precision / recall / F1 at IoU 0.5, from a COCO evaluation's precision curves.
//!
//! The reference picks P/R/F1 at the one confidence threshold that maximises macro-F1 over
//! classes, which needs pycocotools' score curves; flow-coco's evaluator keeps precision and
//! recall only, so each class's P/R/F1 here is taken at its own best-F1 point of the
//! precision/recall curve (at the 101 recall thresholds), and "all" is their mean. AP values
//! are exact.

use flow_coco::eval::{Evaluation, recall_thresholds};
use flow_coco::format::AnnotationFile;
use serde_json::{Value, json};

/// Area range "all" and the largest max-detections setting: the curve axes used.
const AREA_ALL: usize = 0;
const MAX_DETS_LAST: usize = 2;

/// Per-class numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClassResult {
    /// AP over IoU 0.5:0.95.
    pub map_50_95: f64,
    /// AP at IoU 0.5.
    pub map_50: f64,
    /// Precision at the best-F1 point (IoU 0.5).
    pub precision: f64,
    /// Recall there.
    pub recall: f64,
    /// F1 there.
    pub f1: f64,
}

/// The numbers of category axis index `k`; `None` when the class has no ground truth.
pub fn class_result(ev: &Evaluation, k: usize) -> Option<ClassResult> {
    let acc = &ev.accumulated;
    let mean = |ts: std::ops::Range<usize>| {
        let v: Vec<f64> = ts
            .flat_map(|t| (0..101).map(move |r| (t, r)))
            .map(|(t, r)| acc.precision_at(t, r, k, AREA_ALL, MAX_DETS_LAST))
            .filter(|p| *p > -1.0)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let map_50_95 = mean(0..10)?;
    let map_50 = mean(0..1).unwrap_or(0.0);
    let rec = recall_thresholds();
    let mut best = ClassResult {
        map_50_95,
        map_50,
        ..ClassResult::default()
    };
    for (r, &recall) in rec.iter().enumerate() {
        let p = acc.precision_at(0, r, k, AREA_ALL, MAX_DETS_LAST);
        if p <= 0.0 {
            continue;
        }
        let f1 = 2.0 * p * recall / (p + recall);
        if f1 > best.f1 {
            best.precision = p;
            best.recall = recall;
            best.f1 = f1;
        }
    }
    Some(best)
}

/// The `results_json` object of an evaluation against `gt`.
pub fn results_json(gt: &AnnotationFile, ev: &Evaluation) -> Value {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for (k, cat_id) in ev.cat_ids.iter().enumerate() {
        let Some(c) = gt.categories.iter().find(|c| c.id == *cat_id) else {
            continue;
        };
        if c.supercategory.as_deref() == Some("none") {
            continue;
        }
        let Some(r) = class_result(ev, k) else {
            continue;
        };
        rows.push(row(&c.name, &r));
        all.push(r);
    }
    let n = all.len().max(1) as f64;
    let mean = |f: fn(&ClassResult) -> f64| all.iter().map(f).sum::<f64>() / n;
    let total = ClassResult {
        map_50_95: mean(|r| r.map_50_95),
        map_50: mean(|r| r.map_50),
        precision: mean(|r| r.precision),
        recall: mean(|r| r.recall),
        f1: mean(|r| r.f1),
    };
    rows.push(row("all", &total));
    json!({
        "class_map": rows,
        "map": total.map_50,
        "precision": total.precision,
        "recall": total.recall,
        "f1_score": total.f1,
    })
}

fn row(name: &str, r: &ClassResult) -> Value {
    json!({
        "class": name,
        "map@50:95": r.map_50_95,
        "map@50": r.map_50,
        "precision": r.precision,
        "recall": r.recall,
        "f1_score": r.f1,
    })
}
