//! `flow metrics` on run directories written in RF-DETR's formats.

mod common;

use std::path::Path;

use common::{TestProject, stdout};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tasks/tests/fixtures/metrics")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn reports_the_best_epoch_and_its_track() {
    let p = TestProject::new();
    let out = p.flow(&["metrics", &fixture("log_ema"), &fixture("csv_ema")]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(
        text.matches("best epoch 1 (EMA): mask mAP 0.2500, bbox mAP 0.3100")
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn problems_are_reported_per_run_never_a_crash() {
    let p = TestProject::new();
    let out = p.flow(&[
        "metrics",
        &fixture("log_truncated"),
        &fixture("log_empty"),
        &fixture("log_ema"),
    ]);
    assert_eq!(out.status.code(), Some(1), "problems found");
    let text = stdout(&out);
    assert!(text.contains("line 3:"), "{text}");
    assert!(text.contains("log_empty (log.txt, 0 epochs)"), "{text}");
    assert!(text.contains("best epoch 1 (EMA)"), "{text}");
}

#[test]
fn json_is_the_versioned_metrics_file() {
    let p = TestProject::new();
    let out = p.flow(&["metrics", &fixture("log_ema"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["best"]["track"], "ema");
    assert_eq!(v["epochs"].as_array().unwrap().len(), 3);
}
