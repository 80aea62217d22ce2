//! Experiments on the engine: train and metrics nodes, `flow launch`, `status`, `train`,
//! `import` and the registry, with a stand-in trainer that writes RF-DETR logs
//! (scripts/demo/rfdetr_trainer.sh) until flow-train trains.

mod common;

use std::collections::BTreeSet;

use common::{TestProject, stderr, stdout};
use serde_json::Value;

/// A project with the stand-in trainer and one config per (name, size, lr).
fn project() -> TestProject {
    let p = TestProject::new();
    let trainer = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo/rfdetr_trainer.sh"),
    )
    .unwrap();
    p.write("scripts/trainer.sh", &trainer);
    p
}

fn config(p: &TestProject, file: &str, name: &str, size: &str, lr: &str) {
    p.write(
        &format!("configs/experiments/{file}.yaml"),
        &format!(
            "experiment:\n  name: \"{name}\"\n  description: \"test\"\n  model_size: \"{size}\"\ndata:\n  dataset_dir: \"data/none\"\ntraining:\n  epochs: 3\n  lr: {lr}\n  lr_scheduler: \"step\"\n  lr_drop: 2\n  batch_size: 4\n  grad_accum_steps: 4\ntrainer:\n  command: \"sh scripts/trainer.sh {{config}} {{output_dir}} {{resume}}\"\n  code: [scripts/trainer.sh]\n"
        ),
    );
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    serde_json::from_str(stdout(out).lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// `flow launch --config configs/experiments/nano.yaml --executor local` plus `extra`.
fn launch_nano(p: &TestProject, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "launch",
        "--config",
        "configs/experiments/nano.yaml",
        "--executor",
        "local",
    ];
    args.extend_from_slice(extra);
    p.flow(&args)
}

fn registry(p: &TestProject) -> Vec<Value> {
    let v: Value = serde_json::from_str(&p.read("experiments/registry.json")).unwrap();
    assert_eq!(v["version"], 1);
    v["experiments"].as_array().unwrap().clone()
}

const SWEEP: &str = "version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n    matrix:\n      training.lr: [1.0e-4, 5.0e-5]\n      training.lr_scheduler: [step, cosine]\n  metrics:\n    task: metrics\n    needs: [train]\n";

#[test]
fn a_sweep_trains_registers_and_extracts_metrics_once() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    p.workflow(SWEEP);
    let ran = p.ran(&[]);
    assert_eq!(ran.len(), 8, "{ran:?}");
    let reg = registry(&p);
    assert_eq!(reg.len(), 4);
    let names: BTreeSet<&str> = reg.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "nano-baseline-lr1.0e-4-cosine",
            "nano-baseline-lr1.0e-4-step",
            "nano-baseline-lr5.0e-5-cosine",
            "nano-baseline-lr5.0e-5-step",
        ])
    );
    for e in &reg {
        let id = e["id"].as_str().unwrap();
        // <name>-<YYYYMMDD-HHMMSS>
        let stamp = id.strip_prefix(e["name"].as_str().unwrap()).unwrap();
        assert_eq!(stamp.len(), 16, "{id}");
        assert!(stamp[1..9].chars().all(|c| c.is_ascii_digit()), "{id}");
        assert_eq!(e["status"], "completed", "{e}");
        assert_eq!(e["output_dir"], format!("checkpoints/{id}"));
        assert_eq!(e["best"]["epochs"], 3, "{e}");
        assert!(e["best"]["mask_map"].as_f64().unwrap() > 0.0);
        assert!(e["node_key"].is_string());
        // The run dir holds the resolved config, with the matrix value applied.
        let cfg = p.read(&format!("checkpoints/{id}/config.yaml"));
        let lr = e["hyperparameters"]["training.lr"].as_f64().unwrap();
        assert!(cfg.contains(&format!("  lr: {lr:?}")), "{cfg}");
        assert!(p.path(&format!("experiments/metrics/{id}.json")).is_file());
        let metrics: Value =
            serde_json::from_str(&p.read(&format!("experiments/metrics/{id}.json"))).unwrap();
        assert_eq!(metrics["version"], 1);
        assert_eq!(metrics["epochs"].as_array().unwrap().len(), 3);
    }
    // Nothing changed: nothing runs, no new run is registered.
    assert!(p.ran(&[]).is_empty());
    assert_eq!(registry(&p).len(), 4);
    // A changed hyperparameter is explained at key level and gives a new run.
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    p.write(
        "configs/experiments/nano.yaml",
        &p.read("configs/experiments/nano.yaml")
            .replace("epochs: 3", "epochs: 4"),
    );
    let out = p.flow(&[
        "explain",
        "workflows/w.yaml",
        "train[lr=5.0e-5,lr_scheduler=cosine]",
    ]);
    assert!(
        stdout(&out).contains("training.epochs: 3 -> 4"),
        "{}",
        stdout(&out)
    );
    assert_eq!(p.ran(&[]).len(), 8);
    assert_eq!(registry(&p).len(), 8);
}

#[test]
fn editing_the_training_script_listed_in_trainer_code_makes_runs_stale() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n");
    assert_eq!(p.ran(&[]), ["train"]);
    p.write(
        "scripts/trainer.sh",
        &format!("{}\n# edited\n", p.read("scripts/trainer.sh")),
    );
    let out = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert!(
        stdout(&out).contains("scripts/trainer.sh"),
        "{}",
        stdout(&out)
    );
    assert_eq!(p.ran(&[]), ["train"]);
}

#[test]
fn overrides_are_checked_where_they_are_written() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n    params:\n      training:\n        lrr: 1.0e-4\n");
    let out = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`training.lrr` is not a key of experiment configs"),
        "{err}"
    );
    assert!(err.contains("did you mean `training.lr`"), "{err}");
    assert!(err.contains("w.yaml:8:"), "{err}");

    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n    matrix:\n      training.lr: [1.0e-4, -1.0]\n");
    let out = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("must be positive"), "{err}");
    assert!(err.contains("w.yaml:7:"), "{err}");

    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n    params:\n      experiment.name: \"../escape\"\n");
    let out = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("experiment name `../escape` contains a path separator"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("w.yaml:7:"), "{}", stderr(&out));

    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/missing.yaml\n");
    let out = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read experiment config `configs/experiments/missing.yaml`"),
        "{}",
        stderr(&out)
    );
    assert!(!p.path("experiments/registry.json").exists());
}

#[test]
fn launch_dry_run_shows_the_policy_per_model_size() {
    let p = project();
    let expect = [
        ("nano", "48G", "8:00:00"),
        ("small", "48G", "8:00:00"),
        ("medium", "64G", "12:00:00"),
        ("large", "64G", "16:00:00"),
        ("xlarge", "80G", "24:00:00"),
        ("2xlarge", "80G", "24:00:00"),
        ("tiny", "48G", "8:00:00"),
    ];
    for (size, mem, time) in expect {
        config(&p, size, &format!("{size}-baseline"), size, "1.0e-4");
        let v = json(&p.flow(&[
            "launch",
            "--config",
            &format!("configs/experiments/{size}.yaml"),
            "--dry-run",
            "--json",
            "--account",
            "proj",
        ]));
        let d = &v[0];
        assert_eq!(d["model_size"], size);
        assert_eq!(d["new"], true);
        assert_eq!(d["resources"]["mem"], mem, "{size}: {d}");
        assert_eq!(d["resources"]["time"], time, "{size}");
        assert_eq!(d["resources"]["gpus"], 1);
        assert_eq!(d["resources"]["cpus_per_task"], 8);
        assert_eq!(d["batch"]["policy"], "halve");
        assert_eq!(d["batch"]["slurm_batch_size"], 2);
        assert_eq!(d["batch"]["slurm_grad_accum_steps"], 8);
        let script = d["script"].as_str().unwrap();
        for line in [
            format!("#SBATCH --mem={mem}"),
            format!("#SBATCH --time={time}"),
            "#SBATCH --gres=gpu:a100:1".to_string(),
            "#SBATCH --cpus-per-task=8".to_string(),
            "#SBATCH --account=proj".to_string(),
            "#SBATCH --requeue".to_string(),
        ] {
            assert!(script.contains(&line), "{size}: no `{line}` in\n{script}");
        }
    }
    // A config's `resources:` beats the size policy; the command line beats both.
    p.write(
        "configs/experiments/medium.yaml",
        &format!(
            "{}resources:\n  mem: 100G\n  time: \"1:00:00\"\n",
            p.read("configs/experiments/medium.yaml")
        ),
    );
    let v = json(&p.flow(&[
        "launch",
        "--config",
        "configs/experiments/medium.yaml",
        "--dry-run",
        "--json",
        "--time",
        "2:00:00",
    ]));
    assert_eq!(v[0]["resources"]["mem"], "100G");
    assert_eq!(v[0]["resources"]["time"], "2:00:00");
    // Nothing was registered or run.
    assert!(!p.path("experiments/registry.json").exists());
    assert!(!p.path("checkpoints").exists());
}

#[test]
fn relaunch_is_make_like_and_new_forces_a_fresh_run() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    let launch = |extra: &[&str]| launch_nano(&p, extra);
    let out = launch(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reg = registry(&p);
    assert_eq!(reg.len(), 1);
    let first = reg[0]["id"].as_str().unwrap().to_string();
    assert_eq!(reg[0]["status"], "completed");
    assert_eq!(reg[0]["provenance"]["batch_policy"], "keep");

    let out = launch(&[]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(&format!("run {first} is already completed")),
        "{}",
        stdout(&out)
    );
    assert_eq!(registry(&p).len(), 1);

    let out = launch(&["--new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reg = registry(&p);
    assert_eq!(reg.len(), 2);
    assert_ne!(reg[1]["id"], reg[0]["id"]);
    assert!(
        p.path(&format!("checkpoints/{first}/log.txt")).is_file(),
        "the old run is kept"
    );
}

#[test]
fn status_filters_ranks_and_prints_json() {
    let p = project();
    config(&p, "a", "a", "nano", "1.0e-4");
    config(&p, "b", "b", "small", "5.0e-5");
    config(&p, "c", "c", "nano", "2.0e-5");
    let out = p.flow(&[
        "launch",
        "--configs",
        "configs/experiments/a.yaml",
        "configs/experiments/b.yaml",
        "configs/experiments/c.yaml",
        "--executor",
        "local",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&p.flow(&["status", "--json", "--leaderboard"]));
    let rows = v["experiments"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|e| e["name"].as_str().unwrap()).collect();
    // The stand-in trainer's mAP grows with the learning rate.
    assert_eq!(names, ["a", "b", "c"]);
    let maps: Vec<f64> = rows
        .iter()
        .map(|e| e["best"]["mask_map"].as_f64().unwrap())
        .collect();
    assert!(maps[0] > maps[1] && maps[1] > maps[2], "{maps:?}");

    let v = json(&p.flow(&["status", "--json", "--model-size", "nano"]));
    let names: BTreeSet<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["a", "c"]));
    let v = json(&p.flow(&["status", "--json", "--status", "failed"]));
    assert!(v["experiments"].as_array().unwrap().is_empty());

    let text = stdout(&p.flow(&["status", "--leaderboard"]));
    let first_row = text.lines().nth(1).unwrap();
    assert!(
        first_row.starts_with("1 ") && first_row.contains(" a-"),
        "{text}"
    );

    let out = p.flow(&["status", "--status", "complete"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `completed`"),
        "{}",
        stderr(&out)
    );
    let out = p.flow(&["status", "--model-size", "huge"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn twenty_concurrent_launches_lose_no_entry_and_share_no_id() {
    let p = project();
    for i in 0..10 {
        config(&p, &format!("c{i}"), &format!("exp{i}"), "nano", "1.0e-4");
    }
    let bin = assert_cmd::cargo::cargo_bin("flow");
    // Ten different configs and ten fresh runs of one config, all at once.
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut cmd = std::process::Command::new(&bin);
            cmd.current_dir(p.root())
                .args(["launch", "--executor", "local", "--config"]);
            if i < 10 {
                cmd.arg(format!("configs/experiments/c{i}.yaml"));
            } else {
                cmd.args(["configs/experiments/c0.yaml", "--new"]);
            }
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reg = registry(&p);
    let ids: BTreeSet<&str> = reg.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), reg.len(), "duplicate ids");
    // c1..c9 once each and ten forced runs of c0; the plain launch of c0 either made its own
    // run or found one of the forced ones in flight (make-like) and launched nothing.
    for i in 1..10 {
        let n = reg
            .iter()
            .filter(|e| e["name"] == format!("exp{i}"))
            .count();
        assert_eq!(n, 1, "exp{i}");
    }
    let c0 = reg.iter().filter(|e| e["name"] == "exp0").count();
    assert!((10..=11).contains(&c0), "{c0} runs of c0");
    for e in &reg {
        assert!(p.path(e["output_dir"].as_str().unwrap()).is_dir(), "{e}");
    }
}

#[test]
fn import_registers_run_dirs_and_a_previous_registry() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    launch_nano(&p, &[]);
    let id = registry(&p)[0]["id"].as_str().unwrap().to_string();
    // A run made elsewhere: its log and config copied in.
    std::fs::create_dir_all(p.path("old/run-7")).unwrap();
    std::fs::copy(
        p.path(&format!("checkpoints/{id}/log.txt")),
        p.path("old/run-7/log.txt"),
    )
    .unwrap();
    std::fs::copy(
        p.path(&format!("checkpoints/{id}/config.yaml")),
        p.path("old/run-7/config.yaml"),
    )
    .unwrap();
    let v = json(&p.flow(&["import", "old/run-7", "--json"]));
    assert_eq!(v[0]["added"], true);
    let v = json(&p.flow(&["import", "old/run-7", "--json"]));
    assert_eq!(v[0]["added"], false, "imported twice");
    p.write(
        "old/registry.json",
        r#"{"experiments": [{"id": "nano-lr-20250101-000000", "name": "nano-lr", "description": "old", "model_size": "nano",
            "hyperparameters": {"training": {"lr": 0.0001}}, "slurm_job_id": 4242, "status": "COMPLETED",
            "output_dir": "checkpoints/nano-lr-20250101-000000", "log_path": "logs/4242.out",
            "best_metrics": {"mask_map": 0.41, "bbox_map": 0.45, "best_epoch": 37}}]}"#,
    );
    let v = json(&p.flow(&["import", "--registry", "old/registry.json", "--json"]));
    assert_eq!(v[0]["added"], true);
    let reg = registry(&p);
    assert_eq!(reg.len(), 3);
    let run7 = reg.iter().find(|e| e["id"] == "run-7").unwrap();
    assert_eq!(run7["name"], "nano-baseline");
    assert_eq!(run7["status"], "completed");
    assert_eq!(run7["best"]["epochs"], 3);
    let old = reg
        .iter()
        .find(|e| e["id"] == "nano-lr-20250101-000000")
        .unwrap();
    assert_eq!(old["slurm_job_id"], "4242");
    assert_eq!(old["status"], "completed");
    assert_eq!(old["hyperparameters"]["training.lr"], 0.0001);
    assert_eq!(old["best"]["best_epoch"], 37);
    // The leaderboard ranks the imported run first and keeps its metrics.
    let v = json(&p.flow(&["status", "--json", "--leaderboard"]));
    assert_eq!(v["experiments"][0]["id"], "nano-lr-20250101-000000");
    assert_eq!(v["experiments"][0]["best"]["mask_map"], 0.41);
    // Broken input changes nothing.
    p.write("old/bad.json", "{\"experiments\": [ {\"id\": 1,, ] }");
    let out = p.flow(&["import", "--registry", "old/bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("old/bad.json:1:"), "{}", stderr(&out));
    assert_eq!(registry(&p).len(), 3);
}

#[test]
fn exec_train_halves_the_batch_inside_slurm_jobs_unless_switched_off() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    let yaml = p.read("configs/experiments/nano.yaml");
    let exec = |dir: &str, env: &[(&str, &str)]| {
        let mut cmd = assert_cmd::Command::cargo_bin("flow").unwrap();
        cmd.current_dir(p.root())
            .env_remove("SLURM_JOB_ID")
            .env_remove("FLOW_BATCH_POLICY")
            .args(["exec-train", "--run-dir", dir, "--config", &yaml]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = exec("checkpoints/a", &[("SLURM_JOB_ID", "77")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = p.read("checkpoints/a/config.yaml");
    assert!(
        cfg.contains("  batch_size: 2\n") && cfg.contains("  grad_accum_steps: 8\n"),
        "{cfg}"
    );
    let info: Value = serde_json::from_str(&p.read("checkpoints/a/flow-run.json")).unwrap();
    assert_eq!(info["batch_policy"], "halve");
    assert_eq!(info["slurm_job_id"], "77");

    let out = exec(
        "checkpoints/b",
        &[("SLURM_JOB_ID", "78"), ("FLOW_BATCH_POLICY", "keep")],
    );
    assert!(out.status.success());
    assert!(
        p.read("checkpoints/b/config.yaml")
            .contains("  batch_size: 4\n")
    );

    let out = exec("checkpoints/c", &[]);
    assert!(out.status.success());
    assert!(
        p.read("checkpoints/c/config.yaml")
            .contains("  batch_size: 4\n")
    );

    let out = exec("checkpoints/d", &[("FLOW_BATCH_POLICY", "half")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a batch policy"),
        "{}",
        stderr(&out)
    );

    // A resumed attempt tells the trainer so ({resume} -> --resume): the log continues.
    let out = exec(
        "checkpoints/c",
        &[("FLOW_RESUME", "1"), ("FLOW_ATTEMPT", "2")],
    );
    assert!(out.status.success());
    assert_eq!(
        p.read("checkpoints/c/log.txt").lines().count(),
        3,
        "resumed, not restarted"
    );
    let info: Value = serde_json::from_str(&p.read("checkpoints/c/flow-run.json")).unwrap();
    assert_eq!(info["attempt"], 2);
    assert_eq!(info["resume"], true);
}

#[test]
fn a_malformed_log_is_reported_not_fatal() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    // A trainer that leaves a half-written last line.
    p.write(
        "scripts/trainer.sh",
        &format!(
            "{}printf '{{\"epoch\": 3, \"train_lo' >> \"$2/log.txt\"\n",
            p.read("scripts/trainer.sh")
        ),
    );
    let out = launch_nano(&p, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&p.flow(&["status", "--json"]));
    let e = &v["experiments"][0];
    assert_eq!(e["status"], "completed");
    assert_eq!(e["best"]["epochs"], 3);
    assert!(!e["metrics_problems"].as_array().unwrap().is_empty(), "{e}");
    let id = e["id"].as_str().unwrap();
    let m: Value =
        serde_json::from_str(&p.read(&format!("experiments/metrics/{id}.json"))).unwrap();
    assert!(!m["problems"].as_array().unwrap().is_empty());
}

#[test]
fn train_runs_in_the_foreground_and_registers() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    let out = p.flow(&[
        "train",
        "--config",
        "configs/experiments/nano.yaml",
        "--model-size",
        "small",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("trained 3 epochs"),
        "the trainer's output is shown: {}",
        stdout(&out)
    );
    let reg = registry(&p);
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0]["model_size"], "small");
    assert_eq!(reg[0]["status"], "completed");
    assert_eq!(
        reg[0]["hyperparameters"]["model.resolution"], 384,
        "small's default resolution"
    );
    let out = p.flow(&[
        "train",
        "--config",
        "configs/experiments/nano.yaml",
        "--model-size",
        "small",
    ]);
    assert!(
        stdout(&out).contains("already completed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(registry(&p).len(), 1);
}

#[test]
fn adding_a_run_extracts_its_metrics_only_and_re_renders_what_changed() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    let sweep = |lrs: &str| {
        format!(
            "version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n    matrix:\n      training.lr: [{lrs}]\n  metrics:\n    task: metrics\n    needs: [train]\n  compare:\n    task: compare\n    gather: [metrics]\n    output: reports/sweep\n"
        )
    };
    p.workflow(&sweep("1.0e-4, 2.0e-4"));
    assert_eq!(p.ran(&[]).len(), 5);
    for f in [
        "leaderboard.csv",
        "training_curves.png",
        "metrics_bar_comparison.png",
        "model_size_comparison.png",
        "hp_lr_scatter.png",
        "report.html",
    ] {
        assert!(p.path(&format!("reports/sweep/{f}")).is_file(), "{f}");
    }
    // A third, worse run: only it, its metrics and the comparison run.
    p.workflow(&sweep("1.0e-4, 2.0e-4, 2.0e-5"));
    let out = p.flow(&["run", "workflows/w.yaml", "-n", "--json"]);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let stale: BTreeSet<String> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "stale")
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let compare = |plan: &Value| {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "compare")
            .map(|n| n["outputs"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert_eq!(
        compare(&plan),
        "outputs to redraw: known once 1 gathered node(s) ran"
    );
    // Train and extract the new run first; then -n says exactly which outputs change.
    assert_eq!(
        p.ran(&["--target", "metrics[lr=2.0e-5]"]),
        ["metrics[lr=2.0e-5]", "train[lr=2.0e-5]"]
    );
    let out = p.flow(&["run", "workflows/w.yaml", "-n", "--json"]);
    let preview = compare(&serde_json::from_str(&stdout(&out)).unwrap());
    assert_eq!(p.ran(&[]), ["compare"]);
    assert_eq!(
        stale,
        BTreeSet::from([
            "compare".to_string(),
            "metrics[lr=2.0e-5]".to_string(),
            "train[lr=2.0e-5]".to_string()
        ]),
        "-n shows exactly what runs (before any of it ran)"
    );
    // Inside compare, the best-per-size plot did not change and was not drawn again.
    let log = stdout(&p.flow(&["logs", "compare"]));
    let rendered = log
        .lines()
        .find(|l| l.trim_start().starts_with("rendered:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        rendered.contains("leaderboard.csv") && rendered.contains("hp_lr_scatter.png"),
        "{log}"
    );
    assert!(!rendered.contains("model_size_comparison.png"), "{log}");
    let drawn: Vec<&str> = rendered
        .trim_start()
        .trim_start_matches("rendered:")
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(
        preview,
        format!("outputs to redraw: {}", drawn.join(", ")),
        "-n named exactly the outputs compare then drew"
    );
    assert_eq!(p.read("reports/sweep/leaderboard.csv").lines().count(), 4);
    // Nothing changed: -n says so when compare is forced.
    let out = p.flow(&[
        "run",
        "workflows/w.yaml",
        "-n",
        "--json",
        "--force",
        "compare",
    ]);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        compare(&plan),
        "outputs to redraw: none (its inputs are unchanged)"
    );
}

#[test]
fn a_completed_run_reached_from_another_workflow_is_not_trained_again() {
    let p = project();
    config(&p, "nano", "nano-baseline", "nano", "1.0e-4");
    let out = launch_nano(&p, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = registry(&p)[0]["id"].as_str().unwrap().to_string();
    let log = p.read(&format!("checkpoints/{id}/log.txt"));
    // The same resolved config as a node of a workflow: fresh, nothing trains.
    p.workflow("version: 1\nnodes:\n  train:\n    task: train\n    config: configs/experiments/nano.yaml\n");
    assert!(p.ran(&[]).is_empty(), "trained the completed run again");
    assert_eq!(p.read(&format!("checkpoints/{id}/log.txt")), log);
    assert_eq!(registry(&p).len(), 1);
}
