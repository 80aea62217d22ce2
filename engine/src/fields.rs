//! Typed, located reads of mapping fields, with "did you mean" for unknown keys.

use crate::diagnostic::{SpecError, choices_help};
use crate::yaml::{Source, Span, Yaml, YamlKind};

/// A mapping of a document, checked against the keys it may contain.
pub struct Fields<'a> {
    pub source: &'a Source,
    pub node: &'a Yaml,
    entries: &'a [(Yaml, Yaml)],
}

impl<'a> Fields<'a> {
    /// Reads `node` as a mapping whose keys must all be in `allowed`.
    pub fn new(
        source: &'a Source,
        node: &'a Yaml,
        what: &str,
        allowed: &[&str],
    ) -> Result<Self, SpecError> {
        let entries = expect_map(source, node, what)?;
        for (key, _) in entries {
            let name = key_text(key);
            if !allowed.contains(&name) {
                return Err(SpecError::at(
                    source,
                    key.span,
                    format!("unknown key `{name}` in {what}"),
                    choices_help(name, allowed),
                ));
            }
        }
        Ok(Fields {
            source,
            node,
            entries,
        })
    }

    pub fn get(&self, name: &str) -> Option<&'a Yaml> {
        self.entries
            .iter()
            .find(|(k, _)| key_text(k) == name)
            .map(|(_, v)| v)
    }

    pub fn string(&self, name: &str) -> Result<Option<(String, Span)>, SpecError> {
        self.get(name)
            .map(|v| expect_string(self.source, v, name).map(|s| (s, v.span)))
            .transpose()
    }

    pub fn u32(&self, name: &str) -> Result<Option<(u32, Span)>, SpecError> {
        self.get(name)
            .map(|v| expect_u32(self.source, v, name).map(|n| (n, v.span)))
            .transpose()
    }

    /// A list of strings; a single string is accepted as a list of one.
    pub fn strings(&self, name: &str) -> Result<Vec<(String, Span)>, SpecError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) if v.is_null() => Ok(Vec::new()),
            Some(
                v @ Yaml {
                    kind: YamlKind::Scalar(_),
                    ..
                },
            ) => Ok(vec![(expect_string(self.source, v, name)?, v.span)]),
            Some(v) => {
                let items = v
                    .as_seq()
                    .ok_or_else(|| type_error(self.source, v, name, "a list of strings"))?;
                items
                    .iter()
                    .map(|i| expect_string(self.source, i, name).map(|s| (s, i.span)))
                    .collect()
            }
        }
    }
}

pub fn key_text(key: &Yaml) -> &str {
    key.as_scalar().map(|s| s.text.as_str()).unwrap_or("")
}

pub fn type_error(source: &Source, node: &Yaml, what: &str, expected: &str) -> SpecError {
    SpecError::at(
        source,
        node.span,
        format!(
            "wrong type for `{what}`: expected {expected}, found {}",
            node.type_name()
        ),
        format!("write `{what}` as {expected}"),
    )
}

pub fn expect_map<'a>(
    source: &Source,
    node: &'a Yaml,
    what: &str,
) -> Result<&'a [(Yaml, Yaml)], SpecError> {
    if node.is_null() {
        return Ok(&[]);
    }
    node.as_map()
        .ok_or_else(|| type_error(source, node, what, "a mapping"))
}

pub fn expect_string(source: &Source, node: &Yaml, what: &str) -> Result<String, SpecError> {
    match &node.kind {
        YamlKind::Scalar(s) if !node.is_null() => Ok(s.text.clone()),
        _ => Err(type_error(source, node, what, "a string")),
    }
}

pub fn expect_u32(source: &Source, node: &Yaml, what: &str) -> Result<u32, SpecError> {
    match &node.kind {
        YamlKind::Scalar(s) if !s.quoted => s
            .text
            .parse::<u32>()
            .map_err(|_| type_error(source, node, what, "a non-negative whole number")),
        _ => Err(type_error(
            source,
            node,
            what,
            "a non-negative whole number",
        )),
    }
}
