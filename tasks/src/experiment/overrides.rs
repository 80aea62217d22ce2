//! A config with a workflow node's parameters and matrix values laid over it.
//!
//! Overrides are applied to the config's document and the result is loaded again, so an
//! overridden value is checked exactly like one written in the config; a mistake is then
//! reported at the override in the workflow, which is where it was made.

use std::collections::BTreeMap;

use flow_engine::diagnostic::{SpecError, choices_help};
use flow_engine::value::Value;
use flow_engine::workflow::Param;
use flow_engine::yaml::{Scalar, Source, Span, Yaml, YamlKind, parse};

use super::config::ExperimentConfig;
use super::load::{known_keys, load_tree};

/// Loads `config` with `overrides` (dotted keys, from `workflow`) applied.
///
/// Errors in the config itself point into the config; errors caused by an override point at
/// the override.
pub fn load_with_overrides(
    config: &Source,
    overrides: &BTreeMap<String, Param>,
    workflow: &Source,
) -> Result<ExperimentConfig, SpecError> {
    let root = parse(config)?;
    let base = load_tree(config, &root)?;
    if overrides.is_empty() {
        return Ok(base);
    }
    let known = known_keys();
    for (key, param) in overrides {
        if !known.iter().any(|k| k == key) {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(SpecError::at(
                workflow,
                param.span,
                format!("`{key}` is not a key of experiment configs"),
                choices_help(key, &names),
            ));
        }
    }
    let mut tree = root.clone();
    for (key, param) in overrides {
        set_path(&mut tree, key, to_yaml(&param.value));
    }
    match load_tree(config, &tree) {
        Ok(cfg) => Ok(cfg),
        // Blame the first override after which the config no longer loads.
        Err(all) => {
            let mut tree = root;
            for (key, param) in overrides {
                set_path(&mut tree, key, to_yaml(&param.value));
                if let Err(e) = load_tree(config, &tree) {
                    return Err(SpecError::at(
                        workflow,
                        param.span,
                        format!(
                            "{} (with `{key}: {}` laid over {})",
                            e.message, param.text, config.name
                        ),
                        e.help.unwrap_or_default(),
                    ));
                }
            }
            Err(all)
        }
    }
}

const NOWHERE: Span = Span { offset: 0, len: 0 };

fn scalar(text: String, quoted: bool) -> Yaml {
    Yaml {
        kind: YamlKind::Scalar(Scalar { text, quoted }),
        span: NOWHERE,
    }
}

/// The document node a loader reads back as `value`.
fn to_yaml(value: &Value) -> Yaml {
    match value {
        Value::Str(s) => {
            // Quoted when the plain text would read as something else (`"1e-4"`, `"true"`).
            let quoted = !matches!(Value::from_plain(s), Value::Str(_));
            scalar(s.clone(), quoted)
        }
        Value::List(items) => Yaml {
            kind: YamlKind::Seq(items.iter().map(to_yaml).collect()),
            span: NOWHERE,
        },
        Value::Map(map) => Yaml {
            kind: YamlKind::Map(
                map.iter()
                    .map(|(k, v)| (scalar(k.clone(), false), to_yaml(v)))
                    .collect(),
            ),
            span: NOWHERE,
        },
        Value::Null => scalar("null".to_string(), false),
        other => scalar(other.to_text(), false),
    }
}

/// Sets `a.b.c` in a mapping document, creating the mappings on the way.
fn set_path(node: &mut Yaml, path: &str, value: Yaml) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    if !matches!(node.kind, YamlKind::Map(_)) {
        node.kind = YamlKind::Map(Vec::new());
    }
    let YamlKind::Map(entries) = &mut node.kind else {
        unreachable!("made a mapping above");
    };
    let pos = entries
        .iter()
        .position(|(k, _)| k.as_scalar().is_some_and(|s| s.text == head));
    let slot = match pos {
        Some(i) => &mut entries[i].1,
        None => {
            entries.push((
                scalar(head.to_string(), false),
                Yaml {
                    kind: YamlKind::Map(Vec::new()),
                    span: NOWHERE,
                },
            ));
            &mut entries.last_mut().expect("just pushed").1
        }
    };
    match rest {
        Some(rest) => set_path(slot, rest, value),
        None => *slot = value,
    }
}
