//! `report.html` in Debian's headless Chromium: it loads without console output or errors, the
//! screenshot is not blank, and clicking column headers reorders the leaderboard (through the
//! page's `?selftest` hook, which clicks headers itself and writes the orders into the DOM).
//!
//! Needs `chromium` (scripts/chromium/install). Without it the test is skipped with a message,
//! unless FLOW_REQUIRE_CHROMIUM=1, where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flow_tasks::compare::{CompareOptions, CompareRun, Hyperparameters, render};
use flow_tasks::experiment::ModelSize;
use flow_tasks::metrics::{CocoSummary, EpochMetrics, Format, RunMetrics, best_epoch};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

fn run(id: &str, mask: f64, gpu_hours: Option<f64>) -> CompareRun {
    let epochs: Vec<EpochMetrics> = (0..5u32)
        .map(|e| {
            let t = (e + 1) as f64 / 5.0;
            let mut values = [None; 12];
            values[0] = Some(mask * t);
            EpochMetrics {
                epoch: e,
                train_loss: Some(4.0 - 2.0 * t),
                segm: Some(CocoSummary { values }),
                bbox: Some(CocoSummary { values }),
                ..EpochMetrics::default()
            }
        })
        .collect();
    CompareRun {
        id: id.to_string(),
        name: format!("exp {id}"),
        model_size: ModelSize::Small,
        hyperparameters: Hyperparameters {
            lr: Some(mask * 1e-3),
            ..Hyperparameters::default()
        },
        metrics: Ok(RunMetrics {
            format: Format::LogTxt,
            best: best_epoch(&epochs),
            epochs,
            problems: Vec::new(),
        }),
        gpu_hours,
        provenance: BTreeMap::from([("git_commit".to_string(), "abc".to_string())]),
    }
}

/// Runs chromium headless with `args` and `url`, killing it after a minute.
fn headless(bin: &Path, profile: &Path, args: &[String], url: &str) -> Output {
    let child = Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let pid = child.id();
    let start = Instant::now();
    let watchdog = std::thread::spawn(move || {
        while start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let out = child.wait_with_output().expect("chromium output");
    let _ = watchdog.join();
    out
}

/// Console messages and uncaught errors the page produced (chromium logs them as CONSOLE).
fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("selftest result has no {key}: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn report_loads_in_headless_chromium_and_sorts_on_header_click() {
    let Some(bin) = chromium() else {
        if std::env::var("FLOW_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium is not installed: run scripts/chromium/install");
        }
        eprintln!("skipped: chromium is not installed (scripts/chromium/install installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("compare");
    let mut broken = run("z-bad", 0.9, Some(1.0));
    broken.metrics = Err("metrics.csv: unreadable".to_string());
    let runs = vec![
        run("b-run-100", 0.05, Some(100.0)),
        run("b-run-9", 0.45, Some(9.5)),
        broken,
        run("a-run-2", 0.3, None),
        run("b-run-10", 0.5, Some(10.0)),
    ];
    render(&runs, &out, &CompareOptions::default()).expect("render");
    let url = format!("file://{}", out.join("report.html").display());

    let dom = headless(
        &bin,
        &dir.path().join("profile-dom"),
        &["--dump-dom".to_string()],
        &format!("{url}?selftest"),
    );
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert_eq!(
        console_lines(&dom.stderr),
        Vec::<String>::new(),
        "console output"
    );
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("data-selftest=\"done\""),
        "the self-test did not run"
    );
    let json = html
        .split("<pre id=\"selftest-result\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("selftest result");
    let errors = html
        .split("<pre id=\"selftest-errors\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("selftest errors");
    assert_eq!(errors, "[]", "script errors in the page");
    let v: serde_json::Value =
        serde_json::from_str(&json.replace("&quot;", "\"")).expect("selftest json");
    assert_eq!(
        ids(&v, "initial"),
        ["b-run-10", "b-run-9", "a-run-2", "b-run-100", "z-bad"]
    );
    // Text columns sort with numeric awareness: run-9 before run-10 before run-100.
    assert_eq!(
        ids(&v, "id_asc"),
        ["a-run-2", "b-run-9", "b-run-10", "b-run-100", "z-bad"]
    );
    assert_eq!(
        ids(&v, "id_desc"),
        ["z-bad", "b-run-100", "b-run-10", "b-run-9", "a-run-2"]
    );
    // Numbers sort as numbers; empty cells (the flagged run's mAP) stay last.
    assert_eq!(
        ids(&v, "mask_map_asc"),
        ["b-run-100", "a-run-2", "b-run-9", "b-run-10", "z-bad"]
    );
    // 1 < 9.5 < 10 < 100 (as text it would be 1.00, 10.00, 100.00, 9.50); no value last.
    assert_eq!(
        ids(&v, "gpu_hours_asc"),
        ["z-bad", "b-run-9", "b-run-10", "b-run-100", "a-run-2"]
    );

    let shot = dir.path().join("shot.png");
    let s = headless(
        &bin,
        &dir.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".to_string(),
            "--hide-scrollbars".to_string(),
        ],
        &url,
    );
    assert!(
        s.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    assert_eq!(
        console_lines(&s.stderr),
        Vec::<String>::new(),
        "console output"
    );
    let file = std::io::BufReader::new(std::fs::File::open(&shot).expect("screenshot written"));
    let mut reader = png::Decoder::new(file).read_info().expect("png");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("frame");
    let ch = info.color_type.samples();
    let lum: Vec<f64> = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    assert!(
        info.width >= 1000 && info.height >= 1000,
        "{}x{}",
        info.width,
        info.height
    );
    assert!(
        var > 100.0,
        "the screenshot looks blank (luminance variance {var})"
    );
}
