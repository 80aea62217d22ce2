//! The real SLURM dev cluster (scripts/slurm/) for tests: used when it is up; without it a
//! test prints "skipped" and passes, except under `FLOW_REQUIRE_SLURM=1` (CI), where it
//! fails loudly.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The running dev cluster's settings (`scripts/slurm/env`).
#[derive(Debug)]
pub struct Cluster {
    pub partition: String,
    pub account: String,
    pub mail_log: PathBuf,
    pub max_array_size: u32,
    /// A partition whose jobs preempt (requeue) the default partition's.
    pub urgent_partition: String,
    /// The single node's name.
    pub node: String,
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn slurm_env(var: &str) -> String {
    let out = std::process::Command::new(repo().join("scripts/slurm/env"))
        .arg(var)
        .output()
        .expect("scripts/slurm/env");
    assert!(out.status.success(), "scripts/slurm/env {var}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The cluster if it is up; `None` (after printing why) if the test should be skipped.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    let c = CLUSTER.get_or_init(|| {
        let status = std::process::Command::new(repo().join("scripts/slurm/status"))
            .arg("-q")
            .status();
        let healthy = matches!(&status, Ok(s) if s.success());
        if !healthy {
            if std::env::var("FLOW_REQUIRE_SLURM").as_deref() == Ok("1") {
                let why = match &status {
                    Ok(s) => format!("exit status {}", s.code().unwrap_or(-1)),
                    Err(e) => format!("cannot run it: {e}"),
                };
                panic!(
                    "FLOW_REQUIRE_SLURM=1 but the SLURM dev cluster is not running \
                     (scripts/slurm/status -q: {why}); start it with \
                     `scripts/slurm/install && scripts/slurm/start` (scripts/test does this \
                     when FLOW_REQUIRE_SLURM=1)"
                );
            }
            return None;
        }
        Some(Cluster {
            partition: slurm_env("FLOW_SLURM_PARTITION"),
            account: slurm_env("FLOW_SLURM_ACCOUNT"),
            mail_log: slurm_env("FLOW_SLURM_MAIL_LOG").into(),
            max_array_size: slurm_env("FLOW_SLURM_MAX_ARRAY_SIZE").parse().unwrap(),
            urgent_partition: slurm_env("FLOW_SLURM_URGENT_PARTITION"),
            node: slurm_env("FLOW_SLURM_NODE"),
        })
    });
    if c.is_none() {
        eprintln!("skipped: SLURM dev cluster not running (start it with scripts/slurm/start)");
    }
    c.as_ref()
}
