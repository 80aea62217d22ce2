//! Parameter values: compared and hashed by value, shown as written.
//!
//! `1e-4` and `0.0001` are the same learning rate, so keys hash numbers by value; but a user
//! reading a diff wants to see `1.0e-4`, the text they wrote. Scalars therefore carry both.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::yaml::{Yaml, YamlKind};

/// A resolved parameter value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// Ordered so iteration, display and hashing never depend on the order written.
    Map(BTreeMap<String, Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Int(_) | Float(_), Int(_) | Float(_)) => self.number_key() == other.number_key(),
            _ => false,
        }
    }
}

/// A number normalised so equal values have equal representations.
#[derive(Debug, PartialEq)]
enum NumberKey {
    Int(i64),
    Float(u64),
}

impl Value {
    /// Interprets a plain (unquoted) scalar by the YAML 1.2 core schema.
    pub fn from_plain(text: &str) -> Value {
        match text {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Value::Float(f64::INFINITY);
            }
            "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
            _ => {}
        }
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = text.parse::<i64>()
        {
            return Value::Int(i);
        }
        if let Some(hex) = text.strip_prefix("0x")
            && let Ok(i) = i64::from_str_radix(hex, 16)
        {
            return Value::Int(i);
        }
        if let Some(oct) = text.strip_prefix("0o")
            && let Ok(i) = i64::from_str_radix(oct, 8)
        {
            return Value::Int(i);
        }
        let numeric = digits.bytes().any(|b| b.is_ascii_digit())
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
        if numeric && let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
        Value::Str(text.to_string())
    }

    /// Converts a document value; keys of mappings become strings.
    pub fn from_yaml(node: &Yaml) -> Value {
        match &node.kind {
            YamlKind::Scalar(s) if s.quoted => Value::Str(s.text.clone()),
            YamlKind::Scalar(s) => Value::from_plain(&s.text),
            YamlKind::Seq(items) => Value::List(items.iter().map(Value::from_yaml).collect()),
            YamlKind::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_scalar().map(|s| s.text.clone()).unwrap_or_default(),
                            Value::from_yaml(v),
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn number_key(&self) -> Option<NumberKey> {
        match *self {
            Value::Int(i) => Some(NumberKey::Int(i)),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007e15 => {
                Some(NumberKey::Int(f as i64))
            }
            Value::Float(f) if f.is_nan() => Some(NumberKey::Float(f64::NAN.to_bits())),
            // -0.0 and 0.0 are caught by the integral branch above.
            Value::Float(f) => Some(NumberKey::Float(f.to_bits())),
            _ => None,
        }
    }

    /// The value as text to substitute into commands and paths (unquoted).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Str(s) => s.clone(),
            Value::List(_) | Value::Map(_) => {
                serde_json::to_string(self).unwrap_or_else(|_| String::from("?"))
            }
        }
    }

    /// Looks up a dotted path such as `training.lr`.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        for part in path.split('.') {
            match cur {
                Value::Map(m) => cur = m.get(part)?,
                _ => return None,
            }
        }
        Some(cur)
    }

    /// Sets a dotted path, creating intermediate mappings.
    pub fn set_path(&mut self, path: &str, value: Value) {
        let mut cur = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if !matches!(cur, Value::Map(_)) {
                *cur = Value::Map(BTreeMap::new());
            }
            let Value::Map(m) = cur else { unreachable!() };
            if parts.peek().is_none() {
                m.insert(part.to_string(), value);
                return;
            }
            cur = m
                .entry(part.to_string())
                .or_insert_with(|| Value::Map(BTreeMap::new()));
        }
    }
}

fn format_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        }
    } else {
        let s = format!("{f:?}");
        s
    }
}

/// Canonical form used inside keys: maps sorted, numbers by value.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Str(v) => s.serialize_str(v),
            Value::Int(_) | Value::Float(_) => match self.number_key() {
                Some(NumberKey::Int(i)) => s.serialize_i64(i),
                Some(NumberKey::Float(bits)) => {
                    let f = f64::from_bits(bits);
                    if f.is_finite() {
                        s.serialize_f64(f)
                    } else {
                        // JSON has no NaN or infinity; tag them so they cannot collide with strings.
                        let mut m = s.serialize_map(Some(1))?;
                        m.serialize_entry("$float", &format_float(f))?;
                        m.end()
                    }
                }
                None => unreachable!("numbers always have a key"),
            },
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(Value::from_plain("1e-4"), Value::from_plain("0.0001"));
        assert_eq!(Value::from_plain("1.0e-4"), Value::from_plain("1e-4"));
        assert_eq!(Value::from_plain("1"), Value::from_plain("1.0"));
        assert_ne!(Value::from_plain("1"), Value::Str("1".into()));
        assert_ne!(Value::from_plain("5e-5"), Value::from_plain("1e-4"));
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(Value::from_plain("true"), Value::Bool(true));
        assert_eq!(Value::from_plain("~"), Value::Null);
        assert_eq!(Value::from_plain("0x10"), Value::Int(16));
        assert_eq!(Value::from_plain("inf"), Value::Str("inf".into()));
        assert_eq!(Value::from_plain("nano"), Value::Str("nano".into()));
        assert_eq!(Value::from_plain("1.2.3"), Value::Str("1.2.3".into()));
    }

    #[test]
    fn canonical_json_is_order_and_spelling_independent() {
        let a = serde_json::to_string(&Value::from_plain("1e-4")).unwrap();
        let b = serde_json::to_string(&Value::from_plain("0.0001")).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&Value::from_plain("2.0")).unwrap(),
            "2"
        );
    }

    #[test]
    fn dotted_paths_set_and_get() {
        let mut v = Value::Map(BTreeMap::new());
        v.set_path("training.lr", Value::Float(1e-4));
        assert_eq!(v.get_path("training.lr"), Some(&Value::Float(1e-4)));
        assert_eq!(v.get_path("training.epochs"), None);
    }
}
