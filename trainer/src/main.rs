//! `flow-train`: flow's libtorch trainer: `train` (the command flow's `train` task runs),
//! `import-weights`, `summary`, `eval`, `synth` and the set-up check `doctor`.

mod torch_version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flow_trainer::model::ModelSize;
use tch::{Device, Kind, Tensor, nn, nn::Module};

/// The torch version tch 0.24 is built for; another libtorch is refused by `doctor`.
const EXPECTED_TORCH: &str = "2.11.0";

#[derive(Parser)]
#[command(name = "flow-train", version, about = "flow's libtorch trainer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the libtorch set-up: torch version, CUDA, and a tiny conv forward/backward.
    Doctor {
        /// libtorch intra-op threads (libtorch's default when not given).
        #[arg(long)]
        threads: Option<i32>,
    },
    /// Evaluate a COCO results file (bbox or segm) as pycocotools does.
    Eval(flow_trainer::eval_cmd::EvalArgs),
    /// Measure training throughput and peak GPU memory, or bf16/fp32 loss parity.
    Bench(flow_trainer::bench_cmd::BenchArgs),
    /// Write the synthetic COCO instance-segmentation dataset.
    Synth(flow_trainer::synth_cmd::SynthArgs),
    /// Train from an experiment config into a run directory (log.txt, checkpoints).
    Train(TrainArgs),
    /// Convert an RF-DETR torch checkpoint (.pth) into the trainer's safetensors weights.
    ImportWeights {
        /// The RF-DETR checkpoint.
        input: PathBuf,
        /// The safetensors file to write.
        output: PathBuf,
        /// Model size (tiny, nano, small, medium, large, xlarge, 2xlarge).
        #[arg(long)]
        model_size: String,
        /// Classes (default: the checkpoint's).
        #[arg(long)]
        num_classes: Option<i64>,
    },
    /// Print a model's parameter counts per module.
    Summary {
        /// Model size.
        #[arg(long)]
        model_size: String,
        /// Classes.
        #[arg(long, default_value_t = 2)]
        num_classes: i64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The experiment config (YAML, DESIGN §3).
    #[arg(long)]
    config: PathBuf,
    /// The run directory; default: the config's directory.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Continue from the run directory's last checkpoint if there is one (else start fresh);
    /// also on when flow's engine sets FLOW_RESUME=1 for a retry.
    #[arg(long)]
    resume: bool,
    /// cpu or cuda (cuda:N); default: cuda when available.
    #[arg(long)]
    device: Option<String>,
    /// Overrides experiment.model_size.
    #[arg(long)]
    model_size: Option<String>,
    /// Initial weights (.safetensors or an RF-DETR .pth); overrides model.pretrain_weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// At most this many optimizer steps per epoch (smoke tests).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Threads (default: SLURM_CPUS_PER_TASK, else all CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// cuDNN `on` (with benchmark mode: autotuned convolutions) or `off` (as the team's
    /// cluster runs); default: FLOW_TRAIN_CUDNN, else on.
    #[arg(long)]
    cudnn: Option<String>,
    /// CUDA graphs `on` (each pass replays the model's kernels as two graphs captured per
    /// input shape: ~3x the images/s of eager passes at batch 4) or `off`; default:
    /// FLOW_TRAIN_CUDA_GRAPHS, else on. GPU only; a failed capture falls back to eager passes.
    #[arg(long)]
    cuda_graphs: Option<String>,
}

/// `flow-train --config F ...` (DESIGN's form) means `flow-train train --config F ...`:
/// options before any subcommand select training.
fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let is_option = first.starts_with("--")
        && !matches!(first, "--help" | "--version")
        && first != "-h"
        && first != "-V";
    if is_option {
        args.insert(1, "train".into());
    }
    args
}

fn main() -> ExitCode {
    // Before any libtorch call: see `load_torch_cuda`.
    let cuda_load = load_torch_cuda();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    match cli.command {
        Command::Doctor { threads } => match doctor(threads, cuda_load) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flow-train doctor: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Eval(args) => flow_trainer::eval_cmd::run(args),
        Command::Synth(args) => flow_trainer::synth_cmd::run(args),
        Command::Bench(args) => flow_trainer::bench_cmd::run(args),
        Command::Train(args) => report("train", train(args)),
        Command::ImportWeights {
            input,
            output,
            model_size,
            num_classes,
        } => report(
            "import-weights",
            import_weights(&input, &output, &model_size, num_classes),
        ),
        Command::Summary {
            model_size,
            num_classes,
            json,
        } => report("summary", summary(&model_size, num_classes, json)),
    }
}

/// Prints `flow-train CMD: error` and fails, or succeeds.
fn report(cmd: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flow-train {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train(args: TrainArgs) -> Result<(), String> {
    let device = flow_trainer::device::parse_device(args.device.as_deref())?;
    if device != Device::Cpu && !tch::Cuda::is_available() {
        return Err("--device cuda asked for, but CUDA is not available".into());
    }
    let cudnn = args
        .cudnn
        .or_else(|| std::env::var("FLOW_TRAIN_CUDNN").ok())
        .unwrap_or_else(|| "on".to_owned());
    flow_trainer::device::apply_cudnn(device, &cudnn)?;
    let asked_graphs = args
        .cuda_graphs
        .or_else(|| std::env::var("FLOW_TRAIN_CUDA_GRAPHS").ok())
        .map(|v| flow_trainer::device::parse_switch("--cuda-graphs", &v))
        .transpose()?;
    if asked_graphs == Some(true) && device == Device::Cpu {
        eprintln!("note: --cuda-graphs applies on CUDA only; the CPU runs every pass eagerly");
    }
    let cuda_graphs = asked_graphs.unwrap_or(true);
    let model_size = args
        .model_size
        .as_deref()
        .map(str::parse::<ModelSize>)
        .transpose()
        .map_err(|e| e.to_string())?;
    let output_dir = match args.output_dir {
        Some(d) => d,
        None => args
            .config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let opts = flow_trainer::train::TrainOptions {
        config: args.config,
        output_dir,
        resume: args.resume || std::env::var("FLOW_RESUME").is_ok_and(|v| v == "1"),
        device,
        model_size,
        weights: args.weights,
        max_steps: args.max_steps,
        threads: args.threads,
        epochs_limit: None,
        progress: true,
        cuda_graphs,
    };
    let s = flow_trainer::train::train(&opts).map_err(|e| e.to_string())?;
    eprintln!(
        "done: {} epoch(s) run, {} complete{}, best mask AP {}, {:.3} s/step",
        s.epochs_run,
        s.epochs_done,
        if s.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        s.best_mask_ap.map_or("-".to_owned(), |a| format!("{a:.4}")),
        s.seconds_per_step
    );
    Ok(())
}

fn import_weights(
    input: &std::path::Path,
    output: &std::path::Path,
    size: &str,
    num_classes: Option<i64>,
) -> Result<(), String> {
    let size: ModelSize = size
        .parse()
        .map_err(|e: flow_trainer::model::ModelError| e.to_string())?;
    let (cfg, report) = flow_trainer::model::import::import_to_safetensors(
        input,
        output,
        size,
        num_classes,
        flow_trainer::model::import::LoadPolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "imported {} variables of {} ({} classes) into {}",
        report.loaded,
        cfg.size,
        cfg.num_classes,
        output.display()
    );
    Ok(())
}

fn summary(size: &str, num_classes: i64, json: bool) -> Result<(), String> {
    use flow_trainer::model::{ModelConfig, RfDetrSeg, params};
    let size: ModelSize = size
        .parse()
        .map_err(|e: flow_trainer::model::ModelError| e.to_string())?;
    let cfg = ModelConfig::preset(size, num_classes).map_err(|e| e.to_string())?;
    let vs = nn::VarStore::new(Device::Cpu);
    RfDetrSeg::new(&vs.root(), &cfg).map_err(|e| e.to_string())?;
    let total = params::trainable_count(&vs);
    let modules = params::breakdown(&vs);
    if json {
        let v = serde_json::json!({
            "model_size": size.as_str(),
            "num_classes": num_classes,
            "resolution": cfg.resolution,
            "trainable_parameters": total,
            "modules": modules,
        });
        println!("{v:#}");
    } else {
        println!(
            "{size}: {num_classes} classes, {} px, {total} trainable parameters",
            cfg.resolution
        );
        for (name, n) in modules {
            println!("  {name:<40} {n:>12}");
        }
    }
    Ok(())
}

/// rustc links with `--as-needed`, which drops `libtorch_cuda.so` (nothing references it by
/// symbol), so CUDA would never register. Loading it by hand registers the CUDA backend where
/// its libraries exist (GPU machines); elsewhere (the light CPU install has no cuBLAS) it fails
/// harmlessly and torch runs on the CPU. The name resolves through the binary's rpath.
fn load_torch_cuda() -> Result<(), String> {
    let name = c"libtorch_cuda.so";
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is deliberately leaked so
    // the library stays loaded for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if !handle.is_null() {
        return Ok(());
    }
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call.
    let err = unsafe { libc::dlerror() };
    Err(if err.is_null() {
        "dlopen failed".to_owned()
    } else {
        // SAFETY: non-NULL, NUL-terminated (see above).
        unsafe { std::ffi::CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned()
    })
}

/// The loaded `libtorch_cpu.so` (from /proc/self/maps) and the version in the `version.py`
/// of its torch package (`<torch>/lib/libtorch_cpu.so` -> `<torch>/version.py`).
fn loaded_libtorch() -> Option<(PathBuf, Option<String>)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .map(PathBuf::from)?;
    let version = lib
        .parent()
        .and_then(|d| d.parent())
        .and_then(|torch| std::fs::read_to_string(torch.join("version.py")).ok())
        .and_then(|text| torch_version::parse_version_py(&text));
    Some((lib, version))
}

fn doctor(threads: Option<i32>, cuda_load: Result<(), String>) -> Result<(), String> {
    if let Some(n) = threads {
        tch::set_num_threads(n);
    }
    println!("flow-train {}", env!("CARGO_PKG_VERSION"));
    println!(
        "tch built against torch {}",
        env!("FLOW_TORCH_BUILD_VERSION")
    );
    // Any tensor op loads libtorch_cpu.so (it is linked, so already mapped).
    let _ = Tensor::zeros([1], (Kind::Float, Device::Cpu));
    let (lib, version) = loaded_libtorch().ok_or("libtorch_cpu.so is not loaded")?;
    let version = version.unwrap_or_else(|| "unknown".to_owned());
    println!("torch {version} ({})", lib.display());
    if version.split('+').next() != Some(EXPECTED_TORCH) {
        return Err(format!(
            "torch {version} loaded, but tch 0.24 needs torch {EXPECTED_TORCH}"
        ));
    }
    println!("threads: {}", tch::get_num_threads());
    let cuda = tch::Cuda::is_available();
    match (&cuda_load, cuda) {
        (_, true) => println!(
            "cuda: available, {} device(s), cudart {}, cudnn {}",
            tch::Cuda::device_count(),
            tch::utils::version_cudart(),
            tch::utils::version_cudnn()
        ),
        (Err(e), false) => println!("cuda: not available (libtorch_cuda.so not loaded: {e})"),
        (Ok(()), false) => println!("cuda: not available (libtorch_cuda.so loaded, no GPU)"),
    }
    let graphs = if !flow_trainer::cuda_graph::built() {
        "not built in (no CUDA headers where this binary was built): passes run eagerly".to_owned()
    } else if !cuda {
        "built in, used on a GPU".to_owned()
    } else {
        match flow_trainer::cuda_graph::GraphSession::new() {
            Ok(_) => "available".to_owned(),
            Err(e) => format!("built in, but cannot be loaded ({e}): passes run eagerly"),
        }
    };
    println!("cuda graphs: {graphs}");
    let loss = conv_step(Device::Cpu)?;
    println!("cpu conv forward/backward: loss {loss:.6}");
    if cuda {
        let loss = conv_step(Device::Cuda(0))?;
        println!("cuda conv forward/backward: loss {loss:.6}");
    }
    println!("ok");
    Ok(())
}

/// A 3x3 convolution on a fixed random batch: forward, mean-square loss, backward, one SGD
/// step. Returns the loss; fails when it or any gradient is not finite.
fn conv_step(device: Device) -> Result<f64, String> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let conv = nn::conv2d(
        vs.root(),
        3,
        8,
        3,
        nn::ConvConfig {
            padding: 1,
            ..Default::default()
        },
    );
    let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, device));
    let loss = conv.forward(&x).relu().square().mean(Kind::Float);
    loss.backward();
    let value = loss.double_value(&[]);
    if !value.is_finite() {
        return Err(format!("non-finite loss {value} on {device:?}"));
    }
    for (name, var) in vs.variables() {
        let grad = var.grad();
        if !grad.defined() || !bool::try_from(grad.isfinite().all()).unwrap_or(false) {
            return Err(format!("bad gradient for {name} on {device:?}"));
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_tensor_op() {
        tch::set_num_threads(1);
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let b = a.matmul(&a.tr());
        assert_eq!(
            Vec::<f32>::try_from(b.flatten(0, -1)).unwrap(),
            vec![5.0, 11.0, 11.0, 25.0]
        );
    }

    #[test]
    fn conv_step_is_finite() {
        tch::set_num_threads(1);
        let loss = conv_step(Device::Cpu).unwrap();
        assert!(loss.is_finite() && loss > 0.0);
    }
}
