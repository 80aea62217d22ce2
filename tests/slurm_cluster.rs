//! The SLURM building blocks against the real single-node dev cluster (scripts/slurm/).
//!
//! Each test first asks `scripts/slurm/status -q` whether the cluster is up. If it is not,
//! the test passes with a "skipped" line, unless `FLOW_REQUIRE_SLURM=1` (CI sets it, and
//! scripts/test then starts the cluster), in which case it fails loudly: a CI run must
//! never pass by skipping. Waiting is by condition (sacct polled until every job is done),
//! bounded by a generous deadline, never by fixed sleeps.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use flow_engine::slurm::cli::{self, CmdOutput, Observation, Program, Source};
use flow_engine::slurm::sacct::{JobStatus, SlurmState};
use flow_engine::slurm::script::{
    ArrayOptions, BatchScript, Dependency, DependencyKind, JobRef, Requeue, ScriptError, ScriptTask,
};
use flow_engine::slurm::{ExitMarker, ResourceError, Resources, SlurmCli, SystemSlurm};
use flow_engine::template::quote;

use common::slurm::{Cluster, cluster};

const DEADLINE: Duration = Duration::from_secs(180);

/// A project directory for one test, with helpers to build and submit scripts in it.
struct Project {
    dir: tempfile::TempDir,
    cluster: &'static Cluster,
}

impl Project {
    fn new(cluster: &'static Cluster) -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("flow-slurm-test-")
                .tempdir()
                .unwrap(),
            cluster,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn resources(&self) -> Resources {
        Resources {
            partition: Some(self.cluster.partition.clone()),
            account: Some(self.cluster.account.clone()),
            cpus_per_task: Some(1),
            mem: Some("256M".into()),
            time: Some("5".into()),
            ..Resources::default()
        }
    }

    fn task(&self, node: &str, command: &str) -> ScriptTask {
        let slug = node.replace(['[', ']', '/'], "_");
        ScriptTask {
            node: node.to_string(),
            key: format!("key-of-{slug}"),
            command: command.to_string(),
            marker: self
                .root()
                .join(format!(".cache/slurm/markers/{slug}.json")),
            log: Some(self.root().join(format!(".cache/logs/{slug}.log"))),
            attempt: 1,
        }
    }

    fn script(&self, name: &str, tasks: Vec<ScriptTask>, array: bool) -> BatchScript {
        BatchScript {
            job_name: format!("flow-test-{name}"),
            project_root: self.root().to_path_buf(),
            output_dir: self.root().join(format!(".cache/slurm/{name}")),
            resources: self.resources(),
            tasks,
            array: array.then_some(ArrayOptions::default()),
            dependencies: vec![],
            requeue: None,
            preamble: Some("export FLOW_TEST_PREAMBLE=1".into()),
        }
    }

    /// Writes the script under `.cache/slurm/` (as the executor will) and submits it.
    fn submit(&self, s: &BatchScript) -> Result<u64, cli::SlurmError> {
        self.submit_with(&SystemSlurm::default(), s)
    }

    fn submit_with(&self, slurm: &dyn SlurmCli, s: &BatchScript) -> Result<u64, cli::SlurmError> {
        let path = s.output_dir.join("job.sh");
        s.write(&path).expect("write the script");
        cli::submit(slurm, &path)
    }
}

/// Polls (one sacct call per poll) until every job is in a terminal state.
fn wait_done(slurm: &dyn SlurmCli, refs: &[JobRef]) -> Observation {
    let mut jobs: Vec<u64> = refs.iter().map(|r| r.job).collect();
    jobs.sort_unstable();
    jobs.dedup();
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let obs = cli::observe(slurm, &jobs).expect("poll");
        let statuses: Vec<JobStatus> = refs.iter().map(|r| status(&obs, *r)).collect();
        if statuses.iter().all(|s| s.is_terminal()) {
            return obs;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "jobs not done after {DEADLINE:?}: {refs:?} -> {statuses:?}"
        );
        std::thread::sleep(delay);
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

fn status(obs: &Observation, r: JobRef) -> JobStatus {
    JobStatus::resolve(obs.get(r).map(|o| &o.state), None, false)
}

fn single(job: u64) -> JobRef {
    JobRef { job, task: None }
}

fn task_of(job: u64, task: u32) -> JobRef {
    JobRef {
        job,
        task: Some(task),
    }
}

fn marker(t: &ScriptTask) -> Option<ExitMarker> {
    ExitMarker::read(&t.marker).unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn single_node_job_completes_and_writes_its_marker() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let t = p.task(
        "train[lr=1.0e-4]",
        "mkdir -p runs && printf '%s %s %s\\n' \"$FLOW_NODE\" \"$FLOW_ATTEMPT\" \
         \"$FLOW_TEST_PREAMBLE\" > runs/out.txt && echo logged",
    );
    let s = p.script("single", vec![t.clone()], false);
    let id = p.submit(&s).unwrap();
    let obs = wait_done(&SystemSlurm::default(), &[single(id)]);
    assert_eq!(obs.source, Source::Sacct);
    let o = obs.get(single(id)).unwrap();
    assert_eq!(o.state, SlurmState::Completed);
    let rec = o.sacct.as_ref().unwrap();
    assert_eq!(rec.exit.map(|e| e.code), Some(0));
    assert!(rec.elapsed.is_some());
    assert_eq!(p.read("runs/out.txt"), "train[lr=1.0e-4] 1 1\n");
    assert_eq!(
        std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap(),
        "logged\n"
    );
    let m = marker(&t).expect("exit marker");
    assert_eq!((m.exit_code, m.attempt), (0, 1));
    assert_eq!(m.job_id, id.to_string());
    assert_eq!(
        JobStatus::resolve(Some(&o.state), Some(&m), true),
        JobStatus::Completed
    );
    // SLURM's own output file is where the script said.
    assert!(s.output_dir.join(format!("{id}.log")).exists());
}

#[test]
fn throttled_array_of_five_and_an_afterok_dependent() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let tasks: Vec<ScriptTask> = (0..5)
        .map(|i| {
            p.task(
                &format!("train[seed={i}]"),
                &format!(
                    "mkdir -p out && s=$(date +%s.%N) && sleep 2 && \
                     echo \"$s $(date +%s.%N) $FLOW_NODE\" > out/{i}.txt"
                ),
            )
        })
        .collect();
    let mut array = p.script("array", tasks.clone(), true);
    array.array = Some(ArrayOptions { throttle: Some(2) });
    let slurm = Counting::default();
    let array_id = p.submit_with(&slurm, &array).unwrap();

    let gather = p.task(
        "board",
        "cat out/0.txt out/1.txt out/2.txt out/3.txt out/4.txt > board.txt",
    );
    let mut dep = p.script("board", vec![gather.clone()], false);
    dep.dependencies = vec![Dependency {
        kind: DependencyKind::AfterOk,
        jobs: vec![single(array_id)],
    }];
    let dep_id = p.submit_with(&slurm, &dep).unwrap();
    assert_eq!(
        slurm.count(Program::Sbatch),
        2,
        "one sbatch for the array, one for the dependent"
    );

    let mut refs: Vec<JobRef> = (0..5).map(|i| task_of(array_id, i)).collect();
    refs.push(single(dep_id));
    let obs = wait_done(&slurm, &refs);
    for r in &refs {
        assert_eq!(status(&obs, *r), JobStatus::Completed, "{r}");
    }
    // Each poll was one sacct call, whatever the number of jobs; no squeue needed.
    assert!(slurm.count(Program::Sacct) >= 1);
    assert_eq!(slurm.count(Program::Squeue), 0);
    // One array job: sacct lists five tasks of the one id.
    let tasks_seen = obs.jobs.iter().filter(|o| o.id.job == array_id).count();
    assert_eq!(tasks_seen, 5);
    // Markers carry the array task ids.
    for (i, t) in tasks.iter().enumerate() {
        let m = marker(t).unwrap_or_else(|| panic!("marker of task {i}"));
        assert_eq!(m.exit_code, 0);
        assert_eq!(m.job_id, format!("{array_id}_{i}"));
    }
    assert_eq!(marker(&gather).unwrap().exit_code, 0);
    // The dependent saw all five outputs.
    let board = p.read("board.txt");
    assert_eq!(board.lines().count(), 5, "{board}");
    // The throttle: never more than two tasks at once (task-side timestamps).
    let spans: Vec<(f64, f64)> = board
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    for (s, _) in &spans {
        let at_once = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        assert!(at_once <= 2, "{at_once} tasks ran at once: {spans:?}");
    }
}

#[test]
fn failing_task_fails_and_only_its_dependents_are_cancelled() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let train: Vec<ScriptTask> = (0..3)
        .map(|i| {
            p.task(
                &format!("train[i={i}]"),
                &format!("if [ {i} = 1 ]; then echo boom >&2; exit 3; fi; echo ok"),
            )
        })
        .collect();
    let train_id = p.submit(&p.script("train", train.clone(), true)).unwrap();
    // One-to-one dependents (aftercorr) and a gathering one (afterok on the whole array).
    let metrics: Vec<ScriptTask> = (0..3)
        .map(|i| p.task(&format!("metrics[i={i}]"), "echo metrics"))
        .collect();
    let mut m = p.script("metrics", metrics.clone(), true);
    m.dependencies = vec![Dependency {
        kind: DependencyKind::AfterCorr,
        jobs: vec![single(train_id)],
    }];
    let metrics_id = p.submit(&m).unwrap();
    let board = p.task("board", "echo board");
    let mut b = p.script("board", vec![board.clone()], false);
    b.dependencies = vec![Dependency {
        kind: DependencyKind::AfterOk,
        jobs: vec![single(train_id)],
    }];
    let board_id = p.submit(&b).unwrap();

    let mut refs: Vec<JobRef> = (0..3).map(|i| task_of(train_id, i)).collect();
    refs.extend((0..3).map(|i| task_of(metrics_id, i)));
    refs.push(single(board_id));
    let obs = wait_done(&SystemSlurm::default(), &refs);
    let got: Vec<JobStatus> = refs.iter().map(|r| status(&obs, *r)).collect();
    use JobStatus::*;
    assert_eq!(
        got,
        [
            Completed, Failed, Completed, Completed, Cancelled, Completed, Cancelled
        ]
    );
    let failed = obs.get(task_of(train_id, 1)).unwrap();
    assert_eq!(failed.state, SlurmState::Failed);
    assert_eq!(failed.sacct.as_ref().unwrap().exit.unwrap().code, 3);
    assert_eq!(marker(&train[1]).unwrap().exit_code, 3);
    assert_eq!(marker(&train[0]).unwrap().exit_code, 0);
    assert!(
        std::fs::read_to_string(train[1].log.as_ref().unwrap())
            .unwrap()
            .contains("boom")
    );
    // Cancelled before they ran: no markers.
    assert!(marker(&metrics[1]).is_none());
    assert!(marker(&board).is_none());
    assert_eq!(marker(&metrics[2]).unwrap().exit_code, 0);
}

#[test]
fn unknown_account_is_rejected_with_slurms_message() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let mut s = p.script("bogus", vec![p.task("x", "true")], false);
    // A well-formed name passes validation; SLURM itself refuses it at submit.
    s.resources.account = Some("bogus".into());
    let err = p.submit(&s).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Invalid account"),
        "expected SLURM's message, got: {msg}"
    );
    assert!(matches!(
        err,
        cli::SlurmError::Failed {
            program: Program::Sbatch,
            ..
        }
    ));
}

#[test]
fn hostile_resource_values_are_refused_before_sbatch() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let evil = [
        ("partition", "GPUQ\n#SBATCH --account=bogus"),
        ("account", "flowtest --qos=evil"),
        ("qos", "$(touch pwned)"),
        ("mem", "1G\n#SBATCH --gres=gpu:a100:4"),
        ("time", "5`touch pwned`"),
        ("mail_user", "a@b.org\n#SBATCH --account=bogus"),
        ("mail_type", "END\n#SBATCH --account=bogus"),
        ("extra flag", "--comment=x\n#SBATCH --account=bogus"),
    ];
    for (field, value) in evil {
        let mut s = p.script("evil", vec![p.task("x", "true")], false);
        let r = &mut s.resources;
        match field {
            "partition" => r.partition = Some(value.into()),
            "account" => r.account = Some(value.into()),
            "qos" => r.qos = Some(value.into()),
            "mem" => r.mem = Some(value.into()),
            "time" => r.time = Some(value.into()),
            "mail_user" => r.mail_user = Some(value.into()),
            "mail_type" => r.mail_type = Some(value.into()),
            _ => r.extra = vec![value.into()],
        }
        match s.render() {
            Err(ScriptError::Resources(ResourceError::Invalid {
                field: f, value: v, ..
            })) => {
                assert_eq!((f, v.as_str()), (field, value));
            }
            other => panic!("{field}={value:?} was not refused: {other:?}"),
        }
    }
    // Refused while rendering, before a script exists that sbatch could be given.
    assert!(!p.root().join(".cache/slurm/evil/job.sh").exists());
    assert!(!p.root().join("pwned").exists());
}

#[test]
fn hostile_node_values_run_as_inert_text_under_slurm() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let hostile =
        "it's \"q\"\n#SBATCH --account=bogus\n$(touch pwned1) `touch pwned2` ${HOME} \\ ;|&";
    let mut t = p.task(
        "x",
        &format!(
            "printf '%s' {} > value.txt; printf '%s' \"$FLOW_NODE\" > node.txt",
            quote(hostile)
        ),
    );
    t.node = format!("train[x={hostile}]");
    t.key = hostile.into();
    let s = p.script("hostile", vec![t.clone()], false);
    let id = p.submit(&s).unwrap();
    let obs = wait_done(&SystemSlurm::default(), &[single(id)]);
    assert_eq!(status(&obs, single(id)), JobStatus::Completed);
    assert_eq!(p.read("value.txt"), hostile);
    assert_eq!(p.read("node.txt"), format!("train[x={hostile}]"));
    assert!(!p.root().join("pwned1").exists() && !p.root().join("pwned2").exists());
    // The job ran under the account the resources named, not the one in the node id.
    let out = SystemSlurm::default()
        .sacct(&[
            "-X".into(),
            "-P".into(),
            "-n".into(),
            "--format=Account".into(),
            "-j".into(),
            id.to_string(),
        ])
        .unwrap();
    assert_eq!(out.stdout.trim(), c.account);
}

#[test]
fn max_array_size_comes_from_scontrol() {
    let Some(c) = cluster() else { return };
    let n = cli::max_array_size(&SystemSlurm::default()).unwrap();
    assert_eq!(n, c.max_array_size);
    let chunks = flow_engine::slurm::sacct::array_chunks(20, n, Some(8));
    assert_eq!(chunks, vec![0..8, 8..16, 16..20]);
}

/// The real tools, with every call counted.
#[derive(Default)]
struct Counting {
    inner: SystemSlurm,
    calls: std::sync::Mutex<Vec<Program>>,
}

impl Counting {
    fn count(&self, program: Program) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| **p == program)
            .count()
    }
}

impl SlurmCli for Counting {
    fn run(&self, program: Program, args: &[String]) -> std::io::Result<CmdOutput> {
        self.calls.lock().unwrap().push(program);
        self.inner.run(program, args)
    }
}

/// The real tools, except that sacct fails as it does when slurmdbd is unreachable.
struct NoAccounting(SystemSlurm);

impl SlurmCli for NoAccounting {
    fn run(&self, program: Program, args: &[String]) -> std::io::Result<CmdOutput> {
        if program == Program::Sacct {
            return Ok(CmdOutput::failed(
                1,
                "sacct: error: Slurm accounting storage is disabled",
            ));
        }
        self.0.run(program, args)
    }
}

#[test]
fn squeue_fallback_and_the_marker_when_accounting_is_down() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let t = p.task("sleeper", "touch started; sleep 60");
    let id = p
        .submit(&p.script("sleeper", vec![t.clone()], false))
        .unwrap();
    let slurm = NoAccounting(SystemSlurm::default());
    wait_for("the job to run", || {
        let obs = cli::observe(&slurm, &[id]).unwrap();
        assert_eq!(obs.source, Source::Squeue);
        assert!(obs.sacct_error.as_deref().unwrap().contains("disabled"));
        status(&obs, single(id)) == JobStatus::Running && p.root().join("started").exists()
    });
    cli::cancel(&slurm, &[single(id)]).unwrap();
    // squeue still remembers the job for a while (MinJobAge); the marker tells the rest.
    let obs = wait_done(&slurm, &[single(id)]);
    assert_eq!(status(&obs, single(id)), JobStatus::Cancelled);
    wait_for("the exit marker", || t.marker.exists());
    let m = marker(&t).unwrap();
    assert_eq!(
        m.exit_code, 143,
        "a cancelled job never leaves a success marker"
    );
    assert_eq!(JobStatus::resolve(None, Some(&m), true), JobStatus::Failed);
}

#[test]
fn requeue_before_the_time_limit_keeps_the_job_id() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let t = p.task(
        "train",
        "echo \"$FLOW_ATTEMPT ${FLOW_RESUME:-0}\" >> attempts.txt; \
         if [ \"$FLOW_ATTEMPT\" = 1 ]; then sleep 120; fi",
    );
    let mut s = p.script("requeue", vec![t.clone()], false);
    s.resources.time = Some("10".into());
    s.requeue = Some(Requeue {
        signal_secs: 60,
        max_requeues: 1,
    });
    let id = p.submit(&s).unwrap();
    let slurm = SystemSlurm::default();
    wait_for("the first attempt", || {
        p.root().join("attempts.txt").exists()
    });
    // What SLURM does 60 s before the time limit: USR1 to the batch shell only.
    let out = slurm
        .scancel(&["--signal=USR1".into(), "--batch".into(), id.to_string()])
        .unwrap();
    assert!(out.success(), "{out:?}");
    // A requeued job may start again once its launch credential expired: the dev cluster
    // sets `AuthInfo=cred_expire=15`, so about 16 s. Forcing an earlier start makes slurmctld
    // kill it ("Job credential revoked"), so the test lets SLURM start it in its own time.
    let obs = wait_done(&slurm, &[single(id)]);
    assert_eq!(status(&obs, single(id)), JobStatus::Completed);
    assert_eq!(p.read("attempts.txt"), "1 0\n2 1\n");
    let m = marker(&t).unwrap();
    assert_eq!((m.exit_code, m.attempt), (0, 2));
    assert_eq!(m.job_id, id.to_string(), "the job id survives the requeue");
    let slurm_log = std::fs::read_to_string(s.output_dir.join(format!("{id}.log"))).unwrap();
    assert!(
        slurm_log.contains(&format!("requeueing job {id} (attempt 1)")),
        "{slurm_log}"
    );
}

#[test]
fn mail_reaches_the_stand_in_log() {
    let Some(c) = cluster() else { return };
    let p = Project::new(c);
    let user = format!(
        "flow-test-{}-{}@example.com",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut s = p.script("mail", vec![p.task("mail", "true")], false);
    s.resources.mail_user = Some(user.clone());
    s.resources.mail_type = Some("end".into());
    let id = p.submit(&s).unwrap();
    wait_done(&SystemSlurm::default(), &[single(id)]);
    wait_for("the mail", || {
        std::fs::read_to_string(&c.mail_log)
            .is_ok_and(|log| log.lines().any(|l| l.contains(&format!("to={user}"))))
    });
}
