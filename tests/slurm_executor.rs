//! `flow run --executor slurm` against the real dev cluster: arrays, chunking, whole-DAG
//! submission with dependencies, detached runs reconciled later, failures, mail, quoting.

mod common;

use std::time::{Duration, Instant};

use common::TestProject;
use common::slurm::{Cluster, cluster};

/// Runs `flow run workflows/w.yaml --executor slurm --json EXTRA...`; returns the JSON
/// summary and the exit code.
fn slurm_run(p: &TestProject, extra: &[&str]) -> (serde_json::Value, i32) {
    let mut args = vec!["run", "workflows/w.yaml", "--executor", "slurm", "--json"];
    args.extend_from_slice(extra);
    let out = assert_cmd::Command::cargo_bin("flow")
        .unwrap()
        .current_dir(p.root())
        .env("FLOW_SLURM_POLL_MAX_SECS", "1")
        .args(&args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (v, out.status.code().unwrap_or(-1))
}

fn header(c: &Cluster) -> String {
    format!(
        "slurm:\n  partition: {}\n  account: {}\n  mem: 100M\n  time: \"5\"\n",
        c.partition, c.account
    )
}

fn sweep(c: &Cluster, n: usize, extra_slurm: &str) -> String {
    let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "{}{extra_slurm}nodes:\n  train:\n    matrix: {{i: [{}]}}\n    run: 'if [ {{i}} = 3 ] && [ -e fail3 ]; then exit 1; fi; echo trained {{i}} > {{outputs.0}}'\n    outputs: ['out/train/{{i}}.txt']\n  metrics:\n    needs: [train]\n    run: 'wc -c < {{needs.train}} > {{outputs.0}}'\n    outputs: ['out/metrics/{{matrix.i}}.txt']\n  all:\n    gather: [metrics]\n    run: 'cat {{gather.metrics}} > {{outputs.0}}'\n    outputs: [out/all.txt]\n",
        header(c),
        values.join(", ")
    )
}

#[test]
fn an_array_of_twenty_is_one_sbatch_call_and_chunks_follow_max_array_size() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&sweep(c, 20, "  throttle: 4\n"));
    let (v, code) = slurm_run(&p, &["--target", "train"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 1, "{v}");
    assert_eq!(v["submitted"].as_array().unwrap().len(), 20);
    let script = std::fs::read_dir(p.path(".cache/slurm"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("job.sh")).unwrap())
        .next()
        .unwrap();
    assert!(script.contains("#SBATCH --array=0-19%4"), "{script}");
    let (v, code) = slurm_run(&p, &["--wait", "--target", "train"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 0, "nothing submitted twice: {v}");

    let q = TestProject::new();
    q.workflow(&sweep(c, 20, "  max_array_size: 8\n"));
    let (v, code) = slurm_run(&q, &["--target", "train"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["sbatch_calls"], 3,
        "20 tasks in chunks of 8, 8 and 4: {v}"
    );
    let (_, code) = slurm_run(&q, &["--wait"]);
    assert_eq!(code, 0);
}

#[test]
fn a_chain_submitted_detached_is_reconciled_by_a_later_run() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&sweep(c, 5, ""));
    let (v, code) = slurm_run(&p, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["sbatch_calls"], 3,
        "train array, metrics array, gather: {v}"
    );
    assert_eq!(v["submitted"].as_array().unwrap().len(), 11);
    // A later run waits for the jobs, records them, and submits nothing.
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 0, "{v}");
    assert_eq!(v["completed"], 11, "{v}");
    assert_eq!(p.read("out/all.txt").lines().count(), 5);
    assert_eq!(
        p.ran(&[]),
        Vec::<String>::new(),
        "everything is fresh, also locally"
    );
}

#[test]
fn a_failing_array_task_cancels_only_its_dependents() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&sweep(c, 5, ""));
    p.write("fail3", "");
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["completed"], 8, "train 0,1,2,4 and their metrics: {v}");
    assert_eq!(
        v["failed"], 3,
        "train[i=3], metrics[i=3] and the gather: {v}"
    );
    for i in [0, 1, 2, 4] {
        assert!(p.path(&format!("out/metrics/{i}.txt")).exists());
    }
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("3 of 11 nodes would run"), "{plan}");
    assert!(
        plan.contains("SLURM job") && plan.contains("ended failed"),
        "{plan}"
    );
}

#[test]
fn a_second_run_during_flight_submits_nothing() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  slow:\n    run: 'while [ ! -e release ]; do sleep 0.1; done; echo done > {{outputs.0}}'\n    outputs: [slow.txt]\n",
        header(c)
    ));
    let (v, _) = slurm_run(&p, &[]);
    assert_eq!(v["sbatch_calls"], 1);
    let (v, code) = slurm_run(&p, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 0, "{v}");
    assert_eq!(v["in_flight"], serde_json::json!(["slow"]));
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("in flight on SLURM as job"), "{plan}");
    // A local run does not run it either, and that is no failure.
    let out = p.flow(&["run", "workflows/w.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let s: serde_json::Value =
        serde_json::from_str(common::stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(s["waiting"], serde_json::json!(["slow"]));
    std::fs::write(p.path("release"), "").unwrap();
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["completed"], 1);
}

#[test]
fn mail_reaches_the_stand_in() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    let user = format!("flow-test-{}@example.org", std::process::id());
    p.workflow(&format!(
        "{}nodes:\n  m:\n    run: 'echo ok > {{outputs.0}}'\n    outputs: [m.txt]\n",
        header(c)
    ));
    let (v, code) = slurm_run(&p, &["--mail-user", &user, "--mail-type", "END", "--wait"]);
    assert_eq!(code, 0, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&c.mail_log).unwrap_or_default();
        if log.contains(&user) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no mail to {user} in {}",
            c.mail_log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hostile_parameter_values_run_as_inert_text() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  h:\n    params:\n      msg: \"a'b \\\"c\\\" $(touch pwned1) `touch pwned2` ;touch pwned3\\n#SBATCH --account=bogus\\nend\"\n    run: printf '%s' {{msg}} > {{outputs.0}}\n    outputs: [msg.txt]\n",
        header(c)
    ));
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        p.read("msg.txt"),
        "a'b \"c\" $(touch pwned1) `touch pwned2` ;touch pwned3\n#SBATCH --account=bogus\nend"
    );
    for f in ["pwned1", "pwned2", "pwned3"] {
        assert!(!p.path(f).exists(), "{f} was executed");
    }
}

#[test]
fn a_rejected_submission_names_the_node_and_slurms_reason() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!("{}nodes:\n  r:\n    run: 'true'\n", header(c)));
    let out = p.flow(&[
        "run",
        "workflows/w.yaml",
        "--executor",
        "slurm",
        "--account",
        "bogus",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = common::stderr(&out);
    assert!(err.contains("SLURM refused the job for `r`"), "{err}");
    assert!(err.to_lowercase().contains("invalid account"), "{err}");
}

#[test]
fn status_reconciles_and_local_nodes_run_on_the_submitting_machine() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  train:\n    matrix: {{i: [0, 1]}}\n    run: 'echo {{i}} > {{outputs.0}}; hostname > out/host{{i}}'\n    outputs: ['out/{{i}}.txt']\n  plot:\n    executor: local\n    gather: [train]\n    run: 'cat {{gather.train}} > {{outputs.0}}; echo $SLURM_JOB_ID > out/plot-job'\n    outputs: [out/plot.txt]\n",
        header(c)
    ));
    let (v, code) = slurm_run(&p, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["submitted"].as_array().unwrap().len(),
        2,
        "the local node is not submitted: {v}"
    );
    // `flow status` reconciles with one sacct call per look until both jobs are recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = p.flow(&["status", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(s["sacct_calls"].as_u64().unwrap() <= 1, "{s}");
        if s["in_flight"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "jobs still in flight: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The next run has nothing to submit and runs the local node here, outside SLURM.
    let (v, code) = slurm_run(&p, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 0, "{v}");
    assert_eq!(p.read("out/plot.txt"), "0\n1\n");
    assert_eq!(
        p.read("out/plot-job"),
        "\n",
        "the local node ran outside any SLURM job"
    );
}

#[test]
fn cancel_of_a_chain_cancels_the_dependents_and_the_next_run_resubmits() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  slow:\n    run: 'while [ ! -e release ]; do sleep 0.1; done; echo done > {{outputs.0}}'\n    outputs: [slow.txt]\n  after:\n    needs: [slow]\n    run: 'cat {{needs.slow}} > {{outputs.0}}'\n    outputs: [after.txt]\n",
        header(c)
    ));
    let (v, _) = slurm_run(&p, &[]);
    assert_eq!(v["sbatch_calls"], 2, "{v}");
    let out = p.flow(&["cancel", "slow", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["cancelled"], serde_json::json!(["after", "slow"]));
    assert_eq!(r["scancel_calls"], 1);
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("cancelled with flow cancel"), "{plan}");
    std::fs::write(p.path("release"), "").unwrap();
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["completed"], 2, "{v}");
    let unknown = p.flow(&["cancel", "nothing-like-this"]);
    assert_eq!(unknown.status.code(), Some(2));
}

/// Rewrites the in-flight record of `id` as if flow had died right after `sbatch`: the
/// intent is in the journal, the job id is not. `age` backdates the intent.
fn forget_job_id(p: &TestProject, id: &str, job_name: Option<&str>, age: u64) {
    use flow_engine::journal::{Entry, Journal};
    use flow_engine::state::{JobPhase, State};
    let cache = p.path(".cache");
    let state = State::peek(&cache).unwrap();
    let mut rec = state.jobs[id].clone();
    rec.phase = JobPhase::Intent;
    rec.job = None;
    if let Some(name) = job_name {
        rec.job_name = name.to_string();
    }
    rec.submitted_at = rec.submitted_at.saturating_sub(age);
    Journal::new(&cache).append(&[Entry::Job(rec)]).unwrap();
}

#[test]
fn an_unconfirmed_submission_is_adopted_or_resubmitted_never_duplicated() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  a:\n    run: 'echo a >> runs.txt; echo a > {{outputs.0}}'\n    outputs: [a.txt]\n  b:\n    run: 'echo b >> runs.txt; echo b > {{outputs.0}}'\n    outputs: [b.txt]\n",
        header(c)
    ));
    let (v, _) = slurm_run(&p, &[]);
    assert_eq!(v["sbatch_calls"], 2, "{v}");
    // `a` reached SLURM but its id was lost: found by job name and adopted.
    forget_job_id(&p, "a", None, 0);
    // `b`'s intent names a job SLURM never got (flow died before sbatch): abandoned after
    // the grace period and submitted again.
    forget_job_id(&p, "b", Some("flow-never-submitted-b"), 3600);
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("(unconfirmed)"), "{plan}");
    let (v, code) = slurm_run(&p, &["--wait"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sbatch_calls"], 1, "only b is submitted again: {v}");
    assert_eq!(v["completed"], 2, "{v}");
    // b's first job also ran (it was real, only our record pointed elsewhere); a ran once.
    let runs = p.read("runs.txt");
    assert_eq!(runs.matches('a').count(), 1, "{runs}");
}

#[test]
fn retries_submit_a_failed_chain_again() {
    let Some(c) = cluster() else { return };
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  train:\n    matrix: {{i: [0, 1, 2]}}\n    run: 'if [ {{i}} = 1 ] && [ ! -e tried ]; then touch tried; exit 1; fi; echo {{i}} > {{outputs.0}}'\n    outputs: ['out/{{i}}.txt']\n  all:\n    gather: [train]\n    run: 'cat {{gather.train}} > {{outputs.0}}'\n    outputs: [out/all.txt]\n",
        header(c)
    ));
    let (v, code) = slurm_run(&p, &["--wait", "--retries", "1"]);
    assert_eq!(code, 0, "the retry succeeded: {v}");
    assert_eq!(v["retries"], 1, "{v}");
    assert_eq!(
        v["failed"], 2,
        "train[i=1] and the cancelled gather, first round: {v}"
    );
    assert_eq!(p.read("out/all.txt"), "0\n1\n2\n");
    assert_eq!(p.ran(&[]), Vec::<String>::new());
}
