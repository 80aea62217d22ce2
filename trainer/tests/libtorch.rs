//! The libtorch set-up works end to end: the built `flow-train` finds libtorch through its
//! rpath (no LD_LIBRARY_PATH), it is torch 2.11.0, and a conv forward/backward gives a finite
//! loss.

use std::process::Command;

#[test]
fn doctor_runs_on_the_installed_libtorch() {
    let out = Command::new(env!("CARGO_BIN_EXE_flow-train"))
        .args(["doctor", "--threads", "1"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run flow-train doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "doctor failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("torch 2.11.0")),
        "no torch 2.11.0 line:\n{stdout}"
    );
    let loss: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cpu conv forward/backward: loss "))
        .unwrap_or_else(|| panic!("no loss line:\n{stdout}"))
        .trim()
        .parse()
        .expect("loss is a number");
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_flow-train"))
        .arg("--version")
        .output()
        .expect("run flow-train --version");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("flow-train {}", env!("CARGO_PKG_VERSION"))
    );
}
