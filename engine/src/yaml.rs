//! A YAML document tree that remembers where every value was written.
//!
//! serde-based YAML crates lose positions once a value is deserialized; every error flow
//! reports must point at `file:line:col`, so workflow files are read into this tree from the
//! parser's event stream and validated by hand. Loading is bounded: aliases are expanded
//! against a node budget and nesting against a depth limit, so an alias bomb or a deeply
//! nested document is refused quickly in bounded memory.

use std::collections::HashMap;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::SpecError;

/// Most values a document may expand to, aliases included.
pub const MAX_NODES: usize = 200_000;
/// Deepest nesting of mappings and sequences a document may have.
pub const MAX_DEPTH: usize = 64;

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> Self {
        SourceSpan::new(s.offset.into(), s.len)
    }
}

/// A source file kept for error rendering.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The source in the form miette renders snippets from.
    pub fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.name.clone(), self.text.clone()).with_language("yaml")
    }
}

/// A scalar as written, before any interpretation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The scalar's text as written, without quotes.
    pub text: String,
    /// Quoted and block scalars are always strings.
    pub quoted: bool,
}

/// One value of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum YamlKind {
    Scalar(Scalar),
    Seq(Vec<Yaml>),
    /// Entries in document order; duplicate keys are rejected while loading.
    Map(Vec<(Yaml, Yaml)>),
}

/// A value and the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub kind: YamlKind,
    pub span: Span,
}

impl Yaml {
    /// What the value is, in words, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            YamlKind::Scalar(s) if s.quoted => "a string",
            YamlKind::Scalar(s) => match crate::value::Value::from_plain(&s.text) {
                crate::value::Value::Null => "null",
                crate::value::Value::Bool(_) => "a boolean",
                crate::value::Value::Int(_) | crate::value::Value::Float(_) => "a number",
                _ => "a string",
            },
            YamlKind::Seq(_) => "a list",
            YamlKind::Map(_) => "a mapping",
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            YamlKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.kind {
            YamlKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Yaml]> {
        match &self.kind {
            YamlKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// True for an explicit or empty null.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, YamlKind::Scalar(s) if !s.quoted && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    fn count(&self) -> usize {
        match &self.kind {
            YamlKind::Scalar(_) => 1,
            YamlKind::Seq(items) => 1 + items.iter().map(Yaml::count).sum::<usize>(),
            YamlKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Parses one YAML document. An empty file is an empty mapping.
pub fn parse(source: &Source) -> Result<Yaml, SpecError> {
    let mut parser = Parser::new_from_str(&source.text);
    let mut builder = Builder::new(source);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| builder.syntax_error(e.marker(), e.info()))?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart if builder.documents > 0 => {
                return Err(SpecError::at(
                    source,
                    builder.span_at(&mark, 3),
                    "a second YAML document in one file",
                    "flow reads one document per file: remove the `---` and what follows, or move it to its own file",
                ));
            }
            Event::DocumentStart => builder.documents += 1,
            other => builder.push(other, &mark)?,
        }
    }
    Ok(builder.root.unwrap_or(Yaml {
        kind: YamlKind::Map(Vec::new()),
        span: Span::default(),
    }))
}

enum Frame {
    Seq {
        anchor: usize,
        start: usize,
        items: Vec<Yaml>,
    },
    Map {
        anchor: usize,
        start: usize,
        entries: Vec<(Yaml, Yaml)>,
        pending_key: Option<Yaml>,
    },
}

struct Builder<'a> {
    source: &'a Source,
    /// ASCII text has byte offsets equal to character indices (checked once, not per event).
    ascii: bool,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Yaml>,
    root: Option<Yaml>,
    nodes: usize,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(source: &'a Source) -> Self {
        Builder {
            source,
            ascii: source.text.is_ascii(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            nodes: 0,
            documents: 0,
        }
    }

    /// yaml-rust2 reports character indices; miette wants byte offsets.
    fn byte_offset(&self, mark: &Marker) -> usize {
        let idx = mark.index();
        let text = &self.source.text;
        if self.ascii {
            return idx.min(text.len());
        }
        text.char_indices()
            .nth(idx)
            .map(|(b, _)| b)
            .unwrap_or(text.len())
    }

    fn span_at(&self, mark: &Marker, len: usize) -> Span {
        let offset = self.byte_offset(mark);
        let len = len.min(self.source.text.len().saturating_sub(offset));
        Span { offset, len }
    }

    fn syntax_error(&self, mark: &Marker, info: &str) -> SpecError {
        let span = self.span_at(mark, 1);
        SpecError::at(
            self.source,
            span,
            format!("invalid YAML: {info}"),
            "check the indentation and quoting near the marked position",
        )
    }

    fn budget(&mut self, added: usize, span: Span) -> Result<(), SpecError> {
        self.nodes += added;
        if self.nodes > MAX_NODES {
            return Err(SpecError::at(
                self.source,
                span,
                format!("document expands to more than {MAX_NODES} values"),
                "this looks like an alias bomb; write the values out or reduce the aliases",
            ));
        }
        Ok(())
    }

    fn push(&mut self, event: Event, mark: &Marker) -> Result<(), SpecError> {
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = style != TScalarStyle::Plain;
                let written = match style {
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => text.len() + 2,
                    _ => text.len().max(1),
                };
                let span = self.span_at(mark, written);
                self.budget(1, span)?;
                let node = Yaml {
                    kind: YamlKind::Scalar(Scalar { text, quoted }),
                    span,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.insert(node)
            }
            Event::Alias(id) => {
                let span = self.span_at(mark, 1);
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(SpecError::at(
                        self.source,
                        span,
                        "alias refers to an unknown anchor",
                        "define the anchor (`&name`) before using it (`*name`)",
                    ));
                };
                let count = target.count();
                self.budget(count, span)?;
                let mut node = target;
                node.span = span;
                self.insert(node)
            }
            Event::SequenceStart(anchor, _) => {
                let start = self.byte_offset(mark);
                self.open(
                    Frame::Seq {
                        anchor,
                        start,
                        items: Vec::new(),
                    },
                    mark,
                )
            }
            Event::MappingStart(anchor, _) => {
                let start = self.byte_offset(mark);
                self.open(
                    Frame::Map {
                        anchor,
                        start,
                        entries: Vec::new(),
                        pending_key: None,
                    },
                    mark,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let end = self.byte_offset(mark);
                let frame = self.stack.pop().expect("parser balances collections");
                let (anchor, start, kind) = match frame {
                    Frame::Seq {
                        anchor,
                        start,
                        items,
                    } => (anchor, start, YamlKind::Seq(items)),
                    Frame::Map {
                        anchor,
                        start,
                        entries,
                        ..
                    } => (anchor, start, YamlKind::Map(entries)),
                };
                let node = Yaml {
                    kind,
                    span: Span {
                        offset: start,
                        len: end.saturating_sub(start).max(1),
                    },
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.insert(node)
            }
            _ => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame, mark: &Marker) -> Result<(), SpecError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SpecError::at(
                self.source,
                self.span_at(mark, 1),
                format!("document is nested deeper than {MAX_DEPTH} levels"),
                "flatten the document; workflows never need this much nesting",
            ));
        }
        let span = self.span_at(mark, 1);
        self.budget(1, span)?;
        self.stack.push(frame);
        Ok(())
    }

    fn insert(&mut self, node: Yaml) -> Result<(), SpecError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    if !matches!(node.kind, YamlKind::Scalar(_)) {
                        return Err(SpecError::at(
                            self.source,
                            node.span,
                            "a mapping key must be a plain value",
                            "use a string as the key",
                        ));
                    }
                    *pending_key = Some(node);
                    Ok(())
                }
                Some(key) => {
                    let name = key.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
                    if let Some((first, _)) = entries
                        .iter()
                        .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == name))
                    {
                        return Err(SpecError::duplicate_key(
                            self.source,
                            &name,
                            first.span,
                            key.span,
                        ));
                    }
                    entries.push((key, node));
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Yaml, SpecError> {
        parse(&Source::new("t.yaml", text))
    }

    #[test]
    fn spans_point_at_values() {
        let text = "a: 1\nb:\n  c: 'x y'\n";
        let doc = load(text).unwrap();
        let map = doc.as_map().unwrap();
        let (_, b) = &map[1];
        let (ck, cv) = &b.as_map().unwrap()[0];
        assert_eq!(&text[ck.span.offset..ck.span.offset + ck.span.len], "c");
        assert_eq!(&text[cv.span.offset..cv.span.offset + cv.span.len], "'x y'");
    }

    #[test]
    fn non_ascii_spans_are_byte_offsets() {
        let text = "é: ü\nkey: value\n";
        let doc = load(text).unwrap();
        let (k, _) = &doc.as_map().unwrap()[1];
        assert_eq!(&text[k.span.offset..k.span.offset + k.span.len], "key");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = load("a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = load(&text).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = load(&flow).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let mut block = String::new();
        for depth in 0..100 {
            block.push_str(&format!("{}k:\n", "  ".repeat(depth)));
        }
        let err = load(&block).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 64"), "{err}");
    }

    #[test]
    fn aliases_expand_within_budget() {
        let doc = load("a: &x {k: 1}\nb: *x\n").unwrap();
        let map = doc.as_map().unwrap();
        assert_eq!(map[0].1.kind, map[1].1.kind);
    }
}
