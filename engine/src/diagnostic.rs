//! Errors in files users write, carrying the source so the CLI can show the offending line.

use std::sync::Arc;

use miette::{LabeledSpan, NamedSource};

use crate::yaml::{Source, Span};

/// A mistake in a workflow or config file, located at one or more spans of the file.
///
/// Every check of user input ends in one of these so the message always names the file,
/// line and column, says what was expected and how to fix it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct SpecError {
    pub message: String,
    #[source_code]
    pub src: NamedSource<Arc<str>>,
    #[label(collection)]
    pub labels: Vec<LabeledSpan>,
    #[help]
    pub help: Option<String>,
    /// File name and 1-based line and column of the primary span, for plain-text output.
    pub location: String,
}

impl SpecError {
    /// An error at one span with the fix in `help`.
    pub fn at(
        source: &Source,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        let message = message.into();
        let help = help.into();
        SpecError {
            location: location(source, span),
            labels: vec![LabeledSpan::new_primary_with_span(
                Some(short_label(&message)),
                span,
            )],
            src: source.named(),
            message,
            help: (!help.is_empty()).then_some(help),
        }
    }

    /// Adds a secondary label, e.g. the first definition of a duplicate.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels
            .push(LabeledSpan::new_with_span(Some(label.into()), span));
        self
    }

    pub fn duplicate_key(source: &Source, name: &str, first: Span, second: Span) -> Self {
        SpecError::at(
            source,
            second,
            format!("duplicate key `{name}`"),
            "each key may appear once in a mapping; remove or rename one of them",
        )
        .with_label(first, "first defined here")
    }
}

fn short_label(message: &str) -> String {
    message.split(':').next().unwrap_or(message).to_string()
}

/// `file:line:col` for a span, 1-based.
pub fn location(source: &Source, span: Span) -> String {
    let before = &source.text[..span.offset.min(source.text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before[i + 1..].chars().count() + 1)
        .unwrap_or(before.chars().count() + 1);
    format!("{}:{line}:{col}", source.name)
}

/// The closest candidate to a misspelt name, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A help line listing the valid choices and, when one is close, the likely intended one.
pub fn choices_help(name: &str, candidates: &[&str]) -> String {
    let list = candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(name, candidates.iter().copied()) {
        Some(best) => format!("did you mean `{best}`? expected one of {list}"),
        None if candidates.is_empty() => String::new(),
        None => format!("expected one of {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("ouputs", ["inputs", "outputs", "run"]),
            Some("outputs")
        );
        assert_eq!(did_you_mean("zzz", ["inputs", "outputs", "run"]), None);
    }

    #[test]
    fn location_is_one_based() {
        let s = Source::new("f.yaml", "a: 1\nbb: 2\n");
        assert_eq!(location(&s, Span { offset: 5, len: 2 }), "f.yaml:2:1");
        assert_eq!(location(&s, Span { offset: 9, len: 1 }), "f.yaml:2:5");
    }
}
