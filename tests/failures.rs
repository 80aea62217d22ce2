//! Failing nodes, logs, keep-going, GPU slots and quoting, through the real binary.

mod common;

use common::{TestProject, stderr, stdout};

const FAILING: &str = r#"
nodes:
  a:
    run: "echo a > {outputs.0}"
    outputs: [a.txt]
  bad:
    needs: [a]
    run: "echo 'something went wrong in bad' >&2; exit 3"
    outputs: [bad.txt]
  after_bad:
    needs: [bad]
    run: "echo x > {outputs.0}"
    outputs: [after_bad.txt]
  independent:
    needs: [a]
    run: "echo i > {outputs.0}"
    outputs: [independent.txt]
"#;

#[test]
fn a_failing_node_stops_only_its_dependents_with_keep_going() {
    let p = TestProject::new();
    p.workflow(FAILING);
    let (s, code) = p.run(&["--keep-going", "-j", "1"]);
    assert_eq!(code, 1);
    assert_eq!(s.failed, vec!["bad"]);
    assert_eq!(s.skipped, vec!["after_bad"]);
    let mut ran = s.ran.clone();
    ran.sort();
    assert_eq!(ran, vec!["a", "bad", "independent"]);
    assert!(p.path("independent.txt").exists());
    assert!(!p.path("after_bad.txt").exists());
    // The failure is remembered: next time `bad` runs again, `a` and `independent` do not.
    let plan = stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(plan.contains("previous run failed (exit code 3)"), "{plan}");
    let (s, _) = p.run(&["--keep-going"]);
    assert_eq!(s.ran, vec!["bad"]);
}

#[test]
fn without_keep_going_a_failure_stops_new_starts() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  bad:\n    run: exit 1\n  later:\n    needs: [bad]\n    run: 'true'\n  other:\n    run: 'true'\n",
    );
    // bad comes first in order; with one job slot nothing else starts after it fails.
    let (s, code) = p.run(&["-j", "1"]);
    assert_eq!(code, 1);
    assert_eq!(s.ran, vec!["bad"]);
    let mut skipped = s.skipped.clone();
    skipped.sort();
    assert_eq!(skipped, vec!["later", "other"]);
}

#[test]
fn a_failure_prints_the_end_of_its_log_and_flow_logs_shows_it() {
    let p = TestProject::new();
    p.workflow(FAILING);
    let out = p.flow(&["run", "workflows/w.yaml", "--keep-going"]);
    let text = stdout(&out);
    assert!(text.contains("FAILED  bad: exit code 3"), "{text}");
    assert!(text.contains("| something went wrong in bad"), "{text}");
    let logs = p.flow(&["logs", "bad"]);
    assert_eq!(logs.status.code(), Some(0), "{}", stderr(&logs));
    assert_eq!(stdout(&logs), "something went wrong in bad\n");
}

#[test]
fn a_missing_declared_output_is_a_failure() {
    let p = TestProject::new();
    p.workflow("nodes:\n  a:\n    run: 'true'\n    outputs: [never.txt]\n");
    let (s, code) = p.run(&[]);
    assert_eq!(code, 1);
    assert_eq!(s.failed, vec!["a"]);
    let plan = stdout(&p.flow(&["run", "workflows/w.yaml", "-n"]));
    assert!(
        plan.contains("declared outputs missing: never.txt"),
        "{plan}"
    );
}

#[test]
fn gpu_slots_are_shared_and_exported() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  g:\n    matrix: {i: [1, 2, 3]}\n    resources: {gpus: 1}\n    run: 'echo $CUDA_VISIBLE_DEVICES > {outputs.0}'\n    outputs: ['gpu{i}.txt']\n",
    );
    let refused = p.flow(&["run", "workflows/w.yaml", "--gpus", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("needs 1 GPU(s) but 0 are available"));
    let (s, code) = p.run(&["--gpus", "2", "-j", "4"]);
    assert_eq!(code, 0, "{s:?}");
    for i in 1..=3 {
        let slot = p.read(&format!("gpu{i}.txt"));
        assert!(slot == "0\n" || slot == "1\n", "{slot:?}");
    }
}

#[test]
fn gpu_slots_map_through_the_gpus_flow_was_given() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  g:\n    resources: {gpus: 1}\n    run: 'echo $CUDA_VISIBLE_DEVICES > {outputs.0}'\n    outputs: [gpu.txt]\n",
    );
    let out = assert_cmd::Command::cargo_bin("flow")
        .unwrap()
        .current_dir(p.root())
        .env("CUDA_VISIBLE_DEVICES", "5,7")
        .args(["run", "workflows/w.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.read("gpu.txt"), "5\n");
}

#[test]
fn parameter_values_are_shell_quoted() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  q:\n    params:\n      msg: \"it's $(rm -rf x); `id` \\\"quoted\\\" a  b\"\n    run: printf '%s' {msg} > {outputs.0}\n    outputs: [msg.txt]\n",
    );
    p.write("x/keep.txt", "keep");
    let (_, code) = p.run(&[]);
    assert_eq!(code, 0);
    assert_eq!(p.read("msg.txt"), "it's $(rm -rf x); `id` \"quoted\" a  b");
    assert!(p.path("x/keep.txt").exists());
}

#[test]
fn graph_draws_states_in_every_format() {
    let p = TestProject::new();
    p.workflow(FAILING);
    p.run(&["--keep-going"]);
    let text = stdout(&p.flow(&["graph", "workflows/w.yaml"]));
    assert!(text.contains("a  [fresh]"), "{text}");
    assert!(
        text.contains("bad  [failed: previous run failed (exit code 3)]"),
        "{text}"
    );
    assert!(
        text.contains("after_bad  [stale: new: never ran]"),
        "{text}"
    );
    let dot = stdout(&p.flow(&["graph", "workflows/w.yaml", "--format", "dot"]));
    assert!(dot.starts_with("digraph flow {"), "{dot}");
    assert!(dot.contains("fillcolor=salmon"));
    assert!(dot.contains("n0 -> n1;"));
    let mermaid = stdout(&p.flow(&["graph", "workflows/w.yaml", "--format", "mermaid"]));
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains(":::failed"));
}

#[test]
fn node_commands_get_their_identity_in_the_environment() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  e:\n    matrix: {lr: [1.0e-4]}\n    run: 'echo \"$FLOW_NODE $FLOW_ATTEMPT ${{#FLOW_KEY}}\" > {outputs.0}'\n    outputs: [env.txt]\n",
    );
    p.run(&[]);
    assert_eq!(p.read("env.txt"), "e[lr=1.0e-4] 1 64\n");
}

#[test]
fn a_retry_of_a_failed_run_is_the_next_attempt_and_resumes() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  t:\n    run: 'echo \"$FLOW_ATTEMPT ${{FLOW_RESUME:-0}}\" >> attempts; [ -e ok ] && touch {outputs.0}'\n    outputs: [done]\n",
    );
    let (_, code) = p.run(&[]);
    assert_eq!(code, 1);
    let (_, code) = p.run(&[]);
    assert_eq!(code, 1);
    p.write("ok", "");
    assert_eq!(p.ran(&[]), ["t"]);
    assert_eq!(p.read("attempts"), "1 0\n2 1\n3 1\n");
    // A forced re-run of a successful node starts afresh.
    assert_eq!(p.ran(&["--force", "t"]), ["t"]);
    assert_eq!(p.read("attempts").lines().last(), Some("1 0"));
}

#[test]
fn a_gather_over_thousands_of_outputs_runs_despite_the_argument_limit() {
    let p = TestProject::new();
    let values: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    p.workflow(&format!(
        "nodes:\n  n:\n    matrix: {{i: [{}]}}\n    run: 'echo {{i}} > {{outputs.0}}'\n    outputs: ['out/a-rather-long-directory-name-to-make-the-command-long/{{i}}.txt']\n  all:\n    gather: [n]\n    run: 'cat {{gather.n}} | wc -l > {{outputs.0}}'\n    outputs: [all.txt]\n",
        values.join(", ")
    ));
    let (s, code) = p.run(&["-j", "2"]);
    assert_eq!(code, 0, "{:?}", s.failed);
    assert_eq!(p.read("all.txt").trim(), "3000");
}

#[test]
fn a_closed_stdout_ends_flow_quietly() {
    let p = TestProject::new();
    p.workflow("nodes:\n  n:\n    matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n    run: 'true'\n");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} run workflows/w.yaml -n | head -1",
            assert_cmd::cargo::cargo_bin("flow").display()
        ))
        .current_dir(p.root())
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn inputs_placeholder_expands_globs_to_the_matching_files() {
    let p = TestProject::new();
    p.write("data/b.json", "{}")
        .write("data/a.json", "{}")
        .write("data/c.txt", "x");
    p.workflow(
        "nodes:\n  n:\n    inputs: ['data/*.json']\n    run: 'echo {inputs} > {outputs.0}'\n    outputs: [list.txt]\n",
    );
    let (_, code) = p.run(&[]);
    assert_eq!(code, 0);
    assert_eq!(p.read("list.txt"), "data/a.json data/b.json\n");
}
