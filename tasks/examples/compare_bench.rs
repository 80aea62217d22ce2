//! `bench/compare`: times `compare::render` over synthetic runs (metrics already parsed, as the
//! compare task gets them): a cold render, a no-op render, and a render after one added run.
//!
//! Usage: cargo run --release -p flow-tasks --example compare_bench -- [RUNS] [EPOCHS] [OUT_DIR]
//! (defaults 1000, 50, a fresh temp dir that is removed afterwards).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use flow_tasks::compare::{CompareOptions, CompareRun, CompareSummary, Hyperparameters, render};
use flow_tasks::experiment::ModelSize;
use flow_tasks::metrics::{CocoSummary, EpochMetrics, Format, RunMetrics, best_epoch};

/// A small deterministic generator (splitmix64), so every bench run sees the same runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn coco(ap: f64) -> CocoSummary {
    let mut values = [None; 12];
    values[0] = Some(ap);
    values[1] = Some((ap * 1.6).min(1.0));
    values[2] = Some(ap * 1.05);
    CocoSummary { values }
}

/// One synthetic run: loss decaying, mask mAP rising towards a ceiling set by size and lr.
fn run(i: usize, epochs: u32) -> CompareRun {
    let mut rng = Rng(i as u64 * 7919 + 1);
    let sizes = &ModelSize::ALL[..6];
    let size = sizes[i % sizes.len()];
    let lrs: [f64; 5] = [2.5e-5, 5e-5, 1e-4, 2e-4, 4e-4];
    let lr_encoders: [f64; 5] = [3.75e-5, 7.5e-5, 1.5e-4, 3e-4, 6e-4];
    let k = (i / sizes.len()) % lrs.len();
    let (lr, lr_encoder) = (lrs[k], lr_encoders[k]);
    let ceiling = 0.30 + 0.04 * (i % sizes.len()) as f64 - 0.08 * (lr.log10() + 4.0).powi(2)
        + 0.05 * rng.next();
    let mut eps = Vec::with_capacity(epochs as usize);
    for e in 0..epochs {
        let t = (e + 1) as f64 / epochs as f64;
        let map = ceiling * (1.0 - (-4.0 * t).exp()) + 0.01 * (rng.next() - 0.5);
        let ema = map + 0.004 * (rng.next() - 0.3);
        eps.push(EpochMetrics {
            epoch: e,
            train_loss: Some(8.0 * (-2.5 * t).exp() + 2.0 + 0.2 * rng.next()),
            test_loss: Some(8.5 * (-2.2 * t).exp() + 2.3 + 0.2 * rng.next()),
            segm: Some(coco(map.max(0.0))),
            ema_segm: Some(coco(ema.max(0.0))),
            bbox: Some(coco((map * 1.12).max(0.0))),
            ema_bbox: Some(coco((ema * 1.12).max(0.0))),
            ..EpochMetrics::default()
        });
    }
    let best = best_epoch(&eps);
    CompareRun {
        id: format!("run{i:05}-20261126-120000"),
        name: format!("{}-lr{lr:e}-seed{i}", size.as_str()),
        model_size: size,
        hyperparameters: Hyperparameters {
            lr: Some(lr),
            lr_encoder: Some(lr_encoder),
            lr_scheduler: Some(
                if i.is_multiple_of(2) {
                    "step"
                } else {
                    "cosine"
                }
                .to_string(),
            ),
            epochs: Some(epochs),
            batch_size: Some(4),
            grad_accum_steps: Some(4),
            weight_decay: Some(1e-4),
            other: BTreeMap::from([("warmup_epochs".to_string(), "2".to_string())]),
        },
        metrics: Ok(RunMetrics {
            format: Format::LogTxt,
            epochs: eps,
            best,
            problems: Vec::new(),
        }),
        gpu_hours: Some(1.0 + (i % 17) as f64 * 0.7),
        provenance: BTreeMap::from([
            ("flow_version".to_string(), "0.1.0".to_string()),
            ("git_commit".to_string(), format!("{:040x}", i * 2654435761)),
            ("slurm_job_id".to_string(), (100_000 + i).to_string()),
        ]),
    }
}

fn timed(label: &str, f: impl FnOnce() -> CompareSummary) -> f64 {
    let start = Instant::now();
    let summary = f();
    let secs = start.elapsed().as_secs_f64();
    let names = |v: &[flow_tasks::compare::Output]| {
        v.iter()
            .map(|o| o.file_name())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "{label:<28} {secs:>7.3} s   rendered: [{}]   up to date: [{}]",
        names(&summary.rendered),
        names(&summary.up_to_date)
    );
    secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let epochs: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(50);
    let tmp = tempfile::tempdir()?;
    let out: PathBuf = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("compare"));
    let _ = std::fs::remove_dir_all(&out);

    let t = Instant::now();
    let mut runs: Vec<CompareRun> = (0..n).map(|i| run(i, epochs)).collect();
    println!(
        "generated {n} runs x {epochs} epochs in {:.3} s (not timed below); output {}",
        t.elapsed().as_secs_f64(),
        out.display()
    );
    let opts = CompareOptions::default();
    timed("cold render", || {
        render(&runs, &out, &opts).expect("render")
    });
    timed("no-op render", || {
        render(&runs, &out, &opts).expect("render")
    });
    runs.push(run(n, epochs));
    timed("one added run", || {
        render(&runs, &out, &opts).expect("render")
    });
    let forced = CompareOptions {
        force: true,
        ..CompareOptions::default()
    };
    timed("forced (all outputs)", || {
        render(&runs, &out, &forced).expect("render")
    });
    for entry in std::fs::read_dir(&out)? {
        let entry = entry?;
        println!(
            "  {:<32} {:>9} bytes",
            entry.file_name().to_string_lossy(),
            entry.metadata()?.len()
        );
    }
    Ok(())
}
