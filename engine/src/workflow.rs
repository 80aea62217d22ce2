//! The workflow file as written: nodes, parameters, matrices and references, all located.
//!
//! Everything that can be checked without expanding the matrix is checked here, so a
//! mistake is reported against the line that contains it before anything runs.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::{SpecError, choices_help};
use crate::fields::{Fields, expect_map, key_text, type_error};
use crate::task::{TaskRegistry, TaskTemplate};
use crate::value::Value;
use crate::yaml::{self, Source, Span, Yaml, YamlKind};

/// The workflow format version this build reads.
pub const WORKFLOW_VERSION: u32 = 1;

const TOP_KEYS: &[&str] = &["version", "description", "executor", "slurm", "nodes"];
const NODE_KEYS: &[&str] = &[
    "task",
    "description",
    "params",
    "matrix",
    "include",
    "exclude",
    "needs",
    "gather",
    "resources",
    "executor",
];
/// Executors a workflow may name.
pub const EXECUTORS: &[&str] = &["local", "slurm"];

/// A parameter leaf, by its dotted key.
#[derive(Debug, Clone)]
pub struct Param {
    pub value: Value,
    /// As written in the file, for messages and diffs.
    pub text: String,
    pub span: Span,
}

/// One value of a matrix axis.
pub type MatrixValue = Param;

/// One `matrix:` key and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    pub key: String,
    pub key_span: Span,
    pub values: Vec<MatrixValue>,
}

/// One entry of `include:` or `exclude:`.
#[derive(Debug, Clone)]
pub struct Combination {
    pub span: Span,
    pub entries: Vec<(String, Span, MatrixValue)>,
}

/// A reference to another node by name.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub name: String,
    pub span: Span,
}

/// One node as written.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub name_span: Span,
    pub task: String,
    pub task_version: u32,
    pub params: BTreeMap<String, Param>,
    pub matrix: Vec<Axis>,
    pub include: Vec<Combination>,
    pub exclude: Vec<Combination>,
    pub needs: Vec<NodeRef>,
    pub gather: Vec<NodeRef>,
    pub gpus: u32,
    /// The node's SLURM request (`resources:`); `gpus` is also the local GPU slot count.
    pub resources: crate::slurm::Resources,
    /// `executor: local` keeps a cheap node on the submitting machine in SLURM runs.
    pub executor: Option<String>,
    pub template: TaskTemplate,
}

/// A parsed and checked workflow file.
#[derive(Debug, Clone)]
pub struct WorkflowSpec {
    pub source: Source,
    pub executor: Option<(String, Span)>,
    /// Workflow-wide SLURM settings (over `configs/flow.yaml`'s, under nodes' and the
    /// command line's).
    pub slurm: crate::slurm_config::SlurmSection,
    pub nodes: Vec<NodeSpec>,
}

impl WorkflowSpec {
    /// Parses and checks a workflow file.
    pub fn parse(source: Source, tasks: &TaskRegistry) -> Result<Self, SpecError> {
        let doc = yaml::parse(&source)?;
        let src = &source;
        let top = Fields::new(src, &doc, "the workflow", TOP_KEYS)?;
        if let Some(v) = top.get("version") {
            let version = crate::fields::expect_u32(src, v, "version")?;
            if version != WORKFLOW_VERSION {
                return Err(SpecError::at(
                    src,
                    v.span,
                    format!("unsupported workflow version {version}"),
                    format!(
                        "this flow reads version {WORKFLOW_VERSION}; upgrade flow or write `version: {WORKFLOW_VERSION}`"
                    ),
                ));
            }
        }
        let executor = top.string("executor")?;
        if let Some((name, span)) = &executor {
            check_choice(src, *span, "executor", name, EXECUTORS)?;
        }
        let Some(nodes_yaml) = top.get("nodes") else {
            return Err(SpecError::at(
                src,
                Span::default(),
                "the workflow has no `nodes:`",
                "add a `nodes:` mapping from node names to their definitions",
            ));
        };
        let entries = expect_map(src, nodes_yaml, "nodes")?;
        if entries.is_empty() {
            return Err(SpecError::at(
                src,
                nodes_yaml.span,
                "the workflow has no nodes",
                "define at least one node under `nodes:`",
            ));
        }
        let slurm = match top.get("slurm") {
            Some(v) => crate::slurm_config::read_section(src, v, "slurm")?,
            None => Default::default(),
        };
        let mut nodes = Vec::with_capacity(entries.len());
        for (key, body) in entries {
            nodes.push(parse_node(src, key, body, tasks)?);
        }
        let spec = WorkflowSpec {
            source,
            executor,
            slurm,
            nodes,
        };
        spec.check_references()?;
        spec.check_cycles()?;
        Ok(spec)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn check_references(&self) -> Result<(), SpecError> {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        for node in &self.nodes {
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for r in node.needs.iter().chain(&node.gather) {
                if r.name == node.name {
                    return Err(SpecError::at(
                        &self.source,
                        r.span,
                        format!("node `{}` refers to itself", node.name),
                        "a node cannot depend on its own outputs; remove the reference",
                    ));
                }
                if !names.contains(&r.name.as_str()) {
                    return Err(SpecError::at(
                        &self.source,
                        r.span,
                        format!("unknown node `{}`", r.name),
                        choices_help(&r.name, &names),
                    ));
                }
                if let Some(first) = seen.insert(&r.name, r.span) {
                    return Err(SpecError::at(
                        &self.source,
                        r.span,
                        format!("node `{}` is referenced twice", r.name),
                        "list each upstream node once, under either `needs:` or `gather:`",
                    )
                    .with_label(first, "first referenced here"));
                }
            }
        }
        Ok(())
    }

    /// Rejects cycles, naming every node on one.
    fn check_cycles(&self) -> Result<(), SpecError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let upstream = |i: usize| -> Vec<(usize, Span)> {
            self.nodes[i]
                .needs
                .iter()
                .chain(&self.nodes[i].gather)
                .map(|r| (index[r.name.as_str()], r.span))
                .collect()
        };
        let mut marks = vec![Mark::New; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative DFS; `path` holds the active chain with the reference that led on.
            let mut path: Vec<(usize, Vec<(usize, Span)>)> = vec![(start, upstream(start))];
            marks[start] = Mark::Active;
            while let Some((node, pending)) = path.last_mut() {
                let node = *node;
                match pending.pop() {
                    None => {
                        marks[node] = Mark::Done;
                        path.pop();
                    }
                    Some((next, span)) => match marks[next] {
                        Mark::Done => {}
                        Mark::New => {
                            marks[next] = Mark::Active;
                            path.push((next, upstream(next)));
                        }
                        Mark::Active => {
                            let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut names: Vec<&str> = path[from..]
                                .iter()
                                .map(|(n, _)| self.nodes[*n].name.as_str())
                                .collect();
                            names.push(&self.nodes[next].name);
                            return Err(SpecError::at(
                                &self.source,
                                span,
                                format!("dependency cycle: {}", names.join(" -> ")),
                                "`x -> y` reads `x` needs `y`; remove one of these references so the nodes can run in order",
                            ));
                        }
                    },
                }
            }
        }
        Ok(())
    }
}

fn check_choice(
    source: &Source,
    span: Span,
    what: &str,
    value: &str,
    choices: &[&str],
) -> Result<(), SpecError> {
    if choices.contains(&value) {
        return Ok(());
    }
    Err(SpecError::at(
        source,
        span,
        format!("unknown {what} `{value}`"),
        choices_help(value, choices),
    ))
}

fn parse_node(
    src: &Source,
    key: &Yaml,
    body: &Yaml,
    tasks: &TaskRegistry,
) -> Result<NodeSpec, SpecError> {
    let name = key_text(key).to_string();
    check_node_name(src, &name, key.span)?;
    let what = format!("node `{name}`");
    // First pass: find the task kind, which decides the allowed keys.
    let loose = expect_map(src, body, &what)?;
    let (task_name, task_span) = match loose.iter().find(|(k, _)| key_text(k) == "task") {
        Some((_, v)) => (crate::fields::expect_string(src, v, "task")?, v.span),
        None => ("shell".to_string(), key.span),
    };
    let Some(kind) = tasks.get(&task_name) else {
        return Err(SpecError::at(
            src,
            task_span,
            format!("unknown task kind `{task_name}`"),
            choices_help(&task_name, &tasks.names()),
        ));
    };
    let mut allowed: Vec<&str> = NODE_KEYS.to_vec();
    allowed.extend_from_slice(kind.keys());
    let fields = Fields::new(src, body, &what, &allowed)?;
    let template = kind.parse(&fields)?;

    let mut params = BTreeMap::new();
    if let Some(p) = fields.get("params") {
        flatten_params(src, p, "", &mut params)?;
    }
    let matrix = match fields.get("matrix") {
        Some(m) => parse_matrix(src, m)?,
        None => Vec::new(),
    };
    let include = parse_combinations(src, fields.get("include"), "include")?;
    let exclude = parse_combinations(src, fields.get("exclude"), "exclude")?;
    check_combinations(src, &matrix, &include, &exclude)?;
    let refs = |field: &str| -> Result<Vec<NodeRef>, SpecError> {
        Ok(fields
            .strings(field)?
            .into_iter()
            .map(|(name, span)| NodeRef { name, span })
            .collect())
    };
    let needs = refs("needs")?;
    let gather = refs("gather")?;
    let resources = match fields.get("resources") {
        Some(r) => {
            let res = Fields::new(src, r, "resources", crate::slurm_config::RESOURCE_KEYS)?;
            crate::slurm_config::read_resources(&res)?
        }
        None => crate::slurm::Resources::default(),
    };
    let gpus = resources.gpus.unwrap_or(0);
    let executor = fields.string("executor")?;
    if let Some((e, span)) = &executor {
        check_choice(src, *span, "executor", e, EXECUTORS)?;
    }
    Ok(NodeSpec {
        name,
        name_span: key.span,
        task: task_name,
        task_version: kind.version(),
        params,
        matrix,
        include,
        exclude,
        needs,
        gather,
        gpus,
        resources,
        executor: executor.map(|(e, _)| e),
        template,
    })
}

fn check_node_name(src: &Source, name: &str, span: Span) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        return Ok(());
    }
    Err(SpecError::at(
        src,
        span,
        format!("invalid node name `{name}`"),
        "node names use letters, digits, `_` and `-` (they appear in ids, file names and job names)",
    ))
}

fn leaf(src: &Source, node: &Yaml) -> Param {
    let text = match &node.kind {
        YamlKind::Scalar(s) => s.text.clone(),
        _ => src.text[node.span.offset..node.span.offset + node.span.len]
            .trim()
            .to_string(),
    };
    Param {
        value: Value::from_yaml(node),
        text,
        span: node.span,
    }
}

fn flatten_params(
    src: &Source,
    node: &Yaml,
    prefix: &str,
    out: &mut BTreeMap<String, Param>,
) -> Result<(), SpecError> {
    let entries = expect_map(src, node, if prefix.is_empty() { "params" } else { prefix })?;
    for (k, v) in entries {
        let name = key_text(k);
        check_dotted_key(src, name, k.span)?;
        let full = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        match &v.kind {
            YamlKind::Map(m) if !m.is_empty() => flatten_params(src, v, &full, out)?,
            _ => {
                let clash = out
                    .keys()
                    .find(|k| is_prefix_of(k, &full) || is_prefix_of(&full, k))
                    .cloned();
                if let Some(other) = clash {
                    return Err(SpecError::at(
                        src,
                        k.span,
                        format!("parameter `{full}` is given twice (also as `{other}`)"),
                        "write each parameter once, either nested or as a dotted key",
                    )
                    .with_label(out[&other].span, "also given here"));
                }
                out.insert(full, leaf(src, v));
            }
        }
    }
    Ok(())
}

/// True when `a` equals `b` or is a dotted ancestor of it.
fn is_prefix_of(a: &str, b: &str) -> bool {
    b == a || (b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.'))
}

fn check_dotted_key(src: &Source, key: &str, span: Span) -> Result<(), SpecError> {
    let ok = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if ok {
        return Ok(());
    }
    Err(SpecError::at(
        src,
        span,
        format!("invalid parameter key `{key}`"),
        "parameter keys are dotted names such as `training.lr` (letters, digits, `_`, `-`)",
    ))
}

fn scalar_value(src: &Source, node: &Yaml, what: &str) -> Result<MatrixValue, SpecError> {
    if node.as_scalar().is_none() || node.is_null() {
        return Err(type_error(src, node, what, "a number, string or boolean"));
    }
    Ok(leaf(src, node))
}

fn parse_matrix(src: &Source, node: &Yaml) -> Result<Vec<Axis>, SpecError> {
    let entries = expect_map(src, node, "matrix")?;
    if entries.is_empty() {
        return Err(SpecError::at(
            src,
            node.span,
            "empty matrix",
            "give `matrix:` at least one key with a list of values, or remove it",
        ));
    }
    let mut axes = Vec::new();
    for (k, v) in entries {
        let key = key_text(k).to_string();
        check_dotted_key(src, &key, k.span)?;
        let items = v
            .as_seq()
            .ok_or_else(|| type_error(src, v, &format!("matrix.{key}"), "a list of values"))?;
        if items.is_empty() {
            return Err(SpecError::at(
                src,
                v.span,
                format!("empty matrix axis `{key}`"),
                "give the axis at least one value, or remove it",
            ));
        }
        let mut values: Vec<MatrixValue> = Vec::new();
        // Canonical form -> index, so duplicate detection stays linear for big sweeps.
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
        for item in items {
            let value = scalar_value(src, item, &format!("matrix.{key}"))?;
            let canonical = serde_json::to_string(&value.value).unwrap_or_default();
            if let Some(first) = seen.get(&canonical).map(|&i| &values[i]) {
                return Err(SpecError::at(
                    src,
                    item.span,
                    format!(
                        "duplicate matrix value `{}` for `{key}` (equal to `{}`)",
                        value.text, first.text
                    ),
                    "each value of an axis must be distinct; numbers are compared by value",
                )
                .with_label(first.span, "same value here"));
            }
            seen.insert(canonical, values.len());
            values.push(value);
        }
        axes.push(Axis {
            key,
            key_span: k.span,
            values,
        });
    }
    Ok(axes)
}

fn parse_combinations(
    src: &Source,
    node: Option<&Yaml>,
    what: &str,
) -> Result<Vec<Combination>, SpecError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let items = node
        .as_seq()
        .ok_or_else(|| type_error(src, node, what, "a list of mappings"))?;
    let mut out = Vec::new();
    for item in items {
        let entries = item
            .as_map()
            .ok_or_else(|| type_error(src, item, what, "a mapping of matrix keys to values"))?;
        if entries.is_empty() {
            return Err(SpecError::at(
                src,
                item.span,
                format!("empty `{what}` entry"),
                "name at least one matrix key and its value",
            ));
        }
        let mut combo = Vec::new();
        for (k, v) in entries {
            let key = key_text(k).to_string();
            check_dotted_key(src, &key, k.span)?;
            combo.push((key.clone(), k.span, scalar_value(src, v, &key)?));
        }
        out.push(Combination {
            span: item.span,
            entries: combo,
        });
    }
    Ok(out)
}

fn check_combinations(
    src: &Source,
    matrix: &[Axis],
    include: &[Combination],
    exclude: &[Combination],
) -> Result<(), SpecError> {
    // Without a matrix, the first include entry defines the axes.
    let axes: Vec<&str> = if matrix.is_empty() {
        include
            .first()
            .map(|c| c.entries.iter().map(|(k, _, _)| k.as_str()).collect())
            .unwrap_or_default()
    } else {
        matrix.iter().map(|a| a.key.as_str()).collect()
    };
    for combo in include {
        for (key, span, _) in &combo.entries {
            if !axes.contains(&key.as_str()) {
                return Err(SpecError::at(
                    src,
                    *span,
                    format!("`include` names `{key}`, which is not a matrix key"),
                    choices_help(key, &axes),
                ));
            }
        }
        let missing: Vec<&str> = axes
            .iter()
            .filter(|a| !combo.entries.iter().any(|(k, _, _)| k == *a))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(SpecError::at(
                src,
                combo.span,
                format!("`include` entry lacks {}", missing.join(", ")),
                "an include entry gives a value for every matrix key",
            ));
        }
    }
    if !exclude.is_empty() && matrix.is_empty() && include.is_empty() {
        return Err(SpecError::at(
            src,
            exclude[0].span,
            "`exclude` without a matrix",
            "add a `matrix:` for `exclude:` to remove combinations from",
        ));
    }
    for combo in exclude {
        for (key, span, _) in &combo.entries {
            if !axes.contains(&key.as_str()) {
                return Err(SpecError::at(
                    src,
                    *span,
                    format!("`exclude` names `{key}`, which is not a matrix key"),
                    choices_help(key, &axes),
                ));
            }
        }
    }
    Ok(())
}
