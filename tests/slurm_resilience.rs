//! SLURM resilience against the real dev cluster (issue 5, DESIGN §6): jobs that requeue
//! themselves near their time limit and resume from a checkpoint, timeouts that take their
//! dependents with them and `--retries` that resubmits the chain, a spent requeue budget,
//! preemption, a node set DOWN under a running job, accounting (slurmdbd) down during a run,
//! an unreachable controller, rejected and half-finished submissions.
//!
//! Each test uses `cluster()`: without the dev cluster it prints "skipped" and passes, unless
//! `FLOW_REQUIRE_SLURM=1`. Waiting is by polling with deadlines, never by fixed sleeps. The
//! slow cases (SLURM's time limits have a one-minute minimum) run concurrently, in threads of
//! one test. Tests that disturb the whole cluster (a node DOWN, slurmdbd stopped) hold
//! [`exclusive`] so that no other test of this file runs jobs meanwhile, and restore the
//! cluster in a guard whatever happens.
//!
//! The stand-in trainer (`train.sh`) counts six steps and checkpoints each to `ckpt/step`;
//! a run that starts from scratch hangs after step 3 (so only a requeue, a preemption or a
//! retry gets it further), a run that starts from a checkpoint finishes. Every run appends
//! `attempt=$FLOW_ATTEMPT resume=$FLOW_RESUME job=$SLURM_JOB_ID from=<step>` to
//! `attempts.log`, which is what the tests assert on.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::TestProject;
use common::slurm::{Cluster, cluster, repo, slurm_env};

/// Tests that need the cluster to themselves take this for writing, the others for reading.
static CLUSTER_USE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    CLUSTER_USE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    CLUSTER_USE.write().unwrap_or_else(|e| e.into_inner())
}

const TRAIN_SH: &str = r#"#!/bin/sh
# A stand-in trainer: six steps, a checkpoint after each; resumes from the checkpoint.
set -e
out=$1
mode=${2:-}
mkdir -p ckpt "$(dirname "$out")"
n=0
if [ -e ckpt/step ]; then n=$(cat ckpt/step); fi
from=$n
echo "attempt=$FLOW_ATTEMPT resume=${FLOW_RESUME:-0} job=${SLURM_JOB_ID:-} from=$from" >> attempts.log
while [ "$n" -lt 6 ]; do
    n=$((n + 1))
    echo "$n" > ckpt/step.tmp
    mv ckpt/step.tmp ckpt/step
    if [ "$mode" = always ] || { [ "$from" = 0 ] && [ "$n" = 3 ]; }; then
        touch hanging
        while :; do sleep 1; done
    fi
done
echo "steps=$n resumed_from=$from" > "$out"
"#;

/// A train node running `train.sh` (MODE: empty, or `always` to hang on every run) and an
/// `evaluate` node that needs it.
fn chain(slurm: &str, train_resources: &str, mode: &str) -> String {
    format!(
        "{slurm}nodes:\n  train:\n    run: sh train.sh {{outputs.0}} {mode}\n    outputs: [out/model.txt]\n{train_resources}  evaluate:\n    needs: [train]\n    run: 'cp {{needs.train}} {{outputs.0}}; echo \"$FLOW_ATTEMPT\" > out/eval-attempt'\n    outputs: [out/eval.txt]\n"
    )
}

/// The workflow's `slurm:` section: the dev cluster's partition and account, small jobs,
/// `time` in minutes, and `extra` lines.
fn slurm_section(c: &Cluster, time: &str, extra: &str) -> String {
    format!(
        "slurm:\n  partition: {}\n  account: {}\n  mem: 100M\n  time: \"{time}\"\n{extra}",
        c.partition, c.account
    )
}

fn project(workflow: &str) -> TestProject {
    let p = TestProject::new();
    p.write("train.sh", TRAIN_SH);
    p.workflow(workflow);
    p
}

fn flow(p: &TestProject, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flow"));
    c.current_dir(p.root())
        .env("NO_COLOR", "1")
        .env("FLOW_SLURM_POLL_MAX_SECS", "1")
        .env_remove("FLOW_PROJECT")
        .env_remove("FLOW_TEST_KILL_AFTER_SBATCH")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .args(args)
        .stdin(Stdio::null());
    c
}

/// A `flow` process running in the background, its output going to files.
struct Running {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

/// How a `flow` process ended.
#[derive(Debug)]
struct Finished {
    code: i32,
    /// The `--json` summary (the last line of stdout).
    json: serde_json::Value,
    /// Shown, with the rest, in assertion messages (`{r:?}`).
    #[allow(dead_code)]
    stdout: String,
    stderr: String,
}

impl Finished {
    /// The job ids of the submitted instance `id`, in submission order.
    fn jobs_of(&self, id: &str) -> Vec<String> {
        self.json["submitted"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["id"] == id)
            .map(|s| s["job"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn spawn(mut cmd: Command) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    let err = dir.path().join("stderr");
    let child = cmd
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .expect("start flow");
    Running {
        child,
        out,
        err,
        _dir: dir,
    }
}

impl Running {
    /// Waits (polling, bounded) for the process to exit.
    fn finish(mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "flow still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    std::fs::read_to_string(&self.out).unwrap_or_default(),
                    std::fs::read_to_string(&self.err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let stdout = std::fs::read_to_string(&self.out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.err).unwrap_or_default();
        let json = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(serde_json::Value::Null);
        Finished {
            code: status.code().unwrap_or(-1),
            json,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed half-way leaves no flow process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Cancels the project's jobs still in flight when a test fails half-way (a hanging stand-in
/// trainer would hold its resources until its time limit and disturb the tests after it).
struct CancelLeftovers<'a> {
    p: &'a TestProject,
    nodes: &'a [&'a str],
}

impl Drop for CancelLeftovers<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut args = vec!["cancel"];
            args.extend_from_slice(self.nodes);
            let _ = flow(self.p, &args).output();
        }
    }
}

/// `flow run workflows/w.yaml --executor slurm --json` plus `extra`, started.
fn start(p: &TestProject, extra: &[&str]) -> Running {
    let mut args = vec!["run", "workflows/w.yaml", "--executor", "slurm", "--json"];
    args.extend_from_slice(extra);
    spawn(flow(p, &args))
}

fn run(p: &TestProject, extra: &[&str], limit: Duration) -> Finished {
    start(p, extra).finish(limit)
}

/// Submits a short one-GPU job to the urgent partition, which preempts a job holding the GPU
/// it needs; returns its job id.
fn submit_urgent(c: &Cluster, p: &TestProject) -> String {
    let urgent = tool(
        "sbatch",
        &[
            "--parsable",
            &format!("--partition={}", c.urgent_partition),
            &format!("--account={}", c.account),
            "--gres=gpu:a100:1",
            "--mem=100M",
            "--time=1",
            &format!("--output={}", p.path("urgent-%j.log").display()),
            "--wrap=sleep 2",
        ],
    );
    assert!(urgent.status.success(), "{urgent:?}");
    String::from_utf8_lossy(&urgent.stdout).trim().to_string()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(delay);
        delay = (delay * 3 / 2).min(Duration::from_secs(1));
    }
}

fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Every state accounting recorded for `job`, each run of a requeued job included (`-D`).
fn sacct_history(job: &str) -> Vec<String> {
    let out = tool(
        "sacct",
        &["-D", "-X", "-P", "-n", "--format=State", "-j", job],
    );
    assert!(out.status.success(), "sacct: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

fn attempts(p: &TestProject) -> Vec<String> {
    p.read("attempts.log").lines().map(String::from).collect()
}

/// SLURM's own output file of job `job` (where the batch script logs its requeues).
fn slurm_log(p: &TestProject, job: &str) -> String {
    for e in std::fs::read_dir(p.path(".cache/slurm")).unwrap() {
        let f = e.unwrap().path().join(format!("{job}.log"));
        if f.exists() {
            return std::fs::read_to_string(f).unwrap();
        }
    }
    panic!("no SLURM output file for job {job}");
}

// ------------------------------------------------------------------ time limits ------------

/// A job nearing its time limit requeues itself (same job id), resumes from its checkpoint
/// as attempt 2 with FLOW_RESUME=1, and its afterok dependent then runs. The switch is the
/// node's own (`resources: {requeue: true}`), in a workflow without `requeue:`.
fn requeue_and_resume(c: &Cluster) {
    let p = project(&chain(
        &slurm_section(c, "1", "  requeue_signal_secs: 50\n  max_requeues: 2\n"),
        "    resources: {requeue: true}\n",
        "",
    ));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let r = run(&p, &["--wait"], Duration::from_secs(240));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&2.into(), &0.into()),
        "{r:?}"
    );
    let job = r.jobs_of("train");
    assert_eq!(job.len(), 1, "submitted once: {r:?}");
    let job = &job[0];
    assert_eq!(
        attempts(&p),
        [
            format!("attempt=1 resume=0 job={job} from=0"),
            format!("attempt=2 resume=1 job={job} from=3"),
        ],
        "the requeued run kept the job id and resumed from the checkpoint"
    );
    assert_eq!(p.read("out/model.txt"), "steps=6 resumed_from=3\n");
    assert_eq!(p.read("out/eval.txt"), "steps=6 resumed_from=3\n");
    assert_eq!(p.read("out/eval-attempt"), "1\n");
    assert!(
        slurm_log(&p, job).contains(&format!("requeueing job {job} (attempt 1)")),
        "{}",
        slurm_log(&p, job)
    );
    let history = sacct_history(job);
    assert!(history.contains(&"REQUEUED".to_string()), "{history:?}");
    assert_eq!(history.last().map(String::as_str), Some("COMPLETED"));
    // Only the node that asked for it requeues itself.
    let scripts: Vec<String> = std::fs::read_dir(p.path(".cache/slurm"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("job.sh")).unwrap_or_default())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    let with_signal = scripts
        .iter()
        .filter(|t| {
            t.contains("#SBATCH --signal=B:USR1@50\n") && t.contains("trap flow_on_usr1 USR1")
        })
        .count();
    assert_eq!(with_signal, 1, "train only: {scripts:?}");
    assert!(scripts.iter().all(|t| t.contains("#SBATCH --requeue\n")));
}

/// A job that does not requeue itself runs into its time limit: `timeout`, its dependent is
/// cancelled by SLURM, and `--retries 1` submits the chain again, which resumes from the
/// checkpoint the first job left.
fn timeout_cancels_dependents_and_retries_resubmit_the_chain(c: &Cluster) {
    let p = project(&chain(&slurm_section(c, "1", ""), "", ""));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let r = run(&p, &["--wait", "--retries", "1"], Duration::from_secs(300));
    assert_eq!(r.code, 0, "the retry succeeded: {r:?}");
    assert_eq!(r.json["retries"], 1, "{r:?}");
    assert_eq!(
        r.json["failed"], 2,
        "train timed out, evaluate cancelled: {r:?}"
    );
    assert_eq!(r.json["completed"], 2, "{r:?}");
    let (train, evaluate) = (r.jobs_of("train"), r.jobs_of("evaluate"));
    assert_eq!((train.len(), evaluate.len()), (2, 2), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "FAILED  train: SLURM job {} ended timeout (it does not requeue itself",
            train[0]
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "FAILED  evaluate: SLURM job {} ended cancelled",
            evaluate[0]
        )),
        "{}",
        r.stderr
    );
    assert_eq!(sacct_history(&train[0]), ["TIMEOUT"]);
    assert_eq!(sacct_history(&evaluate[0]), ["CANCELLED"]);
    let a = attempts(&p);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].ends_with(&format!("job={} from=0", train[0])), "{a:?}");
    assert!(a[1].ends_with(&format!("job={} from=3", train[1])), "{a:?}");
    assert!(
        a[1].starts_with("attempt=2 resume=1 "),
        "the resubmission is the next attempt: {a:?}"
    );
    assert_eq!(p.read("out/eval.txt"), "steps=6 resumed_from=3\n");
}

/// A job that needs more requeues than its budget requeues once, then ends `timeout` with
/// a message that says the budget is spent; its dependent is cancelled.
fn a_spent_requeue_budget_ends_in_timeout(c: &Cluster) {
    let p = project(&chain(
        &slurm_section(
            c,
            "1",
            "  requeue: true\n  requeue_signal_secs: 50\n  max_requeues: 1\n",
        ),
        "",
        "always",
    ));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let r = run(&p, &["--wait"], Duration::from_secs(300));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&0.into(), &2.into())
    );
    let job = &r.jobs_of("train")[0];
    let why = format!(
        "SLURM job {job} ended timeout on attempt 2: its requeue budget is spent (1 of slurm.max_requeues: 1)"
    );
    assert!(
        r.stderr.contains(&format!("FAILED  train: {why}")),
        "{}",
        r.stderr
    );
    assert_eq!(
        attempts(&p),
        [
            format!("attempt=1 resume=0 job={job} from=0"),
            format!("attempt=2 resume=1 job={job} from=1"),
        ]
    );
    assert_eq!(
        sacct_history(job).last().map(String::as_str),
        Some("TIMEOUT")
    );
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains(&why), "the record keeps the reason: {plan}");
}

#[test]
fn time_limits_requeue_resume_timeout_retries_and_the_requeue_budget() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    // Each case waits on SLURM's minute-long time limits: run them side by side.
    std::thread::scope(|s| {
        let cases = [
            s.spawn(|| requeue_and_resume(c)),
            s.spawn(|| timeout_cancels_dependents_and_retries_resubmit_the_chain(c)),
            s.spawn(|| a_spent_requeue_budget_ends_in_timeout(c)),
        ];
        let failed: Vec<_> = cases.into_iter().filter_map(|h| h.join().err()).collect();
        if let Some(panic) = failed.into_iter().next() {
            std::panic::resume_unwind(panic);
        }
    });
}

// ------------------------------------------------------------------ preemption -------------

#[test]
fn a_preempted_job_is_requeued_resumes_and_the_run_completes() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    // train holds all four GPUs, so the urgent job's one GPU can only come from it.
    let p = project(&chain(
        &slurm_section(c, "5", ""),
        "    resources: {gpus: 4, gpu_type: a100}\n",
        "",
    ));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let flow_run = start(&p, &["--wait"]);
    wait_until(
        "train to reach its third step",
        Duration::from_secs(120),
        || p.path("hanging").exists(),
    );
    let urgent = submit_urgent(c, &p);
    let r = flow_run.finish(Duration::from_secs(180));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&2.into(), &0.into())
    );
    let job = &r.jobs_of("train")[0];
    assert!(
        sacct_history(job).contains(&"PREEMPTED".to_string()),
        "{:?}",
        sacct_history(job)
    );
    assert_eq!(sacct_history(&urgent), ["COMPLETED"]);
    assert_eq!(
        attempts(&p),
        [
            format!("attempt=1 resume=0 job={job} from=0"),
            format!("attempt=2 resume=1 job={job} from=3"),
        ]
    );
    assert_eq!(p.read("out/eval.txt"), "steps=6 resumed_from=3\n");
}

/// SLURM's own requeues count against the budget: with `max_requeues: 1`, a job preempted
/// twice ends `preempted` at the start of its third run (without running the command), with
/// a message that says so; its dependent is cancelled, and the next `flow run` submits the
/// chain again, which resumes from the checkpoint and completes.
#[test]
fn preemptions_past_the_requeue_budget_end_in_preempted_and_a_rerun_completes() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    // `mode` is read when the job runs: `always` hangs on every run (until preempted).
    let p = project(&chain(
        &slurm_section(c, "5", "  max_requeues: 1\n"),
        "    resources: {gpus: 4, gpu_type: a100}\n",
        "\"$(cat mode)\"",
    ));
    p.write("mode", "always");
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let flow_run = start(&p, &["--wait"]);
    let preempt = |n: usize| {
        wait_until(
            &format!("train's run {n} to hang"),
            Duration::from_secs(120),
            || {
                p.path("attempts.log").exists()
                    && attempts(&p).len() == n
                    && p.path("hanging").exists()
            },
        );
        std::fs::remove_file(p.path("hanging")).unwrap();
        submit_urgent(c, &p);
    };
    preempt(1);
    preempt(2);
    let r = flow_run.finish(Duration::from_secs(240));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&0.into(), &2.into()),
        "{r:?}"
    );
    let job = &r.jobs_of("train")[0];
    let why = format!(
        "SLURM job {job} ended preempted on attempt 3: requeued 2 times by SLURM (preemption); the requeue budget (1) is spent"
    );
    assert!(
        r.stderr.contains(&format!("FAILED  train: {why}")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("FAILED  evaluate: SLURM job"),
        "{}",
        r.stderr
    );
    assert_eq!(
        attempts(&p).len(),
        2,
        "the third run did not run the command"
    );
    assert!(
        slurm_log(&p, job).contains("the requeue budget (1) is spent"),
        "{}",
        slurm_log(&p, job)
    );
    let history = sacct_history(job);
    assert_eq!(
        history.iter().filter(|s| *s == "PREEMPTED").count(),
        2,
        "{history:?}"
    );
    let evaluate = &r.jobs_of("evaluate")[0];
    assert_eq!(sacct_history(evaluate), ["CANCELLED"]);
    // The next run submits the chain again; it resumes from the checkpoint.
    p.write("mode", "");
    let r = run(&p, &["--wait"], Duration::from_secs(180));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&2.into(), &0.into()),
        "{r:?}"
    );
    assert_ne!(&r.jobs_of("train")[0], job, "a new job");
    assert!(p.read("out/eval.txt").starts_with("steps=6 resumed_from="));
}

/// A job that SLURM requeued and that is then held (here by an administrator's `scontrol
/// hold`; SLURM itself holds a job it gave up requeueing) would wait forever: flow cancels
/// it, records why with SLURM's reason, and its dependent is cancelled.
#[test]
fn a_requeued_job_that_is_held_is_cancelled_with_slurms_reason() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  a:\n    run: 'touch started; while [ ! -e go ]; do sleep 0.2; done; echo a > {{outputs.0}}'\n    outputs: [a.txt]\n  b:\n    needs: [a]\n    run: 'cat {{needs.a}} > {{outputs.0}}'\n    outputs: [b.txt]\n",
        slurm_section(c, "5", "")
    ));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["a", "b"],
    };
    let r = run(&p, &[], Duration::from_secs(60));
    assert_eq!(r.code, 0, "{r:?}");
    let a = r.jobs_of("a")[0].clone();
    wait_until("a to start", Duration::from_secs(60), || {
        p.path("started").exists()
    });
    let squeue_state = || {
        let out = tool("squeue", &["-h", "-j", &a, "-o", "%T|%r"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let requeue = tool("scontrol", &["requeue", &a]);
    assert!(requeue.status.success(), "{requeue:?}");
    wait_until("a to be pending again", Duration::from_secs(30), || {
        squeue_state().starts_with("PENDING")
    });
    let hold = tool("scontrol", &["hold", &a]);
    assert!(hold.status.success(), "{hold:?}");
    assert_eq!(squeue_state(), "PENDING|JobHeldAdmin");
    // `flow status` reconciles: a is cancelled and recorded with SLURM's reason, and SLURM
    // cancels b.
    let status = || {
        let out = flow(&p, &["status", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    wait_until("a and b to be recorded", Duration::from_secs(60), || {
        status()["in_flight"]
            .as_array()
            .is_some_and(|v| v.is_empty())
    });
    wait_until(
        "SLURM to record the cancel",
        Duration::from_secs(30),
        || sacct_history(&a).last().is_some_and(|s| s == "CANCELLED"),
    );
    let b = r.jobs_of("b")[0].clone();
    assert_eq!(sacct_history(&b), ["CANCELLED"]);
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(
        plan.contains(&format!(
            "SLURM job {a} was held (JobHeldAdmin): flow cancelled it"
        )),
        "the record keeps SLURM's reason: {plan}"
    );
    // The next run submits the chain again.
    std::fs::write(p.path("go"), "").unwrap();
    let r = run(&p, &["--wait"], Duration::from_secs(120));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["sbatch_calls"]),
        (&2.into(), &2.into()),
        "{r:?}"
    );
    assert_eq!(p.read("b.txt"), "a\n");
}

// ------------------------------------------------------------------ node failure -----------

/// Brings the node back to service when dropped, whatever state the test left it in.
struct NodeBack<'a>(&'a Cluster);

fn node_state(node: &str) -> String {
    let out = tool("sinfo", &["-h", "-N", "-n", node, "-o", "%T"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

impl Drop for NodeBack<'_> {
    fn drop(&mut self) {
        let node = &self.0.node;
        let usable = |s: &str| {
            ["idle", "mixed", "allocated", "completing"]
                .iter()
                .any(|u| s.trim_end_matches('*') == *u)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = node_state(node);
            if usable(&st) {
                return;
            }
            if st.starts_with("down") || st.starts_with("drain") || st.starts_with("fail") {
                // (ReturnToService=2 often brings it back on its own: an error is fine.)
                let _ = tool(
                    "scontrol",
                    &["update", &format!("NodeName={node}"), "State=RESUME"],
                );
            }
            if Instant::now() > deadline {
                eprintln!("warning: node {node} is still '{st}'; run scripts/slurm/start");
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_job_whose_node_goes_down_is_requeued_and_resumes() {
    let Some(c) = cluster() else { return };
    let _use = exclusive();
    let p = project(&chain(&slurm_section(c, "5", ""), "", ""));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["train", "evaluate"],
    };
    let flow_run = start(&p, &["--wait"]);
    wait_until(
        "train to reach its third step",
        Duration::from_secs(120),
        || p.path("hanging").exists(),
    );
    let job = p.read("attempts.log");
    let job = job
        .split("job=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    // Setting the node DOWN kills every job on it: only do it while ours is the only one.
    let alone = || {
        let out = tool("squeue", &["-h", "-t", "RUNNING,COMPLETING", "-o", "%A"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .all(|j| j == job)
    };
    let start = Instant::now();
    while !alone() {
        if start.elapsed() > Duration::from_secs(90) {
            let msg = "other jobs keep running on the dev cluster's only node; setting it DOWN would kill them";
            if std::env::var("FLOW_REQUIRE_SLURM").as_deref() == Ok("1") {
                panic!("{msg}");
            }
            eprintln!("skipped: {msg}");
            drop(flow_run);
            let _ = flow(&p, &["cancel", "train", "evaluate"]).output();
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    {
        let _back = NodeBack(c);
        let down = tool(
            "scontrol",
            &[
                "update",
                &format!("NodeName={}", c.node),
                "State=DOWN",
                "Reason=flow-resilience-test",
            ],
        );
        assert!(down.status.success(), "{down:?}");
        wait_until(
            "SLURM to record the node failure",
            Duration::from_secs(60),
            || sacct_history(&job).contains(&"NODE_FAIL".to_string()),
        );
    }
    let r = flow_run.finish(Duration::from_secs(180));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        (&r.json["completed"], &r.json["failed"]),
        (&2.into(), &0.into())
    );
    assert_eq!(r.jobs_of("train"), vec![job.clone()], "not submitted again");
    assert_eq!(
        attempts(&p),
        [
            format!("attempt=1 resume=0 job={job} from=0"),
            format!("attempt=2 resume=1 job={job} from=3"),
        ]
    );
    assert_eq!(p.read("out/eval.txt"), "steps=6 resumed_from=3\n");
}

// ------------------------------------------------------------------ outages ----------------

/// A gated two-node chain: `a` waits for the file `go`.
fn gated(c: &Cluster) -> String {
    format!(
        "{}nodes:\n  a:\n    run: 'while [ ! -e go ]; do sleep 0.2; done; echo a > {{outputs.0}}'\n    outputs: [a.txt]\n  b:\n    needs: [a]\n    run: 'cat {{needs.a}} > {{outputs.0}}; echo b >> {{outputs.0}}'\n    outputs: [b.txt]\n",
        slurm_section(c, "5", "")
    )
}

/// Starts slurmdbd again (scripts/slurm/start is idempotent) when dropped.
struct DbdBack;

impl Drop for DbdBack {
    fn drop(&mut self) {
        let out = tool(repo().join("scripts/slurm/start").to_str().unwrap(), &[]);
        if !out.status.success() {
            eprintln!("warning: scripts/slurm/start failed: {out:?}");
        }
    }
}

#[test]
fn with_slurmdbd_down_runs_finish_through_squeue_and_markers_and_nothing_is_lost() {
    let Some(c) = cluster() else { return };
    let _use = exclusive();
    let p = TestProject::new();
    p.workflow(&gated(c));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["a", "b"],
    };
    let r = run(&p, &[], Duration::from_secs(60));
    assert_eq!((r.code, &r.json["sbatch_calls"]), (0, &2.into()), "{r:?}");
    let jobs = [r.jobs_of("a")[0].clone(), r.jobs_of("b")[0].clone()];
    {
        let _back = DbdBack;
        let stop = tool(
            repo().join("scripts/slurm/stop").to_str().unwrap(),
            &["slurmdbd"],
        );
        assert!(stop.status.success(), "{stop:?}");
        assert!(
            !tool("sacct", &["-X", "-n", "-j", &jobs[0]])
                .status
                .success()
        );
        // Status during the outage: squeue answers, nothing is recorded as failed.
        let out = flow(&p, &["status", "--json"]).output().unwrap();
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            s["slurm"]
                .as_str()
                .unwrap()
                .starts_with("accounting unavailable"),
            "{s}"
        );
        assert_eq!(s["in_flight"].as_array().unwrap().len(), 2, "{s}");
        std::fs::write(p.path("go"), "").unwrap();
        let r = run(&p, &["--wait"], Duration::from_secs(120));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(
            (&r.json["completed"], &r.json["sbatch_calls"]),
            (&2.into(), &0.into())
        );
        assert!(
            r.stderr.contains("SLURM accounting unavailable"),
            "{}",
            r.stderr
        );
        assert_eq!(p.read("b.txt"), "a\nb\n");
    }
    // Accounting back: it learns what happened while it was down.
    wait_until("accounting to catch up", Duration::from_secs(60), || {
        jobs.iter().all(|j| sacct_history(j) == ["COMPLETED"])
    });
    let r = run(&p, &[], Duration::from_secs(60));
    assert_eq!((r.code, &r.json["sbatch_calls"]), (0, &0.into()), "{r:?}");
}

#[test]
fn status_shows_the_last_known_state_while_slurm_is_unreachable_and_recovers() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    let p = TestProject::new();
    p.workflow(&gated(c));
    let _cleanup = CancelLeftovers {
        p: &p,
        nodes: &["a", "b"],
    };
    let r = run(&p, &[], Duration::from_secs(60));
    assert_eq!(r.code, 0, "{r:?}");
    let a = r.jobs_of("a")[0].clone();
    // A copy of the cluster's config whose controller and accounting ports nothing listens
    // on (and short timeouts): flow sees SLURM down while the real cluster keeps running.
    let dead = tempfile::tempdir().unwrap();
    let conf = PathBuf::from(slurm_env("SLURM_CONF"));
    let text: String = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("SlurmctldPort=") {
                "SlurmctldPort=6997".to_string()
            } else if l.starts_with("AccountingStoragePort=") {
                "AccountingStoragePort=6996".to_string()
            } else {
                l.to_string()
            }
        })
        .chain(["MessageTimeout=1".to_string(), "TCPTimeout=1".to_string()])
        .map(|l| l + "\n")
        .collect();
    std::fs::write(dead.path().join("slurm.conf"), text).unwrap();
    std::fs::copy(
        conf.with_file_name("gres.conf"),
        dead.path().join("gres.conf"),
    )
    .unwrap();
    let unreachable = |args: &[&str]| {
        flow(&p, args)
            .env("SLURM_CONF", dead.path().join("slurm.conf"))
            .output()
            .unwrap()
    };
    let out = unreachable(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = common::stderr(&out);
    assert!(
        err.contains("warning: SLURM unreachable") && err.contains("showing the last known state"),
        "{err}"
    );
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!("submitted     a (job {a}, last known)")),
        "{text}"
    );
    let out = unreachable(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        s["slurm"].as_str().unwrap().starts_with("unreachable"),
        "{s}"
    );
    let rows = s["in_flight"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{s}");
    assert!(rows.iter().all(|r| r["last_known"] == true), "{s}");
    // SLURM reachable again: the next look reconciles, with no intervention.
    let out = flow(&p, &["status", "--json"]).output().unwrap();
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["slurm"], "ok", "{s}");
    assert!(
        s["in_flight"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("last_known").is_none()),
        "{s}"
    );
    std::fs::write(p.path("go"), "").unwrap();
    wait_until(
        "both jobs recorded by flow status",
        Duration::from_secs(120),
        || {
            let out = flow(&p, &["status", "--json"]).output().unwrap();
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            s["in_flight"].as_array().is_some_and(|v| v.is_empty())
        },
    );
    assert_eq!(p.read("b.txt"), "a\nb\n");
}

// ------------------------------------------------------------------ submissions ------------

#[test]
fn an_unknown_partition_or_account_is_refused_with_slurms_message() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  r:\n    run: 'true'\n",
        slurm_section(c, "5", "")
    ));
    for (flag, value, slurm_says) in [
        (
            "--partition",
            "nosuchpartition",
            "invalid partition name specified",
        ),
        ("--account", "nosuchaccount", "invalid account"),
    ] {
        let out = flow(
            &p,
            &[
                "run",
                "workflows/w.yaml",
                "--executor",
                "slurm",
                flag,
                value,
            ],
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let err = common::stderr(&out);
        assert!(err.contains("SLURM refused the job for `r`"), "{err}");
        assert!(err.to_lowercase().contains(slurm_says), "{err}");
    }
    // Nothing is left in flight: a valid run submits it.
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(!plan.contains("in flight"), "{plan}");
}

#[test]
fn a_submission_killed_after_its_first_array_chunk_is_finished_by_the_next_run() {
    let Some(c) = cluster() else { return };
    let _use = shared();
    let p = TestProject::new();
    p.workflow(&format!(
        "{}nodes:\n  train:\n    matrix: {{i: [0, 1, 2, 3, 4]}}\n    run: 'mkdir -p runs; echo ran >> runs/{{i}}.log; echo {{i}} > {{outputs.0}}'\n    outputs: ['out/{{i}}.txt']\n",
        slurm_section(c, "5", "  max_array_size: 2\n")
    ));
    // Test hook: flow dies (exit 137, like SIGKILL) right after its first sbatch call.
    let first = spawn({
        let mut cmd = flow(
            &p,
            &["run", "workflows/w.yaml", "--executor", "slurm", "--json"],
        );
        cmd.env("FLOW_TEST_KILL_AFTER_SBATCH", "1");
        cmd
    })
    .finish(Duration::from_secs(60));
    assert_eq!(first.code, 137, "{first:?}");
    assert!(first.stderr.contains("dying as if killed"), "{first:?}");
    let plan = common::stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert_eq!(
        plan.matches("in flight on SLURM as job").count(),
        2,
        "{plan}"
    );
    assert_eq!(plan.matches("new: never ran").count(), 3, "{plan}");
    let r = run(&p, &["--wait"], Duration::from_secs(120));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json["sbatch_calls"], 2,
        "the rest, in chunks of 2 and 1: {r:?}"
    );
    assert_eq!(r.json["completed"], 5, "{r:?}");
    for i in 0..5 {
        assert_eq!(
            p.read(&format!("runs/{i}.log")),
            "ran\n",
            "train[i={i}] ran once"
        );
        assert_eq!(p.read(&format!("out/{i}.txt")), format!("{i}\n"));
    }
    let again = run(&p, &[], Duration::from_secs(60));
    assert_eq!(
        (again.code, &again.json["sbatch_calls"]),
        (0, &0.into()),
        "{again:?}"
    );
}
