//! Every kind of bad input gets a located, actionable error and nothing runs.

mod common;

use common::{TestProject, stderr};

/// Runs a workflow expected to be refused; returns the rendered error.
fn refused(yaml: &str) -> String {
    let p = TestProject::new();
    p.write("data/in.txt", "x");
    p.workflow(yaml);
    let out = p.flow(&["run", "workflows/w.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!p.path(".cache/journal").exists(), "nothing may run");
    assert!(!p.path("ran").exists(), "nothing may run");
    stderr(&out)
}

macro_rules! case {
    ($name:ident, $yaml:expr, $($needle:expr),+) => {
        #[test]
        fn $name() {
            let err = refused($yaml);
            $(assert!(err.contains($needle), "missing {:?} in:\n{err}", $needle);)+
            insta::assert_snapshot!(err);
        }
    };
}

case!(
    yaml_syntax_error,
    "nodes:\n  a:\n    run: \"touch ran\n    outputs: [x]\n",
    "invalid YAML",
    "workflows/w.yaml:"
);

case!(
    unknown_key_suggests,
    "nodes:\n  a:\n    run: touch ran\n    ouputs: [x]\n",
    "unknown key `ouputs` in node `a`",
    "did you mean `outputs`?",
    "workflows/w.yaml:4:5"
);

case!(
    wrong_value_type,
    "nodes:\n  a:\n    run: touch ran\n    resources: {gpus: many}\n",
    "wrong type for `gpus`: expected a non-negative whole number, found a string"
);

case!(
    unknown_upstream_suggests,
    "nodes:\n  train:\n    run: touch ran\n  metrics:\n    needs: [trian]\n    run: touch ran\n",
    "unknown node `trian`",
    "did you mean `train`?"
);

case!(
    cycle_names_its_path,
    "nodes:\n  a:\n    needs: [c]\n    run: touch ran\n  b:\n    needs: [a]\n    run: touch ran\n  c:\n    needs: [b]\n    run: touch ran\n",
    "dependency cycle: a -> c -> b -> a"
);

case!(
    duplicate_node_ids,
    "nodes:\n  a:\n    run: touch ran\n  a:\n    run: touch ran\n",
    "duplicate key `a`",
    "first defined here"
);

case!(
    matrix_values_equal_as_numbers,
    "nodes:\n  t:\n    matrix: {lr: [1e-4, 0.0001]}\n    run: touch ran\n",
    "duplicate matrix value `0.0001` for `lr` (equal to `1e-4`)"
);

case!(
    missing_input,
    "nodes:\n  a:\n    inputs: [data/missing.txt]\n    run: touch ran\n",
    "input `data/missing.txt` does not exist and no node produces it"
);

case!(
    input_glob_matching_nothing,
    "nodes:\n  a:\n    inputs: ['data/*.json']\n    run: touch ran\n",
    "input pattern `data/*.json` matches no files"
);

case!(
    input_produced_by_an_unreferenced_node,
    "nodes:\n  a:\n    run: touch ran\n    outputs: [made.txt]\n  b:\n    inputs: [made.txt]\n    run: touch ran\n",
    "input `made.txt` is produced by `a`, which `b` does not reference",
    "add `a` to this node's `needs:`"
);

case!(
    empty_matrix,
    "nodes:\n  a:\n    matrix: {}\n    run: touch ran\n",
    "empty matrix"
);

case!(
    empty_matrix_axis,
    "nodes:\n  a:\n    matrix: {lr: []}\n    run: touch ran\n",
    "empty matrix axis `lr`"
);

case!(
    output_declared_twice,
    "nodes:\n  a:\n    run: touch ran\n    outputs: [out.txt]\n  b:\n    run: touch ran\n    outputs: [out.txt]\n",
    "output `out.txt` is declared by both `a` and `b`"
);

case!(
    output_of_every_instance_the_same,
    "nodes:\n  a:\n    matrix: {lr: [1, 2]}\n    run: touch ran\n    outputs: [out.txt]\n",
    "output `out.txt` is declared by both `a[lr=1]` and `a[lr=2]`",
    "{instance}"
);

case!(
    output_outside_the_project,
    "nodes:\n  a:\n    run: touch ran\n    outputs: [../escape.txt]\n",
    "output path `../escape.txt` is outside the project"
);

case!(
    unknown_placeholder,
    "nodes:\n  a:\n    params: {lr: 1}\n    run: touch ran --lr {lrr}\n",
    "unknown placeholder `{lrr}`",
    "did you mean `lr`?"
);

case!(
    unknown_task_kind,
    "nodes:\n  a:\n    task: shel\n    run: touch ran\n",
    "unknown task kind `shel`",
    "did you mean `shell`?"
);

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    yaml.push_str("nodes:\n  a:\n    run: touch ran\n");
    let start = std::time::Instant::now();
    let err = refused(&yaml);
    assert!(
        err.contains("document expands to more than 200000 values"),
        "{err}"
    );
    assert!(err.contains("alias bomb"), "{err}");
    // Not a timing test of flow's speed: a bound that only an unbounded expansion misses.
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn deeply_nested_document_is_refused() {
    let mut yaml = String::from("nodes:\n  a:\n    run: touch ran\n    params:\n");
    for depth in 0..80 {
        yaml.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth + 3)));
    }
    let err = refused(&yaml);
    assert!(err.contains("nested deeper than 64 levels"), "{err}");
}

#[test]
fn unknown_key_in_project_settings() {
    let p = TestProject::new();
    p.write("configs/flow.yaml", "executor: local\njbos: 2\n");
    p.workflow("nodes:\n  a:\n    run: touch ran\n");
    let out = p.flow(&["run", "workflows/w.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("unknown key `jbos` in configs/flow.yaml"),
        "{err}"
    );
    assert!(err.contains("did you mean `jobs`?"), "{err}");
    assert!(err.contains("configs/flow.yaml:2:1"), "{err}");
}
