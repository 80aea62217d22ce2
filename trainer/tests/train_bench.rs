//! `flow-train bench` on the CPU: a timed case trains (finite loss, positive throughput, the
//! rows' fields filled), the parity curves of two runs of the same precision are identical
//! (the step is a function of the seed and the position), and the windowed divergence.

use flow_trainer::model::ModelSize;
use flow_trainer::train::bench::{
    BenchCase, BenchSettings, bench_case, curve_divergence, ensure_dataset, loss_curve,
};
use tch::Device;

/// libtorch's generator is global: tests that seed it must not interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn settings(dir: &std::path::Path) -> BenchSettings {
    BenchSettings {
        work_dir: dir.to_owned(),
        device: Device::Cpu,
        warmup: 1,
        steps: 2,
        batches: 2,
        threads: 1,
        profile: true,
        trace: Some(dir.join("profile.txt")),
    }
}

#[test]
fn a_bench_case_trains_and_reports() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = tempfile_dir("case");
    let dataset = ensure_dataset(&dir, 8).expect("dataset");
    let case = BenchCase {
        size: ModelSize::Tiny,
        batch: 2,
        accum: 1,
        multi_scale: true,
        amp: true,
        graphs: true,
    };
    let row = bench_case(&case, &settings(&dir), &dataset).expect("bench");
    assert_eq!(
        (row.size.as_str(), row.resolution, row.batch),
        ("tiny", 96, 2)
    );
    assert!(row.multi_scale && row.amp);
    // CUDA graphs asked for, but the CPU runs every pass eagerly.
    assert!(!row.graphs && !row.graphs_failed && row.graph_shapes == 0);
    assert!(row.images_per_s > 0.0 && row.median_ms > 0.0);
    assert!(row.loss.is_finite() && row.loss > 0.0);
    assert_eq!(row.peak_alloc_gib, 0.0, "no CUDA allocator on the CPU");
    let summary = std::fs::read_to_string(dir.join("profile.txt")).expect("profiler summary");
    assert!(summary.contains("### tiny batch 2 multi-scale bf16"));
    assert!(
        summary.contains("aten::"),
        "the profiler saw no op:\n{summary}"
    );
}

#[test]
fn loss_curves_repeat_and_their_divergence_is_windowed() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = tempfile_dir("curve");
    let dataset = ensure_dataset(&dir, 8).expect("dataset");
    let case = BenchCase {
        size: ModelSize::Tiny,
        batch: 2,
        accum: 1,
        multi_scale: false,
        amp: false,
        graphs: false,
    };
    let a = loss_curve(&case, &settings(&dir), &dataset, 6).expect("curve");
    let b = loss_curve(&case, &settings(&dir), &dataset, 6).expect("curve");
    assert_eq!(a.len(), 6, "the curve walks into a second epoch");
    assert_eq!(a, b);
    assert_eq!(curve_divergence(&a, &b, 2), (0.0, 0.0));
    // Windowed: one step 10% off in a window of two is 5% off.
    let c: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, v)| if i == 0 { v * 1.1 } else { *v })
        .collect();
    let (max, _) = curve_divergence(&a, &c, 1);
    assert!((max - 0.1).abs() < 1e-9);
    let (max, _) = curve_divergence(&[1.0, 1.0], &[1.1, 1.0], 2);
    assert!((max - 0.05).abs() < 1e-9);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_accumulating_case_trains_on_batch_times_accum_images_per_step() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = tempfile_dir("accum");
    let dataset = ensure_dataset(&dir, 8).expect("dataset");
    let case = BenchCase {
        size: ModelSize::Tiny,
        batch: 1,
        accum: 2,
        multi_scale: false,
        amp: false,
        graphs: false,
    };
    let settings = BenchSettings {
        profile: false,
        trace: None,
        ..settings(&dir)
    };
    let row = bench_case(&case, &settings, &dataset).expect("bench");
    assert_eq!((row.batch, row.accum, row.steps), (1, 2, 2));
    assert!(row.loss.is_finite() && row.loss > 0.0);
    // Two timed steps, whose median is the longer one: images/s times it is between one
    // and two steps' images, [2, 4) when a step counts batch x accum = 2 images, [1, 2)
    // when it counts the batch only.
    let per_step = row.images_per_s * row.median_ms / 1e3;
    assert!(
        (1.95..4.0).contains(&per_step),
        "{per_step} images per step"
    );
    let config = std::fs::read_to_string(dir.join("tiny-b1x2-native-fp32/config.yaml"))
        .expect("the case's config");
    assert!(config.contains("grad_accum_steps: 2"), "{config}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flow-train-bench-test-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
