//! Metrics parsing from run directories written per spec/rfdetr.md §3.

use std::path::PathBuf;

use flow_tasks::metrics::{Format, RunMetrics, Track, read_run_dir};

fn fixture(name: &str) -> RunMetrics {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name);
    read_run_dir(&dir)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn has_problem(m: &RunMetrics, line: Option<usize>, needle: &str) -> bool {
    m.problems
        .iter()
        .any(|p| p.line == line && p.what.contains(needle))
}

/// Both fixtures' runs: EMA's epoch 1 has the best mask AP.
fn assert_ema_best_at_epoch_1(m: &RunMetrics) {
    let best = m.best.unwrap();
    assert_eq!(best.epoch, 1);
    assert_eq!(best.track, Track::Ema);
    assert!(close(best.mask_map, 0.25));
    assert!(close(best.bbox_map.unwrap(), 0.31));
}

#[test]
fn log_txt_three_epochs_ema_wins() {
    let m = fixture("log_ema");
    assert_eq!(m.format, Format::LogTxt);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    assert_eq!(m.epochs.len(), 3);
    assert_eq!(
        m.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let e0 = &m.epochs[0];
    assert!(close(e0.train_loss.unwrap(), 1.5));
    assert!(close(e0.test_loss.unwrap(), 1.7));
    assert!(close(e0.ema_test_loss.unwrap(), 1.6));
    assert!(close(e0.train_lr.unwrap(), 0.0001));
    assert!(close(e0.losses["train_loss_ce"], 0.4));
    let segm = e0.segm.unwrap();
    assert!(close(segm.ap().unwrap(), 0.10));
    assert!(close(segm.ap50().unwrap(), 0.40));
    assert!(close(segm.ar100().unwrap(), 0.30));
    assert!(close(segm.arl().unwrap(), 0.5));
    assert_eq!(segm.aps(), None, "COCO's -1 (empty) reads as None");
    assert_eq!(segm.values[3], Some(-1.0));
    // Both tracks are kept.
    assert!(close(m.epochs[1].segm.unwrap().ap().unwrap(), 0.20));
    assert!(close(m.epochs[1].ema_segm.unwrap().ap().unwrap(), 0.25));

    assert_ema_best_at_epoch_1(&m);
}

#[test]
fn metrics_csv_three_epochs_ema_wins() {
    let m = fixture("csv_ema");
    assert_eq!(m.format, Format::MetricsCsv);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    assert_eq!(m.epochs.len(), 3);
    let e0 = &m.epochs[0];
    assert!(close(e0.train_loss.unwrap(), 1.5));
    assert!(close(e0.train_lr.unwrap(), 0.0001));
    assert!(close(e0.test_loss.unwrap(), 1.7));
    assert!(close(e0.ema_test_loss.unwrap(), 1.6));
    let bbox = e0.bbox.unwrap();
    assert!(close(bbox.ap().unwrap(), 0.12));
    assert!(close(bbox.ap75().unwrap(), 0.17));
    assert!(close(bbox.ar100().unwrap(), 0.32));
    assert_eq!(bbox.aps(), None, "not in metrics.csv");
    assert!(close(m.epochs[1].segm.unwrap().ap().unwrap(), 0.20));

    assert_ema_best_at_epoch_1(&m);
}

#[test]
fn log_txt_half_written_last_line() {
    let m = fixture("log_truncated");
    assert_eq!(m.epochs.len(), 2);
    assert!(has_problem(&m, Some(3), "half-written"), "{:?}", m.problems);
    assert_eq!(m.best.unwrap().epoch, 1);
}

#[test]
fn log_txt_nan_and_infinity() {
    let m = fixture("log_nan");
    assert_eq!(m.epochs.len(), 3);
    let e1 = &m.epochs[1];
    assert_eq!(e1.test_loss, None);
    assert_eq!(e1.train_loss, None);
    assert_eq!(e1.bbox.unwrap().ap(), None);
    assert!(close(e1.bbox.unwrap().ap50().unwrap(), 0.5));
    assert!(
        has_problem(&m, Some(2), "`test_loss` is NaN"),
        "{:?}",
        m.problems
    );
    assert!(has_problem(&m, Some(2), "`train_loss` is Infinity"));
    assert!(has_problem(&m, Some(2), "`test_coco_eval_bbox`[0] is NaN"));
    let best = m.best.unwrap();
    assert_eq!((best.epoch, best.track), (1, Track::Ema));
}

#[test]
fn log_txt_missing_key() {
    let m = fixture("log_missing_key");
    assert_eq!(m.epochs.len(), 3);
    assert!(
        has_problem(&m, Some(2), "missing key `test_coco_eval_masks`"),
        "{:?}",
        m.problems
    );
    assert_eq!(m.epochs[1].segm, None);
    assert!(m.epochs[1].bbox.is_some());
    let best = m.best.unwrap();
    assert_eq!((best.epoch, best.track), (2, Track::Ema));
    assert!(close(best.mask_map, 0.24));
}

#[test]
fn log_txt_empty_file() {
    let m = fixture("log_empty");
    assert_eq!(m.format, Format::LogTxt);
    assert!(m.epochs.is_empty());
    assert_eq!(m.best, None);
    assert!(has_problem(&m, None, "empty"), "{:?}", m.problems);
}

#[test]
fn unreadable_file_is_a_problem() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("metrics_unreadable");
    let _ = std::fs::remove_dir_all(&dir);
    // A directory named log.txt cannot be read as a file, even by root.
    std::fs::create_dir_all(dir.join("log.txt")).unwrap();
    let m = read_run_dir(&dir);
    assert_eq!(m.format, Format::LogTxt);
    assert!(m.epochs.is_empty());
    assert!(has_problem(&m, None, "cannot read"), "{:?}", m.problems);
}

#[test]
fn no_metrics_file() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("metrics_none");
    std::fs::create_dir_all(&dir).unwrap();
    let m = read_run_dir(&dir);
    assert_eq!(m.format, Format::None);
    assert!(m.epochs.is_empty());
    assert!(has_problem(&m, None, "neither"), "{:?}", m.problems);
}

#[test]
fn missing_dir_is_a_problem() {
    let m = fixture("no_such_run");
    assert_eq!(m.format, Format::None);
    assert_eq!(m.problems.len(), 1);
}

#[test]
fn metrics_csv_half_written_last_row() {
    let m = fixture("csv_truncated");
    assert_eq!(m.epochs.len(), 3);
    assert!(
        has_problem(&m, Some(10), "half-written"),
        "{:?}",
        m.problems
    );
    assert_eq!(m.epochs[2].segm, None);
    assert!(close(m.epochs[2].train_loss.unwrap(), 1.3));
    let best = m.best.unwrap();
    assert_eq!((best.epoch, best.track), (1, Track::Ema));
}

#[test]
fn metrics_csv_nan_and_inf() {
    let m = fixture("csv_nan");
    assert_eq!(m.epochs.len(), 3);
    assert_eq!(m.epochs[1].test_loss, None);
    assert_eq!(m.epochs[1].segm.unwrap().ap(), None);
    assert!(
        has_problem(&m, Some(7), "`val/loss` is nan"),
        "{:?}",
        m.problems
    );
    assert!(has_problem(&m, Some(7), "`val/segm_mAP_50_95` is inf"));
    let best = m.best.unwrap();
    assert_eq!((best.epoch, best.track), (1, Track::Ema));
    assert!(close(best.mask_map, 0.25));
}

#[test]
fn metrics_csv_missing_mask_columns() {
    let m = fixture("csv_missing_key");
    assert_eq!(m.epochs.len(), 3);
    assert!(
        has_problem(&m, Some(1), "missing column"),
        "{:?}",
        m.problems
    );
    assert!(
        m.epochs
            .iter()
            .all(|e| e.segm.is_none() && e.ema_segm.is_none())
    );
    assert!(close(m.epochs[1].ema_bbox.unwrap().ap().unwrap(), 0.31));
    assert_eq!(m.best, None);
    assert!(has_problem(&m, None, "no epoch has a mask mAP"));
}

#[test]
fn metrics_csv_empty_file() {
    let m = fixture("csv_empty");
    assert_eq!(m.format, Format::MetricsCsv);
    assert!(m.epochs.is_empty());
    assert!(has_problem(&m, None, "empty"), "{:?}", m.problems);
}

/// A dir with both files reads metrics.csv, the newer (RF-DETR ≥ 1.6) format.
#[test]
fn both_files_prefer_metrics_csv() {
    let m = fixture("both");
    assert_eq!(m.format, Format::MetricsCsv);
    assert_eq!(m.epochs.len(), 3, "the one-line log.txt was not read");
    assert_eq!(m.best.unwrap().epoch, 1);
}

#[test]
fn versioned_metrics_file() {
    let json = fixture("log_ema").to_json();
    assert!(json.starts_with("{\"version\":1,\"format\":\"log.txt\",\"best\":{\"epoch\":1,\"mask_map\":0.25,\"bbox_map\":0.31,\"track\":\"ema\"}"), "{json}");
    assert!(json.ends_with("\"problems\":[]}"));
    let none = fixture("no_such_run").to_json();
    assert!(none.contains("\"format\":null"));
}
