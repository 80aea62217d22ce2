//! `flow gc` drops state that no workflow reaches, and only that.

mod common;

use common::{TestProject, stdout};

#[test]
fn gc_drops_records_of_removed_nodes_and_keeps_the_rest() {
    let p = TestProject::new();
    p.workflow(
        "nodes:\n  keep:\n    run: 'echo k > {outputs.0}'\n    outputs: [keep.txt]\n  old:\n    matrix: {i: [1, 2]}\n    run: 'echo {i} > {outputs.0}'\n    outputs: ['old{i}.txt']\n",
    );
    p.ran(&[]);
    assert!(p.path(".cache/logs/old/i=1.log").exists());
    p.workflow("nodes:\n  keep:\n    run: 'echo k > {outputs.0}'\n    outputs: [keep.txt]\n");
    let dry = stdout(&p.flow(&["gc", "--dry-run"]));
    assert!(dry.contains("would drop 2 node record(s)"), "{dry}");
    assert!(
        dry.contains("old[i=1]") && dry.contains("old[i=2]"),
        "{dry}"
    );
    let out = p.flow(&["gc", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["dropped_nodes"],
        serde_json::json!(["old[i=1]", "old[i=2]"])
    );
    assert_eq!(v["kept_nodes"], 1);
    assert!(!p.path(".cache/logs/old/i=1.log").exists());
    // What is kept is still fresh; what was dropped runs as new when it comes back.
    assert_eq!(p.ran(&[]), Vec::<String>::new());
    let again = stdout(&p.flow(&["gc"]));
    assert!(again.contains("dropped 0 node record(s)"), "{again}");
}

#[test]
fn gc_refuses_to_collect_with_a_broken_workflow() {
    let p = TestProject::new();
    p.workflow("nodes:\n  a:\n    run: 'echo a > {outputs.0}'\n    outputs: [a.txt]\n");
    p.ran(&[]);
    p.write("workflows/broken.yaml", "nodes:\n  b:\n    runn: x\n");
    let out = p.flow(&["gc"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(p.ran(&[]), Vec::<String>::new(), "nothing was dropped");
}
