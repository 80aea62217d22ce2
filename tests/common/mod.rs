//! A test project in a temp dir and the real `flow` binary run inside it.
#![allow(dead_code)]

pub mod slurm;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct TestProject {
    dir: tempfile::TempDir,
}

/// What `flow run --json` reports.
#[derive(Debug, serde::Deserialize)]
pub struct Summary {
    pub ran: Vec<String>,
    pub up_to_date: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
}

impl TestProject {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        TestProject { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn workflow(&self, yaml: &str) -> &Self {
        self.write("workflows/w.yaml", yaml)
    }

    pub fn flow(&self, args: &[&str]) -> Output {
        Command::cargo_bin("flow")
            .unwrap()
            .current_dir(self.root())
            .env("NO_COLOR", "1")
            .env_remove("FLOW_PROJECT")
            .env_remove("CUDA_VISIBLE_DEVICES")
            .args(args)
            .output()
            .unwrap()
    }

    /// `flow run workflows/w.yaml --json EXTRA...`, returning the summary and exit code.
    pub fn run(&self, extra: &[&str]) -> (Summary, i32) {
        let mut args = vec!["run", "workflows/w.yaml", "--json"];
        args.extend_from_slice(extra);
        let out = self.flow(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_else(|| {
            panic!(
                "no output; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let summary: Summary = serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "{e}: {stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (summary, out.status.code().unwrap_or(-1))
    }

    /// Runs and returns the sorted ids of the nodes that ran (and must have succeeded).
    pub fn ran(&self, extra: &[&str]) -> Vec<String> {
        let (s, code) = self.run(extra);
        assert_eq!(code, 0, "run failed: {s:?}");
        let mut ran = s.ran;
        ran.sort();
        ran
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
