//! `flow-train`: flow's libtorch trainer. For now only the set-up check (`doctor`); the model
//! and the training loop come later (issue 8).

mod torch_version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Write the synthetic COCO instance-segmentation dataset.
    Synth(flow_trainer::synth_cmd::SynthArgs),
}

fn main() -> ExitCode {
    // Before any libtorch call: see `load_torch_cuda`.
    let cuda_load = load_torch_cuda();
    let cli = Cli::parse();
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
    }
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
