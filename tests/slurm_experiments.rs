//! `flow launch` on the real SLURM dev cluster: the size policy, the batch halving inside the
//! job, the registry kept in step with sacct.

mod common;

use std::time::{Duration, Instant};

use common::TestProject;
use common::slurm::{Cluster, cluster};
use serde_json::Value;

fn project(c: &Cluster) -> TestProject {
    let p = TestProject::new();
    let trainer = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo/rfdetr_trainer.sh"),
    )
    .unwrap();
    p.write("scripts/trainer.sh", &trainer);
    p.write(
        "configs/flow.yaml",
        &format!(
            "slurm:\n  partition: {}\n  account: {}\n",
            c.partition, c.account
        ),
    );
    p.write(
        "configs/experiments/nano.yaml",
        "experiment:\n  name: \"nano-baseline\"\n  model_size: \"nano\"\ndata:\n  dataset_dir: \"data/none\"\ntraining:\n  epochs: 3\n  lr: 1.0e-4\n  lr_drop: 2\n  batch_size: 4\n  grad_accum_steps: 4\ntrainer:\n  command: \"sh scripts/trainer.sh {config} {output_dir} {resume}\"\n# The dev cluster is small: less than the size policy's 48G / 8 h.\nresources:\n  mem: 200M\n  time: \"10\"\n",
    );
    p
}

fn flow(p: &TestProject, args: &[&str]) -> (String, String, i32) {
    let out = assert_cmd::Command::cargo_bin("flow")
        .unwrap()
        .current_dir(p.root())
        .env("FLOW_SLURM_POLL_MAX_SECS", "1")
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn entries(p: &TestProject) -> Vec<Value> {
    let (out, err, code) = flow(p, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(v["sacct_calls"].as_u64().unwrap() <= 1, "{v}");
    v["experiments"].as_array().unwrap().clone()
}

#[test]
fn launch_submits_halves_the_batch_in_the_job_and_status_follows_sacct() {
    let Some(c) = cluster() else { return };
    let p = project(c);
    let (out, err, code) = flow(&p, &["launch", "--config", "configs/experiments/nano.yaml"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("registered run nano-baseline-"), "{out}");
    // Detached: the registry says submitted (or further) with the job id at once.
    let e = &entries(&p)[0];
    assert!(
        ["submitted", "pending", "running", "completed"].contains(&e["status"].as_str().unwrap()),
        "{e}"
    );
    assert!(e["slurm_job_id"].is_string(), "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    // The job script asks for the size policy's GPU and CPUs, under the config's memory.
    let script = walk(&p.path(".cache/slurm"))
        .into_iter()
        .filter(|f| f.ends_with("job.sh"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|s| s.contains("exec-train"))
        .expect("the training job's script");
    assert!(script.contains("#SBATCH --gres=gpu:a100:1"), "{script}");
    assert!(script.contains("#SBATCH --cpus-per-task=8"), "{script}");
    assert!(script.contains("#SBATCH --mem=200M"), "{script}");
    assert!(script.contains("#SBATCH --requeue"), "{script}");

    // `flow status` reconciles until the run and its metrics are done.
    let deadline = Instant::now() + Duration::from_secs(180);
    let e = loop {
        let (out, err, code) = flow(&p, &["launch", "--config", "configs/experiments/nano.yaml"]);
        assert_eq!(code, 0, "{out}\n{err}");
        let e = entries(&p).remove(0);
        if e["status"] == "completed" && p.path(&format!("experiments/metrics/{id}.json")).exists()
        {
            break e;
        }
        assert!(
            ["submitted", "pending", "running", "completed"]
                .contains(&e["status"].as_str().unwrap()),
            "{e}"
        );
        assert!(Instant::now() < deadline, "still {e}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        entries(&p).len(),
        1,
        "relaunching while in flight launched nothing new"
    );
    assert_eq!(e["best"]["epochs"], 3, "{e}");
    assert_eq!(e["provenance"]["batch_policy"], "halve", "{e}");
    assert_eq!(e["gpus"], 1, "{e}");
    assert!(e["gpu_hours"].is_number(), "{e}");
    let cfg = p.read(&format!("checkpoints/{id}/config.yaml"));
    assert!(
        cfg.contains("  batch_size: 2\n") && cfg.contains("  grad_accum_steps: 8\n"),
        "halved inside the job: {cfg}"
    );
    let info: Value =
        serde_json::from_str(&p.read(&format!("checkpoints/{id}/flow-run.json"))).unwrap();
    assert_eq!(info["slurm_job_id"], e["slurm_job_id"], "{info}");
    // Relaunch once completed: make-like.
    let (out, _, code) = flow(&p, &["launch", "--config", "configs/experiments/nano.yaml"]);
    assert_eq!(code, 0);
    assert!(out.contains("is already completed"), "{out}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn cancel_by_run_id_marks_the_run_cancelled_and_a_relaunch_resumes_it() {
    let Some(c) = cluster() else { return };
    let p = project(c);
    // A trainer that waits for a release file, so the job is in flight when cancelled.
    p.write(
        "configs/experiments/nano.yaml",
        &p.read("configs/experiments/nano.yaml").replace(
            "command: \"sh scripts/trainer.sh",
            "command: \"while [ ! -e release ]; do sleep 0.2; done; sh scripts/trainer.sh",
        ),
    );
    let (out, err, code) = flow(&p, &["launch", "--config", "configs/experiments/nano.yaml"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let id = entries(&p)[0]["id"].as_str().unwrap().to_string();
    let (out, err, code) = flow(&p, &["cancel", &id, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        v["cancelled"].as_array().unwrap().len(),
        2,
        "train and its metrics: {v}"
    );
    let e = entries(&p).remove(0);
    assert_eq!(e["status"], "cancelled", "{e}");
    // Relaunching the config runs the same run again (same id), which now completes.
    p.write("release", "");
    let (out, err, code) = flow(
        &p,
        &[
            "launch",
            "--config",
            "configs/experiments/nano.yaml",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let reg = entries(&p);
    assert_eq!(reg.len(), 1, "{reg:?}");
    assert_eq!(reg[0]["id"], id.as_str());
    assert_eq!(reg[0]["status"], "completed", "{}", reg[0]);
}
