//! `{placeholder}` substitution in commands and paths.
//!
//! In commands every substituted value is shell-quoted, so no parameter value can change the
//! shape of a command; in paths values are substituted as they are.

use shell_quote::Sh;

use crate::diagnostic::{SpecError, choices_help};
use crate::task::Template;
use crate::yaml::{Source, Span};

/// What a placeholder resolves to.
pub enum Resolved {
    /// One value: quoted as one word in commands.
    One(String),
    /// Several paths: each quoted, joined by spaces in commands; refused in paths.
    Many(Vec<String>),
}

/// Resolves placeholder names; `None` means unknown, `Some(Err(why))` means known but unusable.
pub trait Scope {
    fn resolve(&self, name: &str) -> Option<Result<Resolved, String>>;
    /// Names to suggest when a placeholder is unknown.
    fn names(&self) -> Vec<String>;
}

/// Where substituted values go, which decides how they are quoted.
#[derive(Clone, Copy, PartialEq)]
pub enum Target {
    Command,
    Path,
}

/// Quotes one word for `sh`.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    quote_into(s, &mut out);
    out
}

/// Appends `s` quoted for `sh` (as [`quote`]) to `out`.
fn quote_into(s: &str, out: &mut String) {
    if s.is_empty() {
        out.push_str("''");
    } else if s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-./,:+@".contains(&b))
    {
        // What `Sh` leaves as it is anyway (pinned by a test): no copy through a buffer.
        out.push_str(s);
    } else {
        out.push_str(&String::from_utf8_lossy(&Sh::quote_vec(s)));
    }
}

/// Substitutes every placeholder of `template`.
pub fn render(
    source: &Source,
    template: &Template,
    scope: &dyn Scope,
    target: Target,
) -> Result<String, SpecError> {
    let text = &template.text;
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text.as_str();
    let mut pos = 0;
    while let Some(i) = rest.bytes().position(|b| b == b'{' || b == b'}') {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            pos += i + 2;
            continue;
        }
        if c == b'}' {
            return Err(SpecError::at(
                source,
                sub_span(template, pos + i, 1),
                "unmatched `}` in template",
                "write `}}` for a literal brace",
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(SpecError::at(
                source,
                sub_span(template, pos + i, 1),
                "unclosed `{` in template",
                "close the placeholder with `}`, or write `{{` for a literal brace",
            ));
        };
        let name = after[..end].trim();
        let span = sub_span(template, pos + i, end + 2);
        match scope.resolve(name) {
            None => {
                let names = scope.names();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                return Err(SpecError::at(
                    source,
                    span,
                    format!("unknown placeholder `{{{name}}}`"),
                    choices_help(name, &refs),
                ));
            }
            Some(Err(why)) => {
                return Err(SpecError::at(
                    source,
                    span,
                    format!("placeholder `{{{name}}}` cannot be used here"),
                    why,
                ));
            }
            Some(Ok(Resolved::One(v))) => match target {
                Target::Command => quote_into(&v, &mut out),
                Target::Path => out.push_str(&v),
            },
            Some(Ok(Resolved::Many(vs))) => match target {
                Target::Command => {
                    for (k, v) in vs.iter().enumerate() {
                        if k > 0 {
                            out.push(' ');
                        }
                        quote_into(v, &mut out);
                    }
                }
                Target::Path => {
                    return Err(SpecError::at(
                        source,
                        span,
                        format!("placeholder `{{{name}}}` stands for several paths"),
                        "paths may only use single values such as parameters or `{instance}`",
                    ));
                }
            },
        }
        rest = &after[end + 1..];
        pos += i + end + 2;
    }
    out.push_str(rest);
    Ok(out)
}

/// The span of a part of a template, exact when the template was written on one line.
fn sub_span(template: &Template, at: usize, len: usize) -> Span {
    let written = template.span.len;
    let text = template.text.len();
    let shift = if written == text {
        Some(0)
    } else if written == text + 2 {
        Some(1)
    } else {
        None
    };
    match shift {
        Some(s) if !template.text.contains('\n') => Span {
            offset: template.span.offset + s + at,
            len,
        },
        _ => template.span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vars;
    impl Scope for Vars {
        fn resolve(&self, name: &str) -> Option<Result<Resolved, String>> {
            match name {
                "lr" => Some(Ok(Resolved::One("1e-4".into()))),
                "evil" => Some(Ok(Resolved::One("x'; rm -rf / #\nls".into()))),
                "outputs" => Some(Ok(Resolved::Many(vec!["a b".into(), "c".into()]))),
                _ => None,
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["lr".into(), "outputs".into()]
        }
    }

    fn tpl(s: &str) -> Template {
        Template {
            text: s.into(),
            span: Span {
                offset: 0,
                len: s.len(),
            },
        }
    }

    fn src(s: &str) -> Source {
        Source::new("t", s)
    }

    #[test]
    fn commands_quote_values() {
        let t = "run --lr {lr} {outputs} {{x}}";
        let out = render(&src(t), &tpl(t), &Vars, Target::Command).unwrap();
        assert_eq!(out, "run --lr 1e-4 a' b' c {x}");
    }

    #[test]
    fn the_fast_path_quotes_as_sh_does() {
        let safe = "abcXYZ019_-./,:+@";
        for c in safe.chars() {
            let s = c.to_string();
            assert_eq!(
                quote(&s),
                String::from_utf8_lossy(&Sh::quote_vec(&s)),
                "{c}"
            );
        }
        for s in [
            safe,
            "out/train/12.txt",
            "lr=1e-4,b=2",
            "50%",
            "a b",
            "it's",
            "x\ny",
            "é",
            "$HOME",
        ] {
            assert_eq!(quote(s), String::from_utf8_lossy(&Sh::quote_vec(s)), "{s}");
        }
    }

    #[test]
    fn hostile_values_stay_one_word() {
        let t = "echo {evil}";
        let out = render(&src(t), &tpl(t), &Vars, Target::Command).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", &out["echo ".len()..]))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&status.stdout),
            "x'; rm -rf / #\nls"
        );
    }

    #[test]
    fn unknown_placeholders_suggest() {
        let t = "run {lrr}";
        let err = render(&src(t), &tpl(t), &Vars, Target::Command).unwrap_err();
        assert!(err.to_string().contains("unknown placeholder `{lrr}`"));
        assert!(err.help.unwrap().contains("did you mean `lr`"));
        assert_eq!(err.labels[0].offset(), 4);
    }

    #[test]
    fn lists_are_refused_in_paths() {
        let t = "out/{outputs}";
        assert!(render(&src(t), &tpl(t), &Vars, Target::Path).is_err());
    }
}
