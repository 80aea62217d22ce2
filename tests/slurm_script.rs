//! Batch scripts from `flow_engine::slurm::script`: snapshots of the text, and the scripts
//! run by plain `bash` with SLURM's environment variables set by hand, so their behaviour
//! (task selection, FLOW_* variables, exit markers, signals, requeue) is checked without a
//! cluster. tests/slurm_cluster.rs runs them under real SLURM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flow_engine::slurm::script::{
    ArrayOptions, BatchScript, Dependency, DependencyKind, JobRef, Requeue, ScriptTask,
};
use flow_engine::slurm::{ExitMarker, Resources};
use flow_engine::template::quote;

fn task(root: &Path, i: usize, command: &str) -> ScriptTask {
    ScriptTask {
        node: format!("train[lr={i}]"),
        key: format!("{i:064x}"),
        command: command.to_string(),
        marker: root.join(format!(".cache/slurm/markers/train/lr={i}.json")),
        log: Some(root.join(format!(".cache/logs/train/lr={i}.log"))),
        attempt: 1,
    }
}

fn script(root: &Path, tasks: Vec<ScriptTask>) -> BatchScript {
    let array = (tasks.len() > 1).then_some(ArrayOptions::default());
    BatchScript {
        job_name: "train".into(),
        project_root: root.to_path_buf(),
        output_dir: root.join(".cache/slurm/train"),
        resources: Resources::default(),
        tasks,
        array,
        dependencies: vec![],
        requeue: None,
        preamble: None,
    }
}

/// The `FLOW_BIN=` line names the test binary's path, which differs between machines.
fn without_flow_bin(script: &str) -> String {
    script
        .lines()
        .map(|l| {
            if l.starts_with("FLOW_BIN=") {
                "FLOW_BIN=<the flow binary>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn snapshot_single_node_with_everything() {
    let root = Path::new("/home/me/proj");
    let mut s = script(
        root,
        vec![task(
            root,
            0,
            "sh scripts/train.sh --lr 0.0001 --out 'runs/train/lr=1.0e-4'",
        )],
    );
    s.job_name = "train[lr=1.0e-4]".into();
    s.resources = Resources {
        partition: Some("GPUQ".into()),
        account: Some("flowtest".into()),
        qos: Some("normal".into()),
        gpus: Some(1),
        gpu_type: Some("a100".into()),
        cpus_per_task: Some(8),
        mem: Some("48G".into()),
        time: Some("8:00:00".into()),
        mail_user: Some("me@example.org".into()),
        mail_type: Some("END,FAIL".into()),
        extra: vec!["--exclusive".into()],
        ..Default::default()
    };
    s.dependencies = vec![Dependency {
        kind: DependencyKind::AfterOk,
        jobs: vec![
            JobRef {
                job: 41,
                task: None,
            },
            JobRef {
                job: 40,
                task: Some(2),
            },
        ],
    }];
    s.requeue = Some(Requeue {
        signal_secs: 300,
        max_requeues: 3,
    });
    s.preamble = Some("module load cuda/12.1\nsource .venv/bin/activate\n".into());
    insta::assert_snapshot!(without_flow_bin(&s.render().unwrap()));
}

#[test]
fn snapshot_array_of_three_with_throttle() {
    let root = Path::new("/home/me/proj");
    let tasks = (0..3)
        .map(|i| task(root, i, &format!("echo {i} > out/{i}.txt")))
        .collect();
    let mut s = script(root, tasks);
    s.array = Some(ArrayOptions { throttle: Some(2) });
    s.resources.partition = Some("GPUQ".into());
    insta::assert_snapshot!(without_flow_bin(&s.render().unwrap()));
}

/// Writes the script into the project and runs it with bash, with `env` as SLURM would set.
fn spawn(root: &Path, s: &BatchScript, env: &[(&str, &str)], path_prefix: Option<&Path>) -> Child {
    let path = root.join(".cache/slurm/job.sh");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, s.render().unwrap()).unwrap();
    let mut cmd = Command::new("bash");
    let sys_path = std::env::var("PATH").unwrap_or_default();
    let path_var = match path_prefix {
        Some(p) => format!("{}:{sys_path}", p.display()),
        None => sys_path,
    };
    use std::os::unix::process::CommandExt;
    cmd.arg(&path)
        // Its own process group, so a test can signal every process as scancel does.
        .process_group(0)
        .env_clear()
        .env("PATH", path_var)
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn run(root: &Path, s: &BatchScript, env: &[(&str, &str)]) -> Output {
    spawn(root, s, env, None).wait_with_output().unwrap()
}

fn marker(t: &ScriptTask) -> Option<ExitMarker> {
    ExitMarker::read(&t.marker).unwrap()
}

fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the bash process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn runs_the_command_with_flow_env_and_writes_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let command = "printf '%s|%s|%s|%s|%s|%s|%s\\n' \"$FLOW_NODE\" \"$FLOW_KEY\" \"$FLOW_ATTEMPT\" \
                   \"${FLOW_RESUME-none}\" \"$FLOW_PROJECT\" \"${SLURM_PROCID-unset}\" \"$FROM_PREAMBLE\" \
                   > out.txt; pwd; echo to-stderr >&2; exit 3";
    let mut s = script(root, vec![task(root, 0, command)]);
    s.preamble = Some("export FROM_PREAMBLE=yes\ncd /tmp".into());
    let out = run(
        root,
        &s,
        &[
            ("SLURM_JOB_ID", "77"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_RESTART_COUNT", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let t = &s.tasks[0];
    assert_eq!(
        std::fs::read_to_string(root.join("out.txt")).unwrap(),
        format!("train[lr=0]|{}|2|1|{}|unset|yes\n", t.key, root.display())
    );
    // The command ran in the project root (the preamble's `cd` is undone), its output
    // went to the node's log.
    let log = std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap();
    assert_eq!(log, format!("{}\nto-stderr\n", root.display()));
    let m = marker(t).expect("marker");
    assert_eq!((m.exit_code, m.attempt, m.job_id.as_str()), (3, 2, "77"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(m.end_time <= now && m.end_time + 60 > now);
    // No temp file is left next to the marker.
    let left: Vec<_> = std::fs::read_dir(t.marker.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn array_task_runs_only_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tasks: Vec<_> = (0..3)
        .map(|i| task(root, i, &format!("echo {i} > task{i}.txt")))
        .collect();
    let s = script(root, tasks);
    let out = run(
        root,
        &s,
        &[
            ("SLURM_JOB_ID", "52"),
            ("SLURM_ARRAY_JOB_ID", "50"),
            ("SLURM_ARRAY_TASK_ID", "1"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(root.join("task1.txt").exists());
    assert!(!root.join("task0.txt").exists() && !root.join("task2.txt").exists());
    let m = marker(&s.tasks[1]).unwrap();
    assert_eq!((m.exit_code, m.job_id.as_str(), m.attempt), (0, "50_1", 1));
    assert!(marker(&s.tasks[0]).is_none());
    // An index with no node fails without running anything.
    let out = run(
        root,
        &s,
        &[("SLURM_ARRAY_JOB_ID", "50"), ("SLURM_ARRAY_TASK_ID", "7")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node for array task '7'"));
}

#[test]
fn a_stale_marker_is_removed_when_the_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = script(root, vec![task(root, 0, "touch started; sleep 30")]);
    let t = &s.tasks[0];
    std::fs::create_dir_all(t.marker.parent().unwrap()).unwrap();
    std::fs::write(
        &t.marker,
        r#"{"exit_code":0,"end_time":1,"attempt":1,"job_id":"1"}"#,
    )
    .unwrap();
    let mut child = spawn(root, &s, &[("SLURM_JOB_ID", "5")], None);
    wait_for_file(&root.join("started"));
    assert!(
        marker(t).is_none(),
        "the old marker must not stand for this run"
    );
    signal(&child, libc::SIGTERM);
    child.wait().unwrap();
    assert_eq!(marker(t).unwrap().exit_code, 143);
}

#[test]
fn term_to_every_process_as_scancel_sends_it_marks_143() {
    // SLURM signals the batch shell and the command at once, so the command often ends
    // while the shell is still in its TERM trap; bash's `wait` then misreports (-1).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = script(root, vec![task(root, 0, "touch started; sleep 30")]);
    for round in 0..10 {
        let _ = std::fs::remove_file(root.join("started"));
        let mut child = spawn(root, &s, &[("SLURM_JOB_ID", "8")], None);
        wait_for_file(&root.join("started"));
        // SAFETY: kill(2) on the process group of the bash this test started.
        assert_eq!(
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) },
            0
        );
        assert_eq!(child.wait().unwrap().code(), Some(143), "round {round}");
        assert_eq!(marker(&s.tasks[0]).unwrap().exit_code, 143, "round {round}");
    }
}

#[test]
fn term_reaches_the_command_and_never_counts_as_success() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A command that saves its work on TERM and exits 0.
    let command = "trap 'echo saved > saved.txt; exit 0' TERM; touch started; \
                   while :; do sleep 0.1; done";
    let s = script(root, vec![task(root, 0, command)]);
    let mut child = spawn(root, &s, &[("SLURM_JOB_ID", "9")], None);
    wait_for_file(&root.join("started"));
    let t0 = Instant::now();
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(143));
    assert_eq!(
        std::fs::read_to_string(root.join("saved.txt")).unwrap(),
        "saved\n"
    );
    assert_eq!(marker(&s.tasks[0]).unwrap().exit_code, 143);
}

/// A fake `scontrol` on PATH that records its arguments.
fn fake_scontrol(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("scontrol");
    std::fs::write(
        &exe,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n",
            quote(&dir.join("scontrol.log").to_string_lossy())
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn usr1_requeues_within_the_budget_and_leaves_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = fake_scontrol(root);
    let mut s = script(root, vec![task(root, 0, "touch started; sleep 30")]);
    s.requeue = Some(Requeue {
        signal_secs: 120,
        max_requeues: 1,
    });
    let child = spawn(root, &s, &[("SLURM_JOB_ID", "31")], Some(&bin));
    wait_for_file(&root.join("started"));
    signal(&child, libc::SIGUSR1);
    wait_for_file(&root.join("scontrol.log"));
    // scontrol requeue makes SLURM terminate the job; here the test does.
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(
        std::fs::read_to_string(root.join("scontrol.log")).unwrap(),
        "requeue 31\n"
    );
    assert!(
        marker(&s.tasks[0]).is_none(),
        "a requeued job runs again: no marker"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("requeueing job 31 (attempt 1)"));
}

#[test]
fn usr1_with_the_budget_spent_lets_the_command_finish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = fake_scontrol(root);
    let mut s = script(
        root,
        vec![task(
            root,
            0,
            "touch started; sleep 1; echo $FLOW_ATTEMPT > done",
        )],
    );
    s.requeue = Some(Requeue {
        signal_secs: 120,
        max_requeues: 1,
    });
    // A preamble that leaves errexit on must not make the interrupted `wait` fatal.
    s.preamble = Some("set -eu".into());
    let child = spawn(
        root,
        &s,
        &[("SLURM_JOB_ID", "32"), ("SLURM_RESTART_COUNT", "1")],
        Some(&bin),
    );
    wait_for_file(&root.join("started"));
    signal(&child, libc::SIGUSR1);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!root.join("scontrol.log").exists());
    assert_eq!(std::fs::read_to_string(root.join("done")).unwrap(), "2\n");
    let m = marker(&s.tasks[0]).unwrap();
    assert_eq!((m.exit_code, m.attempt), (0, 2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("requeue budget (1) is spent"));
}

/// Values as hostile as a parameter can be: quotes, newlines, command substitution,
/// backticks, a fake #SBATCH line.
pub const HOSTILE: &str =
    "it's \"quoted\"\n#SBATCH --account=bogus\n$(touch pwned1) `touch pwned2` ${HOME} \\ \r\t;|&";

#[test]
fn hostile_values_run_as_inert_text() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The command is built as the template builds it: each value quoted for sh.
    let command = format!(
        "printf '%s' {} > value.txt; printf '%s' \"$FLOW_NODE\" > node.txt",
        quote(HOSTILE)
    );
    let mut t = task(root, 0, &command);
    t.node = format!("train[x={HOSTILE}]");
    t.key = HOSTILE.to_string();
    let s = script(root, vec![t]);
    let text = s.render().unwrap();
    let header: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with('#'))
        .filter(|l| l.starts_with("#SBATCH"))
        .collect();
    assert_eq!(header.len(), 5, "{header:?}");
    assert!(!text.lines().any(|l| l.starts_with("#SBATCH --account")));
    let out = run(root, &s, &[("SLURM_JOB_ID", "1")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("value.txt")).unwrap(),
        HOSTILE
    );
    assert_eq!(
        std::fs::read_to_string(root.join("node.txt")).unwrap(),
        format!("train[x={HOSTILE}]")
    );
    for p in ["pwned1", "pwned2", "/pwned1", "/pwned2"] {
        assert!(!root.join(p).exists(), "{p} was created");
    }
}

/// SLURM requeued the job (preemption, node failure) more often than its budget allows: the
/// run ends at once, without running the command, and its marker says why; at the budget
/// it still runs. The budget comes from the requeue settings, else from `max_requeues`
/// in the resources, else 3.
#[test]
fn a_run_past_the_requeue_budget_ends_without_running_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut s = script(root, vec![task(root, 0, "echo ran >> ran.txt")]);
    s.resources.max_requeues = Some(1);
    let out = run(
        root,
        &s,
        &[("SLURM_JOB_ID", "40"), ("SLURM_RESTART_COUNT", "1")],
    );
    assert!(out.status.success(), "at the budget it runs: {out:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("ran.txt")).unwrap(),
        "ran\n"
    );
    assert_eq!(marker(&s.tasks[0]).unwrap().budget_spent, None);
    let out = run(
        root,
        &s,
        &[("SLURM_JOB_ID", "40"), ("SLURM_RESTART_COUNT", "2")],
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("ran.txt")).unwrap(),
        "ran\n",
        "the command did not run"
    );
    let m = marker(&s.tasks[0]).unwrap();
    assert_eq!((m.version, m.exit_code, m.attempt), (2, 75, 3));
    assert_eq!(
        m.budget_spent,
        Some(flow_engine::slurm::BudgetSpent {
            requeues: 2,
            max_requeues: 1
        })
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("job 40 was requeued 2 times; the requeue budget (1) is spent")
    );
    // Without a setting the budget is 3; the requeue settings' budget wins.
    s.resources.max_requeues = None;
    let out = run(
        root,
        &s,
        &[("SLURM_JOB_ID", "41"), ("SLURM_RESTART_COUNT", "3")],
    );
    assert!(out.status.success(), "{out:?}");
    let out = run(
        root,
        &s,
        &[("SLURM_JOB_ID", "41"), ("SLURM_RESTART_COUNT", "4")],
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    s.resources.max_requeues = Some(5);
    s.requeue = Some(Requeue {
        signal_secs: 60,
        max_requeues: 0,
    });
    let out = run(
        root,
        &s,
        &[("SLURM_JOB_ID", "42"), ("SLURM_RESTART_COUNT", "1")],
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
}
