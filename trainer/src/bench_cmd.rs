//! `flow-train bench`: training throughput (images/s, median step, peak GPU memory) per size,
//! batch, resolution mode and precision, plus the bf16-vs-fp32 loss-curve parity check; see
//! `train::bench`. Rows print as they finish (and append to `--json` as JSON lines), so a run
//! cut short by a time limit still leaves its results.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::device::{apply_cudnn, parse_device};
use crate::model::ModelSize;
use crate::train::bench::{
    BenchCase, BenchRow, BenchSettings, bench_case, curve_divergence, ensure_dataset, loss_curve,
    mode_name, precision_name,
};

/// Arguments of `flow-train bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Sizes, comma-separated.
    #[arg(
        long,
        default_value = "nano,small,medium,large,xlarge,2xlarge",
        value_delimiter = ','
    )]
    pub sizes: Vec<String>,
    /// Batch sizes, comma-separated; a size stops at the first batch that fails (out of
    /// memory) or gains under 5% images/s over the previous one.
    #[arg(long, default_value = "4", value_delimiter = ',')]
    pub batches: Vec<u32>,
    /// Passes per optimizer step (`grad_accum_steps`): each step trains on batch × this many
    /// images, as the recipe (4) does; images/s counts all of them.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: u32,
    /// Resolution modes: native, multi-scale (comma-separated).
    #[arg(long, default_value = "native", value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Precisions: bf16, fp32 (comma-separated).
    #[arg(long, default_value = "bf16", value_delimiter = ',')]
    pub precisions: Vec<String>,
    /// CUDA graphs for the model's passes: on (as training runs by default), off
    /// (comma-separated: both side by side).
    #[arg(long, default_value = "on", value_delimiter = ',')]
    pub graphs: Vec<String>,
    /// Timed steps per case.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Distinct batches decoded beforehand and cycled.
    #[arg(long, default_value_t = 8)]
    pub cycle: usize,
    /// cpu or cuda (cuda:N); default: cuda when available.
    #[arg(long)]
    pub device: Option<String>,
    /// cuDNN on (with benchmark mode) or off.
    #[arg(long, default_value = "on")]
    pub cudnn: String,
    /// Host threads.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Folder for the synthetic dataset and per-case run folders.
    #[arg(long, default_value = "/tmp/flow-train-bench")]
    pub work: PathBuf,
    /// Appends every row here as a JSON line.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A second pass of each case with the device synchronised between phases, printing
    /// where a step's time goes (forward, criterion, backward, clipping, AdamW, EMA).
    #[arg(long)]
    pub profile: bool,
    /// Also profile a few steps with libtorch's profiler, appending the heaviest kernels and
    /// ops per case to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Instead of timing: the first size's per-step loss over this many steps in fp32 and in
    /// bf16 from the same initial weights and data, written to `<work>/parity.csv`.
    #[arg(long)]
    pub parity_steps: Option<usize>,
    /// Instead of timing: the first size's per-step loss over this many bf16 steps with the
    /// passes run eagerly and replayed as CUDA graphs, written to `<work>/graph-parity.csv`.
    #[arg(long)]
    pub graph_parity_steps: Option<usize>,
}

fn print_row(r: &BenchRow, json: Option<&PathBuf>) {
    println!(
        "ROW size={} res={} batch={} accum={} mode={} precision={} graphs={} shapes={} img/s={:.1} median_ms={:.1} peak_alloc_GiB={:.2} peak_reserved_GiB={:.2} first_step_s={:.1} loss={:.3}",
        r.size,
        r.resolution,
        r.batch,
        r.accum,
        mode_name(r.multi_scale),
        precision_name(r.amp),
        match (r.graphs, r.graphs_failed) {
            (false, _) => "off",
            (true, false) => "on",
            (true, true) => "failed",
        },
        r.graph_shapes,
        r.images_per_s,
        r.median_ms,
        r.peak_alloc_gib,
        r.peak_reserved_gib,
        r.first_step_s,
        r.loss
    );
    let _ = std::io::stdout().flush();
    if let Some(path) = json
        && let Ok(line) = serde_json::to_string(r)
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn print_profile(r: &BenchRow) {
    let phases = crate::train::profile::take();
    let total: f64 = phases.iter().map(|p| p.1).sum();
    let steps = r.steps.max(1) as f64;
    let parts: Vec<String> = phases
        .iter()
        .map(|(p, s, _)| format!("{p}={:.1}ms", s / steps * 1e3))
        .collect();
    println!(
        "PROFILE size={} batch={} step={:.1}ms {}",
        r.size,
        r.batch,
        total / steps * 1e3,
        parts.join(" ")
    );
}

/// The command.
pub fn run(args: BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flow-train bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: BenchArgs) -> Result<(), String> {
    let device = parse_device(args.device.as_deref())?;
    apply_cudnn(device, &args.cudnn)?;
    crate::train::threads::apply(args.threads);
    let sizes: Vec<ModelSize> = args
        .sizes
        .iter()
        .map(|s| s.parse::<ModelSize>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let settings = BenchSettings {
        work_dir: args.work.clone(),
        device,
        warmup: args.warmup,
        steps: args.steps,
        batches: args.cycle,
        threads: args.threads,
        profile: args.profile,
        trace: args.trace.clone(),
    };
    let max_batch =
        (args.batches.iter().copied().max().unwrap_or(4) * args.grad_accum.max(1)) as usize;
    let dataset =
        ensure_dataset(&args.work, (args.cycle * max_batch).max(32)).map_err(|e| e.to_string())?;
    println!(
        "device {device:?}, cudnn {}, dataset {}",
        args.cudnn,
        dataset.display()
    );
    let first_case = |amp: bool, graphs: bool| -> Result<BenchCase, String> {
        Ok(BenchCase {
            size: *sizes.first().ok_or("no size given")?,
            batch: args.batches.first().copied().unwrap_or(4),
            accum: args.grad_accum.max(1),
            multi_scale: false,
            amp,
            graphs,
        })
    };
    if let Some(n) = args.parity_steps {
        let cases = [
            ("fp32", first_case(false, false)?),
            ("bf16", first_case(true, false)?),
        ];
        return compare_curves(&cases, &settings, &dataset, n, "parity");
    }
    if let Some(n) = args.graph_parity_steps {
        let cases = [
            ("eager", first_case(true, false)?),
            ("graphs", first_case(true, true)?),
        ];
        return compare_curves(&cases, &settings, &dataset, n, "graph-parity");
    }
    for &size in &sizes {
        for mode in &args.modes {
            for (precision, graphs) in args
                .precisions
                .iter()
                .flat_map(|p| args.graphs.iter().map(move |g| (p, g)))
            {
                let graphs = crate::device::parse_switch("--graphs", graphs)?;
                let mut previous: Option<f64> = None;
                for &batch in &args.batches {
                    let case = BenchCase {
                        size,
                        batch,
                        accum: args.grad_accum.max(1),
                        multi_scale: mode == mode_name(true),
                        amp: precision == precision_name(true),
                        graphs,
                    };
                    let row = crate::torch_ext::unpanicked(|| {
                        bench_case(&case, &settings, &dataset).map_err(|e| e.to_string())
                    });
                    match row {
                        Ok(r) => {
                            print_row(&r, args.json.as_ref());
                            if args.profile {
                                print_profile(&r);
                            }
                            let gain = previous.map(|p| r.images_per_s / p);
                            previous = Some(r.images_per_s);
                            if gain.is_some_and(|g| g < 1.05) {
                                println!("STOP size={size} batch={batch}: saturated");
                                break;
                            }
                        }
                        Err(e) => {
                            let first = e.lines().next().unwrap_or_default();
                            println!(
                                "FAIL size={size} batch={batch} mode={mode} precision={precision}: {first}"
                            );
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs the two cases' loss curves over `steps` steps from the same initial weights and data,
/// writes them to `<work>/<name>.csv` and prints their divergence over windows of 1, 10 and 25
/// steps.
fn compare_curves(
    cases: &[(&str, BenchCase); 2],
    settings: &BenchSettings,
    dataset: &std::path::Path,
    steps: usize,
    name: &str,
) -> Result<(), String> {
    let mut curves = Vec::new();
    for (label, case) in cases {
        let started = std::time::Instant::now();
        let curve = crate::torch_ext::unpanicked(|| {
            loss_curve(case, settings, dataset, steps).map_err(|e| e.to_string())
        })?;
        println!(
            "{name} {label}: {} steps in {:.1} s, first loss {:.4}, last loss {:.4}",
            curve.len(),
            started.elapsed().as_secs_f64(),
            curve.first().copied().unwrap_or(f64::NAN),
            curve.last().copied().unwrap_or(f64::NAN)
        );
        curves.push(curve);
    }
    let mut csv = format!("step,loss_{},loss_{}\n", cases[0].0, cases[1].0);
    for (i, (a, b)) in curves[0].iter().zip(&curves[1]).enumerate() {
        csv.push_str(&format!("{},{a},{b}\n", i + 1));
    }
    let path = settings.work_dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    for w in [1, 10, 25] {
        let (max, mean) = curve_divergence(&curves[0], &curves[1], w);
        println!(
            "{name} window {w}: max relative difference {max:.4}, mean {mean:.4} ({})",
            path.display()
        );
    }
    Ok(())
}
