//! Unit tests of the pieces behind `render`: ranking, colours, per-plot data, digests, CSV,
//! escaping and the state file.

use std::collections::BTreeMap;

use super::csv::leaderboard_csv;
use super::digest::Digest;
use super::leaderboard::{Status, rank};
use super::palette::Colors;
use super::plot::{bars, curves, scatter, sizes};
use super::report::escape;
use super::state::{STATE_FILE, State};
use super::*;
use crate::experiment::ModelSize;
use crate::metrics::{CocoSummary, EpochMetrics, Format, Problem, RunMetrics, best_epoch};

fn coco(ap: f64) -> CocoSummary {
    let mut values = [None; 12];
    values[0] = Some(ap);
    CocoSummary { values }
}

/// A run whose epochs have these (train loss, regular mask AP, EMA mask AP, bbox AP) values.
fn run(id: &str, size: ModelSize, lr: f64, epochs: &[(f64, f64, f64, f64)]) -> CompareRun {
    let epochs: Vec<EpochMetrics> = epochs
        .iter()
        .enumerate()
        .map(|(i, &(loss, m, ema, b))| EpochMetrics {
            epoch: i as u32,
            train_loss: Some(loss),
            segm: Some(coco(m)),
            ema_segm: Some(coco(ema)),
            bbox: Some(coco(b)),
            ema_bbox: Some(coco(b + 0.01)),
            ..EpochMetrics::default()
        })
        .collect();
    CompareRun {
        id: id.to_string(),
        name: format!("name-{id}"),
        model_size: size,
        hyperparameters: Hyperparameters {
            lr: Some(lr),
            ..Hyperparameters::default()
        },
        metrics: Ok(RunMetrics {
            format: Format::LogTxt,
            best: best_epoch(&epochs),
            epochs,
            problems: Vec::new(),
        }),
        gpu_hours: None,
        provenance: BTreeMap::new(),
    }
}

fn one(id: &str, mask: f64, bbox: f64) -> CompareRun {
    run(id, ModelSize::Nano, 1e-4, &[(1.0, mask, 0.0, bbox)])
}

#[test]
fn rank_orders_by_mask_then_bbox_then_id_with_flagged_last() {
    let mut broken = one("a-broken", 0.0, 0.0);
    broken.metrics = Err("log.txt: cannot read".to_string());
    let runs = vec![
        one("c", 0.40, 0.50),
        broken,
        one("b", 0.40, 0.50),
        one("d", 0.40, 0.55),
        one("e", 0.60, 0.10),
    ];
    let entries = rank(&runs);
    let order: Vec<(&str, Option<usize>)> = entries
        .iter()
        .map(|e| (e.run.id.as_str(), e.rank))
        .collect();
    assert_eq!(
        order,
        [
            ("e", Some(1)),
            ("d", Some(2)),
            ("b", Some(3)),
            ("c", Some(4)),
            ("a-broken", None)
        ]
    );
    assert_eq!(
        entries[4].status,
        Status::Flagged("log.txt: cannot read".into())
    );
}

#[test]
fn a_run_with_problems_but_a_best_epoch_is_ranked_with_a_warning() {
    let mut r = one("w", 0.3, 0.3);
    if let Ok(m) = &mut r.metrics {
        m.problems.push(Problem::at(7, "the line ends early"));
    }
    let mut empty = one("x", 0.3, 0.3);
    empty.metrics = Ok(RunMetrics {
        format: Format::None,
        epochs: Vec::new(),
        best: None,
        problems: vec![Problem::file("run/ has neither metrics.csv nor log.txt")],
    });
    let runs = [r, empty];
    let entries = rank(&runs);
    assert_eq!(entries[0].rank, Some(1));
    assert_eq!(
        entries[0].status,
        Status::Warning("line 7: the line ends early".into())
    );
    assert_eq!(
        entries[1].status,
        Status::Flagged("run/ has neither metrics.csv nor log.txt".into())
    );
}

#[test]
fn colours_follow_the_leaderboard_and_are_shared_by_every_plot() {
    let runs = vec![
        run(
            "small-best",
            ModelSize::Small,
            1e-4,
            &[(1.0, 0.2, 0.1, 0.2)],
        ),
        run("nano-top", ModelSize::Nano, 2e-4, &[(1.0, 0.5, 0.1, 0.5)]),
        run("nano-2", ModelSize::Nano, 3e-4, &[(1.0, 0.4, 0.1, 0.4)]),
    ];
    let opts = CompareOptions {
        max_curves: 1,
        max_bars: 1,
        ..CompareOptions::default()
    };
    let entries = rank(&runs);
    let colors = Colors::assign(&entries, &opts);
    let top = colors.get("nano-top").expect("the best run is featured");
    let small = colors
        .get("small-best")
        .expect("best of its size is featured");
    assert_ne!(top, small);
    assert_eq!(
        colors.get("nano-2"),
        None,
        "neither top nor best of its size"
    );
    let c = curves::prepare(&entries, &colors, &opts);
    let b = bars::prepare(&entries, &colors, &opts);
    let s = sizes::prepare(&entries, &colors, &opts);
    assert_eq!(c.curves[0].color, top);
    assert_eq!(b.bars[0].color, top);
    assert_eq!(
        s.sizes
            .iter()
            .map(|x| (x.size, x.color))
            .collect::<Vec<_>>(),
        [(ModelSize::Nano, top), (ModelSize::Small, small)]
    );
}

#[test]
fn curves_follow_the_winning_track() {
    // EMA wins at epoch 1 (0.45 > 0.40): the mAP curve is the EMA one.
    let runs = vec![run(
        "r",
        ModelSize::Nano,
        1e-4,
        &[(3.0, 0.10, 0.20, 0.1), (2.0, 0.40, 0.45, 0.4)],
    )];
    let entries = rank(&runs);
    let d = curves::prepare(&entries, &Colors::default(), &CompareOptions::default());
    assert_eq!(d.curves[0].map, vec![(0.0, 0.20), (1.0, 0.45)]);
    assert_eq!(d.curves[0].loss, vec![(0.0, 3.0), (1.0, 2.0)]);
}

#[test]
fn scatter_needs_three_distinct_learning_rates() {
    let opts = CompareOptions::default();
    let two = vec![
        run("a", ModelSize::Nano, 1e-4, &[(1.0, 0.3, 0.0, 0.3)]),
        run("b", ModelSize::Nano, 1e-4, &[(1.0, 0.4, 0.0, 0.3)]),
        run("c", ModelSize::Nano, 2e-4, &[(1.0, 0.5, 0.0, 0.3)]),
    ];
    let entries = rank(&two);
    let d = scatter::prepare(&entries, &Colors::default(), &opts);
    assert!(matches!(
        d,
        scatter::ScatterData::TooFew {
            distinct: 2,
            runs: 3,
            ..
        }
    ));
    assert!(
        d.message()
            .is_some_and(|m| m.contains("2 distinct learning rates"))
    );
    let mut three = two.clone();
    three.push(run("d", ModelSize::Nano, 4e-4, &[(1.0, 0.2, 0.0, 0.3)]));
    let entries = rank(&three);
    let d = scatter::prepare(&entries, &Colors::default(), &opts);
    assert!(matches!(&d, scatter::ScatterData::Points { points, .. } if points.len() == 4));
    assert_eq!(d.message(), None);
}

#[test]
fn scatter_digest_ignores_curves_but_not_lr_or_map() {
    let opts = CompareOptions::default();
    let base = vec![
        run(
            "a",
            ModelSize::Nano,
            1e-4,
            &[(3.0, 0.1, 0.0, 0.1), (2.0, 0.3, 0.0, 0.3)],
        ),
        run(
            "b",
            ModelSize::Nano,
            2e-4,
            &[(3.0, 0.1, 0.0, 0.1), (2.0, 0.4, 0.0, 0.3)],
        ),
        run(
            "c",
            ModelSize::Nano,
            4e-4,
            &[(3.0, 0.1, 0.0, 0.1), (2.0, 0.5, 0.0, 0.3)],
        ),
    ];
    let digests = |runs: &[CompareRun]| {
        let entries = rank(runs);
        let colors = Colors::assign(&entries, &opts);
        (
            curves::prepare(&entries, &colors, &opts).digest(),
            scatter::prepare(&entries, &colors, &opts).digest(),
        )
    };
    let (c0, s0) = digests(&base);
    let mut loss_changed = base.clone();
    if let Ok(m) = &mut loss_changed[0].metrics {
        m.epochs[0].train_loss = Some(9.0);
    }
    let (c1, s1) = digests(&loss_changed);
    assert_ne!(c0, c1);
    assert_eq!(s0, s1);
    let mut lr_changed = base.clone();
    lr_changed[0].hyperparameters.lr = Some(5e-5);
    assert_ne!(digests(&lr_changed).1, s0);
}

#[test]
fn digest_stream_is_pinned() {
    // Pins the framing (type tags, length prefixes, renderer version): a change here re-renders
    // every user's outputs once, so it must be deliberate (bump RENDERER_VERSION instead).
    let d = Digest::new("x.png")
        .str("a")
        .u64(1)
        .f64(0.5)
        .opt_f64(None)
        .finish();
    assert_eq!(d, GOLDEN);
    let other = Digest::new("x.png").str("a").u64(1).f64(0.5).finish();
    assert_ne!(other, d);
}

const GOLDEN: &str = "0e8cf4e999932cc3ea33646a106642d1985bb9f5ae69524fcf54905413f24548";

#[test]
fn csv_quotes_what_needs_quoting() {
    let mut r = one("id,1", 0.5, 0.25);
    r.name = "say \"hi\"\nthere".to_string();
    r.gpu_hours = Some(1.234);
    let runs = [r];
    let text = leaderboard_csv(&rank(&runs));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "rank,id,name,model_size,mask_mAP,bbox_mAP,best_epoch,best_track,gpu_hours,lr,\
             lr_encoder,lr_scheduler,epochs,batch_size,grad_accum_steps,weight_decay,status,note"
        )
    );
    assert!(
        text.contains("1,\"id,1\",\"say \"\"hi\"\"\nthere\",nano,0.5,0.25,0,regular,1.23,1e-4,")
    );
}

#[test]
fn escape_covers_markup_and_quotes() {
    assert_eq!(
        escape("<script>alert('x')</script> & \"q\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
}

#[test]
fn state_refuses_a_newer_version_and_forgets_an_unreadable_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(STATE_FILE),
        r#"{"version": 99, "outputs": {}}"#,
    )
    .expect("write");
    assert!(matches!(
        State::load(dir.path()),
        Err(CompareError::StateTooNew { found: 99, .. })
    ));
    std::fs::write(dir.path().join(STATE_FILE), "{ not json").expect("write");
    assert_eq!(State::load(dir.path()).expect("load"), State::empty());
}

#[test]
fn filter_keeps_ids_and_size_and_rejects_unknown_ids() {
    let runs = vec![
        run("a", ModelSize::Nano, 1e-4, &[(1.0, 0.3, 0.0, 0.3)]),
        run("b", ModelSize::Small, 1e-4, &[(1.0, 0.3, 0.0, 0.3)]),
        run("c", ModelSize::Small, 1e-4, &[(1.0, 0.3, 0.0, 0.3)]),
    ];
    let ids = |v: Vec<CompareRun>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let f = RunFilter {
        ids: vec!["a".into(), "b".into()],
        model_size: None,
    };
    assert_eq!(ids(f.apply(runs.clone()).expect("apply")), ["a", "b"]);
    let f = RunFilter {
        ids: Vec::new(),
        model_size: Some(ModelSize::Small),
    };
    assert_eq!(ids(f.apply(runs.clone()).expect("apply")), ["b", "c"]);
    let f = RunFilter {
        ids: vec!["a".into(), "zz".into()],
        model_size: Some(ModelSize::Small),
    };
    let err = f.apply(runs).expect_err("unknown id");
    assert_eq!(err.to_string(), "no run has the id zz");
}

#[test]
fn hyperparameters_from_a_registry_snapshot() {
    let snapshot: BTreeMap<String, serde_json::Value> = serde_json::from_str(
        r#"{"training.lr": 0.0001, "training.lr_encoder": "1.5e-4", "training.epochs": 50,
            "training.lr_scheduler": "cosine", "training.batch_size": 4.5,
            "training.warmup_epochs": 2, "data.dataset_dir": "data/lars"}"#,
    )
    .expect("json");
    let hp = Hyperparameters::from_snapshot(&snapshot);
    assert_eq!(hp.lr, Some(1e-4));
    assert_eq!(hp.lr_encoder, Some(1.5e-4));
    assert_eq!(hp.epochs, Some(50));
    assert_eq!(hp.lr_scheduler.as_deref(), Some("cosine"));
    assert_eq!(hp.batch_size, None, "not a whole number");
    assert_eq!(hp.grad_accum_steps, None);
    assert_eq!(
        hp.other,
        BTreeMap::from([
            ("data.dataset_dir".to_string(), "data/lars".to_string()),
            ("training.batch_size".to_string(), "4.5".to_string()),
            ("training.warmup_epochs".to_string(), "2".to_string()),
        ])
    );
}
