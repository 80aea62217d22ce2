//! `compare::render` end to end on temp dirs: the files it writes, what they contain, and which
//! outputs each call re-renders.

use std::collections::BTreeMap;
use std::path::Path;

use flow_tasks::compare::{
    CompareError, CompareOptions, CompareRun, CompareSummary, Hyperparameters, Output, STATE_FILE,
    render,
};
use flow_tasks::experiment::ModelSize;
use flow_tasks::metrics::{CocoSummary, EpochMetrics, Format, RunMetrics, best_epoch};

fn coco(ap: f64) -> CocoSummary {
    let mut values = [None; 12];
    values[0] = Some(ap);
    values[1] = Some(ap * 1.5);
    CocoSummary { values }
}

/// A run of `n` epochs whose regular mask AP rises linearly to `mask` at the last epoch (its
/// best), bbox AP to `bbox`; the EMA track stays below.
fn run(id: &str, size: ModelSize, lr: f64, mask: f64, bbox: f64) -> CompareRun {
    let n = 10;
    let epochs: Vec<EpochMetrics> = (0..n)
        .map(|e| {
            let t = (e + 1) as f64 / n as f64;
            EpochMetrics {
                epoch: e,
                train_loss: Some(5.0 - 3.0 * t),
                segm: Some(coco(mask * t)),
                ema_segm: Some(coco(mask * t * 0.9)),
                bbox: Some(coco(bbox * t)),
                ema_bbox: Some(coco(bbox * t * 0.9)),
                ..EpochMetrics::default()
            }
        })
        .collect();
    CompareRun {
        id: id.to_string(),
        name: format!("{}-{id}", size.as_str()),
        model_size: size,
        hyperparameters: Hyperparameters {
            lr: Some(lr),
            lr_encoder: Some(lr * 1.5),
            lr_scheduler: Some("cosine".to_string()),
            epochs: Some(n),
            batch_size: Some(4),
            grad_accum_steps: Some(4),
            weight_decay: Some(1e-4),
            other: BTreeMap::from([("warmup_epochs".to_string(), "2".to_string())]),
        },
        metrics: Ok(RunMetrics {
            format: Format::LogTxt,
            best: best_epoch(&epochs),
            epochs,
            problems: Vec::new(),
        }),
        gpu_hours: Some(2.5),
        provenance: BTreeMap::from([
            ("git_commit".to_string(), "abc123".to_string()),
            ("slurm_job_id".to_string(), "4242".to_string()),
        ]),
    }
}

/// Five ranked runs over three learning rates and three sizes.
fn runs() -> Vec<CompareRun> {
    vec![
        run("r1", ModelSize::Nano, 1e-4, 0.31, 0.35),
        run("r2", ModelSize::Small, 2e-4, 0.42, 0.47),
        run("r3", ModelSize::Medium, 5e-5, 0.50, 0.56),
        run("r4", ModelSize::Nano, 2e-4, 0.28, 0.30),
        run("r5", ModelSize::Small, 1e-4, 0.42, 0.49),
    ]
}

fn ok(runs: &[CompareRun], out: &Path) -> CompareSummary {
    render(runs, out, &CompareOptions::default()).expect("render")
}

/// Decodes a PNG into (width, height, RGB(A) bytes, channels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>, usize) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("open png"));
    let mut reader = png::Decoder::new(file).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, info.color_type.samples())
}

/// Variance of the luminance over all pixels: ~0 for a blank image.
fn variance(rgb: &[u8], channels: usize) -> f64 {
    let lum: Vec<f64> = rgb
        .chunks(channels)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64
}

fn has_pixel(rgb: &[u8], channels: usize, c: (u8, u8, u8)) -> bool {
    rgb.chunks(channels).any(|p| (p[0], p[1], p[2]) == c)
}

fn csv_rows(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("leaderboard.csv")).expect("csv");
    // The fixtures have no quoted cells.
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn col(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let i = rows[0].iter().position(|h| h == name).expect("column");
    rows[1..].iter().map(|r| r[i].clone()).collect()
}

#[test]
fn writes_every_output_and_the_pngs_decode_at_the_requested_size_and_are_not_blank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = ok(&runs(), dir.path());
    assert_eq!(summary.rendered, Output::ALL);
    assert!(summary.up_to_date.is_empty());
    for plot in Output::PLOTS {
        let (w, h, px, ch) = decode(&dir.path().join(plot.file_name()));
        assert_eq!((w, h), (1200, 700), "{plot}");
        let v = variance(&px, ch);
        assert!(v > 200.0, "{plot} looks blank: luminance variance {v}");
    }
    let small = tempfile::tempdir().expect("tempdir");
    let opts = CompareOptions {
        width: 640,
        height: 400,
        ..CompareOptions::default()
    };
    render(&runs(), small.path(), &opts).expect("render");
    for plot in Output::PLOTS {
        let (w, h, _, _) = decode(&small.path().join(plot.file_name()));
        assert_eq!((w, h), (640, 400), "{plot}");
    }
}

#[test]
fn leaderboard_is_sorted_by_mask_map_with_the_known_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&runs(), dir.path());
    let rows = csv_rows(dir.path());
    assert_eq!(rows[0][..4], ["rank", "id", "name", "model_size"]);
    // r2 and r5 tie on mask mAP 0.42: r5's higher bbox mAP breaks the tie.
    assert_eq!(col(&rows, "id"), ["r3", "r5", "r2", "r1", "r4"]);
    assert_eq!(col(&rows, "rank"), ["1", "2", "3", "4", "5"]);
    assert_eq!(
        col(&rows, "mask_mAP"),
        ["0.5", "0.42", "0.42", "0.31", "0.28"]
    );
    assert_eq!(
        col(&rows, "bbox_mAP"),
        ["0.56", "0.49", "0.47", "0.35", "0.3"]
    );
    assert_eq!(col(&rows, "best_epoch"), ["9"; 5]);
    assert_eq!(col(&rows, "best_track"), ["regular"; 5]);
    assert_eq!(
        col(&rows, "model_size"),
        ["medium", "small", "small", "nano", "nano"]
    );
    assert_eq!(col(&rows, "lr"), ["5e-5", "1e-4", "2e-4", "1e-4", "2e-4"]);
    assert_eq!(col(&rows, "gpu_hours"), ["2.50"; 5]);
    assert_eq!(col(&rows, "status"), ["ok"; 5]);
}

#[test]
fn a_run_with_malformed_metrics_is_flagged_at_the_bottom_and_nothing_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = runs();
    let mut broken = run("r0-broken", ModelSize::Large, 1e-4, 0.9, 0.9);
    broken.metrics = Err("log.txt line 3: expected a value at byte 17".to_string());
    all.insert(0, broken);
    let mut no_map = run("r9-nomap", ModelSize::Nano, 1e-4, 0.9, 0.9);
    if let Ok(m) = &mut no_map.metrics {
        for e in &mut m.epochs {
            e.segm = None;
            e.ema_segm = None;
        }
        m.best = best_epoch(&m.epochs);
    }
    all.push(no_map);
    let summary = ok(&all, dir.path());
    assert_eq!(summary.flagged, 2);
    assert_eq!(summary.runs, 7);
    let rows = csv_rows(dir.path());
    let ids = col(&rows, "id");
    assert_eq!(ids[5..], ["r0-broken", "r9-nomap"]);
    assert_eq!(col(&rows, "rank")[5..], ["", ""]);
    assert_eq!(col(&rows, "status")[5..], ["flagged", "flagged"]);
    assert_eq!(
        col(&rows, "note")[5..],
        [
            "log.txt line 3: expected a value at byte 17",
            "no epoch has a mask mAP"
        ]
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
    assert!(html.contains("id=\"flagged-alert\""));
    assert!(html.contains("<tr data-i=\"5\" data-id=\"r0-broken\" class=\"flagged\">"));
    assert!(html.contains("log.txt line 3: expected a value at byte 17"));
    // The large model has only the broken run: no best-per-size bar for it, and the plot is fine.
    let (_, _, px, ch) = decode(&dir.path().join("model_size_comparison.png"));
    assert!(variance(&px, ch) > 200.0);
}

#[test]
fn lr_scatter_says_so_with_fewer_than_three_learning_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let two_lrs: Vec<CompareRun> = runs()
        .into_iter()
        .filter(|r| r.hyperparameters.lr != Some(5e-5))
        .collect();
    ok(&two_lrs, dir.path());
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
    assert!(html.contains(
        "Not enough distinct learning rates to plot a trend. 4 runs with a mask mAP, 2 distinct \
         learning rates; at least 3 are needed."
    ));
    let (w, h, message, ch) = decode(&dir.path().join("hp_lr_scatter.png"));
    assert_eq!((w, h), (1200, 700));
    assert!(
        variance(&message, ch) > 20.0,
        "the message image is not blank"
    );

    let three = tempfile::tempdir().expect("tempdir");
    ok(&runs(), three.path());
    let html = std::fs::read_to_string(three.path().join("report.html")).expect("report");
    assert!(!html.contains("Not enough distinct learning rates"));
    let (_, _, plotted, _) = decode(&three.path().join("hp_lr_scatter.png"));
    assert_ne!(message, plotted);
}

#[test]
fn a_second_render_with_the_same_inputs_renders_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&runs(), dir.path());
    let before = std::fs::read(dir.path().join("report.html")).expect("report");
    let again = ok(&runs(), dir.path());
    assert_eq!(again.rendered, []);
    assert_eq!(again.up_to_date, Output::ALL);
    assert_eq!(
        std::fs::read(dir.path().join("report.html")).expect("report"),
        before
    );
}

#[test]
fn changing_one_curve_rerenders_the_curves_and_report_but_not_the_lr_scatter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = runs();
    ok(&all, dir.path());
    // A loss spike at epoch 2 of the best run: its best epoch, mAP and lr are unchanged.
    if let Ok(m) = &mut all[2].metrics {
        m.epochs[2].train_loss = Some(7.5);
    }
    let summary = ok(&all, dir.path());
    assert_eq!(summary.rendered, [Output::TrainingCurves, Output::Report]);
    assert_eq!(
        summary.up_to_date,
        [
            Output::Leaderboard,
            Output::MetricsBar,
            Output::ModelSize,
            Output::LrScatter
        ]
    );
}

#[test]
fn adding_a_low_ranked_run_rerenders_only_what_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = runs();
    let opts = CompareOptions {
        max_curves: 3,
        max_bars: 3,
        ..CompareOptions::default()
    };
    render(&all, dir.path(), &opts).expect("render");
    // Last of its size (nano) and outside the top 3: only the table, scatter and report show it.
    all.push(run("r6", ModelSize::Nano, 1e-4, 0.20, 0.22));
    let summary = render(&all, dir.path(), &opts).expect("render");
    assert_eq!(
        summary.rendered,
        [Output::Leaderboard, Output::LrScatter, Output::Report]
    );
    // A new best run changes every output.
    all.push(run("r7", ModelSize::Medium, 1e-4, 0.70, 0.75));
    let summary = render(&all, dir.path(), &opts).expect("render");
    assert_eq!(summary.rendered, Output::ALL);
}

#[test]
fn a_deleted_or_modified_output_is_rendered_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&runs(), dir.path());
    std::fs::remove_file(dir.path().join("metrics_bar_comparison.png")).expect("rm");
    std::fs::write(dir.path().join("leaderboard.csv"), "edited by hand\n").expect("write");
    let summary = ok(&runs(), dir.path());
    assert_eq!(summary.rendered, [Output::Leaderboard, Output::MetricsBar]);
    assert!(
        std::fs::read_to_string(dir.path().join("leaderboard.csv"))
            .expect("csv")
            .starts_with("rank,id,")
    );
}

#[test]
fn forced_and_option_changes_rerender() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&runs(), dir.path());
    let forced = CompareOptions {
        force: true,
        ..CompareOptions::default()
    };
    assert_eq!(
        render(&runs(), dir.path(), &forced)
            .expect("render")
            .rendered,
        Output::ALL
    );
    let fewer_bars = CompareOptions {
        max_bars: 2,
        ..CompareOptions::default()
    };
    let summary = render(&runs(), dir.path(), &fewer_bars).expect("render");
    assert!(summary.rendered.contains(&Output::MetricsBar));
    assert!(!summary.rendered.contains(&Output::TrainingCurves));
}

#[test]
fn a_state_file_from_a_newer_flow_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(STATE_FILE),
        r#"{"version": 2, "outputs": {}}"#,
    )
    .expect("write");
    let err = render(&runs(), dir.path(), &CompareOptions::default()).expect_err("newer");
    assert!(matches!(err, CompareError::StateTooNew { found: 2, .. }));
    assert!(err.to_string().contains("delete it to re-render"));
}

#[test]
fn duplicate_run_ids_are_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = runs();
    all.push(all[0].clone());
    let err = render(&all, dir.path(), &CompareOptions::default()).expect_err("dup");
    assert_eq!(err.to_string(), "run id `r1` is given twice");
}

#[test]
fn the_report_escapes_user_strings_and_needs_no_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = runs();
    all[0].name = "<script>alert('pwned')</script>".to_string();
    all[1].provenance.insert(
        "note".to_string(),
        "\"><img src=x onerror=alert(1)>".to_string(),
    );
    all[2].metrics = Err("<b>bad</b> & worse".to_string());
    ok(&all, dir.path());
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;b&gt;bad&lt;/b&gt; &amp; worse"));
    // Self-contained: the four plots inline, nothing fetched.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 4);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("Content-Security-Policy"));
}

#[test]
fn a_run_has_the_same_colour_in_the_report_and_in_every_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&runs(), dir.path());
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
    // The best run's swatch in its leaderboard row.
    let row = html
        .split("<tr data-i=\"0\" data-id=\"r3\">")
        .nth(1)
        .expect("row of r3");
    let hex = row
        .split("background:#")
        .nth(1)
        .map(|s| &s[..6])
        .expect("swatch");
    let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex");
    let rgb = (c(0), c(2), c(4));
    for plot in Output::PLOTS {
        let (_, _, px, ch) = decode(&dir.path().join(plot.file_name()));
        assert!(has_pixel(&px, ch, rgb), "{plot} has no pixel of #{hex}");
    }
}
