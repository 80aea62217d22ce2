//! Training throughput and precision parity (`flow-train bench`): the timed step is exactly
//! the training loop's optimizer step (batch to the device, forward under autocast, the full
//! criterion with Hungarian matching, backward, clipping, scheduled AdamW, EMA) over batches
//! decoded beforehand and cycled from memory, so data decoding is excluded, as in the
//! reference benchmark (`shared/tools/rfdetr-reference`). Peak memory is the CUDA caching
//! allocator's `max_memory_allocated` over the timed steps.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flow_coco::dataset::Batch;
use flow_coco::synth::{ImageFormat, SynthConfig, write_dataset};
use tch::Device;

use super::meter::Meter;
use super::run::{Run, TrainError, TrainOptions, io_err};
use crate::config::ExperimentConfig;
use crate::device::synchronize;
use crate::model::ModelSize;
use crate::torch_ext;

/// One benchmark configuration.
#[derive(Debug, Clone)]
pub struct BenchCase {
    /// Model size.
    pub size: ModelSize,
    /// Images per pass.
    pub batch: u32,
    /// Passes per optimizer step (`grad_accum_steps`; the recipe's default is 4): a step
    /// trains on `batch × accum` images.
    pub accum: u32,
    /// Per-batch random scale (the recipe's default) instead of the native resolution.
    pub multi_scale: bool,
    /// bf16 autocast.
    pub amp: bool,
    /// CUDA graphs for the model's passes.
    pub graphs: bool,
}

/// The resolution mode's name (`--modes`).
pub fn mode_name(multi_scale: bool) -> &'static str {
    if multi_scale { "multi-scale" } else { "native" }
}

/// The precision's name (`--precisions`).
pub fn precision_name(amp: bool) -> &'static str {
    if amp { "bf16" } else { "fp32" }
}

/// What one configuration measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// Model size.
    pub size: String,
    /// Native resolution.
    pub resolution: i64,
    /// Images per pass.
    pub batch: u32,
    /// Passes per optimizer step.
    pub accum: u32,
    /// Multi-scale on.
    pub multi_scale: bool,
    /// bf16 autocast on.
    pub amp: bool,
    /// CUDA graphs in use (asked for, on a GPU).
    pub graphs: bool,
    /// CUDA graphs asked for but not used (the capture failed; the steps ran eagerly).
    pub graphs_failed: bool,
    /// Input shapes captured as CUDA graphs.
    pub graph_shapes: usize,
    /// Timed steps.
    pub steps: usize,
    /// Images per second over the timed steps (device synchronised at both ends).
    pub images_per_s: f64,
    /// Median host time between consecutive step ends, in milliseconds.
    pub median_ms: f64,
    /// Peak allocated GPU memory over the timed steps, GiB (0 on the CPU).
    pub peak_alloc_gib: f64,
    /// Peak memory reserved by the caching allocator, GiB.
    pub peak_reserved_gib: f64,
    /// Seconds of the first step (kernel selection, allocator warm-up).
    pub first_step_s: f64,
    /// Mean training loss over the timed steps (finite: the steps did train).
    pub loss: f64,
}

/// Settings shared by every case.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// Where the synthetic dataset and the per-case run folders go.
    pub work_dir: PathBuf,
    /// Device.
    pub device: Device,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Distinct batches cycled through.
    pub batches: usize,
    /// Threads of the host side.
    pub threads: usize,
    /// Also time each phase (a second, synchronised pass).
    pub profile: bool,
    /// Also run libtorch's profiler over a few steps, appending its summary here.
    pub trace: Option<PathBuf>,
}

/// Writes (once) the synthetic dataset of the benchmark: 640-pixel images, 2-6 objects each.
pub fn ensure_dataset(work_dir: &Path, train_images: usize) -> Result<PathBuf, TrainError> {
    let dir = work_dir.join(format!("synth-{train_images}"));
    if dir.join("train/_annotations.coco.json").exists() {
        return Ok(dir);
    }
    let total = train_images + train_images / 4 + 4;
    let cfg = SynthConfig {
        images: total,
        seed: 7,
        size: 640,
        valid_fraction: (train_images / 8 + 2) as f64 / total as f64,
        test_fraction: (train_images / 8 + 2) as f64 / total as f64,
        min_objects: 2,
        max_objects: 6,
        empty_fraction: 0.0,
        format: ImageFormat::Jpeg,
    };
    write_dataset(&cfg, &dir, true).map_err(|e| TrainError::Io {
        path: dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(dir)
}

/// The experiment config of one case (every other key at the recipe's default).
fn case_config(case: &BenchCase, dataset: &Path, seed: u64) -> String {
    format!(
        "experiment:\n  name: \"bench\"\n  description: \"flow-train bench\"\n  model_size: \"{}\"\n\
         data:\n  dataset_dir: {:?}\n\
         training:\n  epochs: 100\n  batch_size: {}\n  grad_accum_steps: {}\n  amp: {}\n  multi_scale: {}\n  seed: {seed}\n\
         logging:\n  tensorboard: false\n  wandb: false\n",
        case.size,
        dataset.display().to_string(),
        case.batch,
        case.accum.max(1),
        case.amp,
        case.multi_scale,
    )
}

fn open_run(
    case: &BenchCase,
    settings: &BenchSettings,
    dataset: &Path,
    tag: &str,
) -> Result<Run, TrainError> {
    let dir = settings.work_dir.join(format!(
        "{}-b{}{}-{}-{}{}{tag}",
        case.size,
        case.batch,
        if case.accum > 1 {
            format!("x{}", case.accum)
        } else {
            String::new()
        },
        mode_name(case.multi_scale),
        precision_name(case.amp),
        if case.graphs { "-graphs" } else { "" }
    ));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let config = dir.join("config.yaml");
    fs::write(&config, case_config(case, dataset, 42)).map_err(io_err(&config))?;
    let cfg = ExperimentConfig::load(&config)?;
    let opts = TrainOptions {
        config,
        output_dir: dir,
        resume: false,
        device: settings.device,
        model_size: None,
        weights: None,
        max_steps: None,
        threads: Some(settings.threads),
        epochs_limit: None,
        progress: false,
        cuda_graphs: case.graphs,
    };
    Run::new(cfg, opts)
}

fn cuda_index(device: Device) -> Option<usize> {
    match device {
        Device::Cuda(i) => Some(i),
        _ => None,
    }
}

/// Measures one case.
pub fn bench_case(
    case: &BenchCase,
    settings: &BenchSettings,
    dataset: &Path,
) -> Result<BenchRow, TrainError> {
    let mut run = open_run(case, settings, dataset, "")?;
    let batches: Vec<Batch> = run
        .train_loader
        .epoch(0)
        .take(settings.batches.max(1))
        .collect::<Result<_, _>>()?;
    let mut meter = Meter::default();
    let first = Instant::now();
    run.optimizer_step(&batches[0], &mut meter)?;
    synchronize(settings.device);
    let first_step_s = first.elapsed().as_secs_f64();
    for i in 1..settings.warmup.max(1) {
        run.optimizer_step(&batches[i % batches.len()], &mut meter)?;
    }
    synchronize(settings.device);
    if let Some(i) = cuda_index(settings.device) {
        torch_ext::reset_cuda_peak(i)?;
    }
    let mut meter = Meter::default();
    let start = Instant::now();
    let mut stamps = Vec::with_capacity(settings.steps + 1);
    stamps.push(start);
    for i in 0..settings.steps {
        run.optimizer_step(&batches[i % batches.len()], &mut meter)?;
        stamps.push(Instant::now());
    }
    synchronize(settings.device);
    let total = start.elapsed().as_secs_f64();
    // The peak of the timed steps, before the profiling passes below.
    let gib = |b: i64| b as f64 / (1u64 << 30) as f64;
    let (peak_alloc_gib, peak_reserved_gib) = match cuda_index(settings.device) {
        Some(i) => {
            let m = torch_ext::cuda_memory(i)?;
            (gib(m.peak_allocated), gib(m.peak_reserved))
        }
        None => (0.0, 0.0),
    };
    if settings.profile {
        // A second, synchronised pass over the same steps, charged phase by phase.
        super::profile::enable(true);
        for i in 0..settings.steps {
            run.optimizer_step(&batches[i % batches.len()], &mut Meter::default())?;
        }
        super::profile::mark(settings.device, "other");
        super::profile::enable(false);
    }
    if let Some(summary) = &settings.trace {
        let n = settings.steps.clamp(1, 5);
        torch_ext::profiler_start(settings.device)?;
        for i in 0..n {
            run.optimizer_step(&batches[i % batches.len()], &mut Meter::default())?;
        }
        synchronize(settings.device);
        let title = format!(
            "{} batch {} {} {}",
            case.size,
            case.batch,
            mode_name(case.multi_scale),
            precision_name(case.amp)
        );
        torch_ext::profiler_stop(summary, &title, n)?;
    }
    let mut gaps: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
    Ok(BenchRow {
        size: case.size.to_string(),
        resolution: run.model_cfg.resolution,
        batch: case.batch,
        accum: case.accum.max(1),
        multi_scale: case.multi_scale,
        amp: case.amp,
        graphs: run.graphs.is_some(),
        graphs_failed: run.graphs.as_ref().is_some_and(|g| g.failed()),
        graph_shapes: run.graphs.as_ref().map_or(0, |g| g.shapes()),
        steps: settings.steps,
        images_per_s: (settings.steps as f64 * f64::from(case.batch * case.accum.max(1)))
            / total.max(1e-9),
        median_ms,
        peak_alloc_gib,
        peak_reserved_gib,
        first_step_s,
        loss: meter.mean("loss").unwrap_or(f64::NAN),
    })
}

/// The per-step training loss of `steps` optimizer steps from the seed's initial weights,
/// walking the loader's epochs in order (the same data and random draws for any precision).
pub fn loss_curve(
    case: &BenchCase,
    settings: &BenchSettings,
    dataset: &Path,
    steps: usize,
) -> Result<Vec<f64>, TrainError> {
    let mut run = open_run(case, settings, dataset, "-curve")?;
    let mut losses = Vec::with_capacity(steps);
    let mut epoch = 0u64;
    while losses.len() < steps {
        let batches: Vec<Batch> = run.train_loader.epoch(epoch).collect::<Result<_, _>>()?;
        if batches.is_empty() {
            break;
        }
        for batch in &batches {
            if losses.len() >= steps {
                break;
            }
            let mut meter = Meter::default();
            run.optimizer_step(batch, &mut meter)?;
            losses.push(meter.mean("loss").unwrap_or(f64::NAN));
        }
        epoch += 1;
    }
    Ok(losses)
}

/// How far a bf16 loss curve strays from the fp32 one: the largest and the mean of
/// |bf16 − fp32| / fp32 over windows of `window` steps (single steps are noisy: the two runs
/// drift apart as any two float orders do, so the comparison is on windowed means).
pub fn curve_divergence(fp32: &[f64], bf16: &[f64], window: usize) -> (f64, f64) {
    let n = fp32.len().min(bf16.len());
    let w = window.max(1);
    let rel: Vec<f64> = (0..n / w)
        .map(|k| {
            let a: f64 = fp32[k * w..(k + 1) * w].iter().sum::<f64>() / w as f64;
            let b: f64 = bf16[k * w..(k + 1) * w].iter().sum::<f64>() / w as f64;
            (b - a).abs() / a.abs().max(1e-12)
        })
        .collect();
    let max = rel.iter().copied().fold(0.0, f64::max);
    let mean = if rel.is_empty() {
        0.0
    } else {
        rel.iter().sum::<f64>() / rel.len() as f64
    };
    (max, mean)
}
