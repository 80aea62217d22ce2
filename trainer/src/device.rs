//! The device options every training command shares: `--device cpu|cuda|cuda:N` and
//! `--cudnn on|off` (the team's cluster runs with cuDNN disabled).

/// Parses `cpu`, `cuda`, `cuda:N`, or picks cuda when available.
pub fn parse_device(s: Option<&str>) -> Result<tch::Device, String> {
    match s {
        None => Ok(tch::Device::cuda_if_available()),
        Some("cpu") => Ok(tch::Device::Cpu),
        Some("cuda") => Ok(tch::Device::Cuda(0)),
        Some(other) => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| format!("unknown device `{other}`: pass cpu, cuda or cuda:N")),
    }
}

/// Applies `--cudnn on|off` (and benchmark mode with it) on a CUDA device.
pub fn apply_cudnn(device: tch::Device, setting: &str) -> Result<(), String> {
    let enabled = parse_switch("--cudnn", setting)?;
    if device != tch::Device::Cpu {
        crate::torch_ext::configure_cudnn(enabled, enabled).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Waits for the work queued on `device` (nothing to wait for on the CPU).
pub fn synchronize(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// An `on`/`off` option's value (environment variables may also say 1/0, true/false).
pub fn parse_switch(option: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        other => Err(format!("{option} {other}: expected on or off")),
    }
}
