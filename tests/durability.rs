//! Concurrency, signals, kill -9, torn journals and full disks: state stays consistent.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestProject, stderr, stdout};

fn flow_cmd(p: &TestProject, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("flow"));
    c.current_dir(p.root()).env("NO_COLOR", "1").args(args);
    c
}

/// Polls for a condition the test is waiting on (a file a node writes), with a deadline.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child) -> i32 {
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn two_concurrent_runs_never_run_a_node_twice() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  n:\n    matrix: {i: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}\n    run: 'echo run >> count/{i}; sleep 0.1; echo {i} > {outputs.0}'\n    outputs: ['out/{i}.txt']\n  all:\n    gather: [n]\n    run: 'echo run >> count/all; cat {gather.n} > {outputs.0}'\n    outputs: [out/all.txt]\n",
    );
    std::fs::create_dir_all(p.path("count")).unwrap();
    let mut a = flow_cmd(&p, &["run", "workflows/w.yaml", "-j", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = flow_cmd(&p, &["run", "workflows/w.yaml", "-j", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut a), 0);
    assert_eq!(wait_exit(&mut b), 0);
    for i in 0..12 {
        assert_eq!(
            p.read(&format!("count/{i}")),
            "run\n",
            "node {i} ran more than once"
        );
    }
    assert_eq!(p.read("count/all"), "run\n");
    assert_eq!(p.read("out/all.txt").lines().count(), 12);
    assert_eq!(p.ran(&[]), Vec::<String>::new());
}

#[test]
fn dry_run_and_graph_never_wait_behind_a_running_node() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  slow:\n    run: 'touch started; while [ ! -e release ]; do sleep 0.05; done; echo x > {outputs.0}'\n    outputs: [slow.txt]\n",
    );
    let mut run = flow_cmd(&p, &["run", "workflows/w.yaml"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the node to start", || p.path("started").exists());
    let plan = p.flow(&["run", "workflows/w.yaml", "-n"]);
    assert_eq!(plan.status.code(), Some(0));
    assert!(stdout(&plan).contains("slow"), "{}", stdout(&plan));
    let graph = p.flow(&["graph", "workflows/w.yaml"]);
    assert_eq!(graph.status.code(), Some(0));
    // A second run waits for the node instead of running it twice, and says so.
    let mut second = flow_cmd(&p, &["run", "workflows/w.yaml"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    let mut saw_wait = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("waiting slow: another flow process") {
            saw_wait = true;
            break;
        }
    }
    assert!(saw_wait);
    std::fs::write(p.path("release"), "").unwrap();
    assert_eq!(wait_exit(&mut run), 0);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(wait_exit(&mut second), 0);
    assert!(rest.iter().any(|l| l.contains("fresh   slow")), "{rest:?}");
}

#[test]
fn sigterm_kills_the_children_records_what_finished_and_leaves_nothing_falsely_fresh() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  quick:\n    run: 'echo q > {outputs.0}'\n    outputs: [quick.txt]\n  stuck:\n    needs: [quick]\n    run: 'echo partial > {outputs.0}; echo $$ > stuck.pid; exec sleep 1000'\n    outputs: [stuck.txt]\n",
    );
    let mut run = flow_cmd(&p, &["run", "workflows/w.yaml"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the stuck node to start", || {
        p.path("stuck.pid").exists() && !p.read("stuck.pid").is_empty()
    });
    let pid: i32 = p.read("stuck.pid").trim().parse().unwrap();
    // SAFETY: signals the flow process this test started.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut run), 130);
    // The child's whole process group was terminated and reaped.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep still running: {stat}"
    );
    let plan = stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("1 of 2 nodes would run"), "{plan}");
    assert!(plan.contains("stuck"), "{plan}");
    assert!(plan.contains("previous run failed (interrupted)"), "{plan}");
}

/// A tiny deterministic generator, so failures reproduce.
struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const CRASH_N: usize = 150;

fn crash_workflow() -> String {
    let values: Vec<String> = (0..CRASH_N).map(|i| i.to_string()).collect();
    format!(
        "nodes:\n  train:\n    matrix: {{i: [{}]}}\n    inputs: ['params/{{i}}.txt']\n    run: 'cat params/{{i}}.txt > {{outputs.0}}.tmp && echo trained >> {{outputs.0}}.tmp && mv {{outputs.0}}.tmp {{outputs.0}}'\n    outputs: ['out/train/{{i}}.txt']\n  metrics:\n    needs: [train]\n    run: 'wc -c < {{needs.train}} > {{outputs.0}}'\n    outputs: ['out/metrics/{{instance}}.txt']\n  compare:\n    gather: [metrics]\n    run: 'cat {{gather.metrics}} | wc -l > {{outputs.0}}'\n    outputs: [out/compare.txt]\n",
        values.join(", ")
    )
}

fn expected_train(i: usize) -> String {
    format!("params {i}\ntrained\n")
}

/// Every node the planner calls fresh must have exactly the right output.
fn assert_nothing_falsely_fresh(p: &TestProject) {
    let out = p.flow(&["run", "workflows/w.yaml", "-n", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for node in plan["nodes"].as_array().unwrap() {
        if node["state"] != "fresh" {
            continue;
        }
        let id = node["id"].as_str().unwrap();
        if let Some(i) = id
            .strip_prefix("train[i=")
            .and_then(|r| r.strip_suffix(']'))
        {
            let i: usize = i.parse().unwrap();
            assert_eq!(
                p.read(&format!("out/train/{i}.txt")),
                expected_train(i),
                "{id} falsely fresh"
            );
        } else if let Some(i) = id
            .strip_prefix("metrics[i=")
            .and_then(|r| r.strip_suffix(']'))
        {
            let i: usize = i.parse().unwrap();
            let n = expected_train(i).len();
            assert_eq!(
                p.read(&format!("out/metrics/metrics/i={i}.txt")).trim(),
                n.to_string(),
                "{id} falsely fresh"
            );
        } else if id == "compare" {
            assert_eq!(p.read("out/compare.txt").trim(), CRASH_N.to_string());
        }
    }
}

#[test]
fn kill_9_at_random_moments_never_leaves_a_false_success() {
    let p = TestProject::new();
    p.workflow(&crash_workflow());
    for i in 0..CRASH_N {
        p.write(&format!("params/{i}.txt"), &format!("params {i}\n"));
    }
    let mut rng = XorShift(0x5eed_1234_abcd);
    for round in 0..20 {
        // Every other round leaves a state snapshot at each load (a journal of any size), so
        // kills land between snapshot writes and journal appends too.
        let snapshot_after = if round % 2 == 0 { "0" } else { "1000000000" };
        let mut child = flow_cmd(&p, &["run", "workflows/w.yaml", "-j", "2"])
            .env("FLOW_SNAPSHOT_AFTER_BYTES", snapshot_after)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let target = 1 + rng.below(40);
        let mut seen = 0;
        let reader = BufReader::new(child.stdout.take().unwrap());
        for line in reader.lines() {
            let line = line.unwrap();
            if line.trim_start().starts_with("ok") {
                seen += 1;
                if seen >= target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_nothing_falsely_fresh(&p);
        let _ = round;
    }
    // Then a full run finishes the rest; the outputs are right and a re-run is a no-op.
    let (s, code) = p.run(&["-j", "2"]);
    assert_eq!(code, 0, "{s:?}");
    for i in 0..CRASH_N {
        assert_eq!(p.read(&format!("out/train/{i}.txt")), expected_train(i));
    }
    assert_eq!(p.read("out/compare.txt").trim(), CRASH_N.to_string());
    assert_eq!(p.ran(&[]), Vec::<String>::new());
}

#[test]
fn a_state_snapshot_is_used_only_while_it_matches_the_journal() {
    let p = TestProject::new();
    p.workflow("nodes:\n  a:\n    matrix: {i: [1, 2, 3]}\n    inputs: ['p/{i}.txt']\n    run: 'cat p/{i}.txt > {outputs.0}'\n    outputs: ['out/{i}.txt']\n");
    for i in 1..=3 {
        p.write(&format!("p/{i}.txt"), &format!("v{i}\n"));
    }
    // (nodes that ran, whether the state came from the snapshot)
    let run_traced = |p: &TestProject| {
        let out = flow_cmd(p, &["run", "workflows/w.yaml", "--json"])
            .env("FLOW_SNAPSHOT_AFTER_BYTES", "0")
            .env("FLOW_LOG", "flow_engine=debug")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let summary: common::Summary =
            serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        let mut ran = summary.ran;
        ran.sort();
        (ran, stderr(&out).contains("state loaded from the snapshot"))
    };
    let run = |p: &TestProject| run_traced(p).0;
    assert_eq!(run(&p).len(), 3);
    // The first run's load found an empty journal; the next one leaves a snapshot.
    assert_eq!(run(&p), Vec::<String>::new());
    let snapshot = p.path(".cache/state.snapshot");
    assert!(snapshot.exists(), "no snapshot written");
    // Records appended after the snapshot are read from the journal.
    p.write("p/2.txt", "changed\n");
    assert_eq!(run_traced(&p), (vec!["a[i=2]".to_owned()], true));
    assert_eq!(run(&p), Vec::<String>::new());
    assert_eq!(p.read("out/2.txt"), "changed\n");
    // A corrupt snapshot is ignored: the journal alone gives the same state.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();
    assert_eq!(run_traced(&p), (Vec::<String>::new(), false));
    // So is a snapshot of another journal (the journal replaced by an older copy of itself
    // would not match its fingerprint): here the journal is removed, and everything re-runs
    // rather than being taken from the snapshot.
    std::fs::remove_file(p.path(".cache/journal")).unwrap();
    assert_eq!(run(&p).len(), 3);
}

#[test]
fn a_run_that_wrote_much_leaves_a_snapshot_for_the_next_command() {
    let p = TestProject::new();
    p.workflow("nodes:\n  a:\n    matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8]}\n    run: 'echo {i} > {outputs.0}'\n    outputs: ['out/{i}.txt']\n");
    let run = |p: &TestProject, after: &str| {
        let out = flow_cmd(p, &["run", "workflows/w.yaml", "--json"])
            .env("FLOW_SNAPSHOT_AFTER_BYTES", after)
            .env("FLOW_LOG", "flow_engine=debug")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    let snapshot = p.path(".cache/state.snapshot");
    // Eight records are more than 100 bytes: the run reloads its state at the end and
    // leaves a snapshot, so the next run reads it with no journal line after it.
    let first = run(&p, "100");
    assert!(snapshot.exists(), "no snapshot after the run:\n{first}");
    let next = run(&p, "100");
    assert!(
        next.contains("state loaded from the snapshot journal_tail=0"),
        "{next}"
    );
    // Under the threshold (a run that wrote little) no reload happens: the snapshot stays
    // as it was.
    std::fs::remove_file(&snapshot).unwrap();
    p.write("out/3.txt", "edited\n");
    run(&p, "1000000000");
    assert!(!snapshot.exists(), "a small run wrote a snapshot");
}

#[test]
fn a_torn_journal_tail_is_dropped_with_a_warning() {
    let p = TestProject::new();
    p.workflow("nodes:\n  a:\n    run: 'echo a > {outputs.0}'\n    outputs: [a.txt]\n  b:\n    run: 'echo b > {outputs.0}'\n    outputs: [b.txt]\n");
    p.ran(&[]);
    let journal = p.path(".cache/journal");
    let text = std::fs::read(&journal).unwrap();
    // Cut the last record in half, as a crash during the append would.
    std::fs::write(&journal, &text[..text.len() - 30]).unwrap();
    let out = p.flow(&["run", "workflows/w.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("dropped 1 torn or corrupt journal line"),
        "{}",
        stderr(&out)
    );
    let summary: common::Summary =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(
        summary.ran.len(),
        1,
        "only the node whose record was torn re-runs"
    );
    assert_eq!(p.ran(&[]), Vec::<String>::new());
    assert!(!stderr(&p.flow(&["run", "workflows/w.yaml"])).contains("dropped"));
}

#[test]
fn a_full_disk_gives_a_clear_error_and_a_consistent_state() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let p = TestProject::new();
    let mnt = p.path("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mount -t tmpfs failed although running as root");
    let proj = mnt.join("proj");
    std::fs::create_dir_all(proj.join("workflows")).unwrap();
    std::fs::write(
        proj.join("workflows/w.yaml"),
        "nodes:\n  fill:\n    run: 'echo ok > {outputs.0}; if [ -e fill-once ]; then rm fill-once; dd if=/dev/zero of=filler bs=1k count=1000 2>/dev/null || true; fi'\n    outputs: [small.txt]\n",
    )
    .unwrap();
    std::fs::write(proj.join("fill-once"), "").unwrap();
    let run = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin("flow"))
            .current_dir(&proj)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["run", "workflows/w.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = Command::new("rm")
        .arg("-f")
        .arg(proj.join("filler"))
        .status();
    let code = out.status.code();
    // Unmount before asserting so a failure does not leak the mount.
    let plan = run(&["run", "workflows/w.yaml", "-n"]);
    let rerun = run(&["run", "workflows/w.yaml"]);
    let again = run(&["run", "workflows/w.yaml", "-n"]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("journal"), "{err}");
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.contains("1 of 1 nodes would run"),
        "nothing falsely fresh: {plan}"
    );
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
}
