//! Node keys: blake3 over a canonical serialization of everything that determines outputs.
//!
//! The [`Manifest`] is what a key is computed from and is stored with each record, so a
//! changed key can be explained field by field (`training.lr: 1.0e-4 -> 5.0e-5`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::disk::Digest;
use crate::value::Value;

/// Bumped whenever the serialization below changes; every key changes with it.
pub const KEY_FORMAT: u32 = 1;

/// A parameter as stored in a manifest: canonical value plus the text as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParamRecord {
    /// Canonical JSON of the value (numbers by value).
    pub v: serde_json::Value,
    /// As written, for display.
    pub w: String,
}

impl ParamRecord {
    pub fn new(value: &Value, written: &str) -> Self {
        ParamRecord {
            v: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            w: written.to_string(),
        }
    }
}

/// Everything that determines a node's outputs. Executor-only settings (GPUs, SLURM
/// account, partition, time limit, mail) are deliberately absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Manifest {
    pub task: String,
    pub task_version: u32,
    pub params: BTreeMap<String, ParamRecord>,
    pub command: Option<String>,
    pub outputs: Vec<String>,
    /// Input file path -> content digest (directories and globs expanded).
    pub inputs: BTreeMap<String, Digest>,
    /// Upstream instance id -> (output path -> digest).
    pub upstream: BTreeMap<String, BTreeMap<String, Digest>>,
}

/// A manifest as stored with a record: kept as raw JSON text and parsed only when a changed
/// key must be explained, so loading the state of a big sweep does not parse every manifest.
#[derive(Debug, Clone)]
pub struct StoredManifest(Text);

/// The JSON text, known to be valid (serialized here, or checked when read from the
/// journal) or not (read back from a snapshot), which decides whether writing it to the
/// journal must check it first.
#[derive(Debug, Clone)]
enum Text {
    Valid(Box<serde_json::value::RawValue>),
    Unchecked(Box<str>),
}

impl StoredManifest {
    pub fn new(manifest: &Manifest) -> Self {
        StoredManifest(Text::Valid(
            serde_json::value::to_raw_value(manifest).expect("manifests serialize"),
        ))
    }

    /// The manifest; an unreadable one reads as empty, which explains as "everything changed".
    pub fn parse(&self) -> Manifest {
        serde_json::from_str(self.text()).unwrap_or_default()
    }

    /// The JSON text, as the state snapshot stores it.
    pub(crate) fn text(&self) -> &str {
        match &self.0 {
            Text::Valid(raw) => raw.get(),
            Text::Unchecked(text) => text,
        }
    }

    /// A manifest from JSON text read back from a checksummed state snapshot. Not validated
    /// here: [`StoredManifest::parse`] reads invalid text as empty, and serializing writes it
    /// as `null`, so bad text can only make the instance stale, never break the journal.
    pub(crate) fn from_text(text: String) -> Self {
        StoredManifest(Text::Unchecked(text.into_boxed_str()))
    }
}

impl Serialize for StoredManifest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            // Written as is: a gather's manifest can be megabytes, not worth parsing again.
            Text::Valid(raw) => raw.serialize(s),
            Text::Unchecked(text) => {
                match serde_json::from_str::<&serde_json::value::RawValue>(text) {
                    Ok(raw) => raw.serialize(s),
                    Err(_) => s.serialize_unit(),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for StoredManifest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(StoredManifest(Text::Valid(raw)))
    }
}

/// A manifest's fields, borrowed: serializes exactly as the [`Manifest`] with these fields,
/// so a record's manifest is written without first cloning a gather's upstream outputs.
#[derive(Serialize)]
pub struct ManifestParts<'a> {
    pub task: &'a str,
    pub task_version: u32,
    pub params: BTreeMap<&'a str, ParamRecord>,
    pub command: &'a Option<String>,
    pub outputs: &'a [String],
    pub inputs: &'a BTreeMap<String, Digest>,
    pub upstream: BTreeMap<&'a str, &'a BTreeMap<String, Digest>>,
}

impl ManifestParts<'_> {
    /// The stored form of the manifest with these parts.
    pub fn stored(&self) -> StoredManifest {
        StoredManifest(Text::Valid(
            serde_json::value::to_raw_value(self).expect("manifests serialize"),
        ))
    }

    /// The [`KeyCheck`](crate::key_check::KeyCheck) of the manifest with these parts, from the
    /// same upstream map the stored manifest is written from.
    pub fn key_check(&self) -> crate::key_check::KeyCheck {
        crate::key_check::CheckedParts {
            task: self.task,
            task_version: self.task_version,
            params: self.params.iter().map(|(k, p)| (*k, &p.v)),
            command: self.command.as_deref(),
            outputs: self.outputs,
            inputs: self.inputs,
            upstream: self.upstream.iter().map(|(k, v)| (*k, *v)),
        }
        .check()
    }

    /// The key of the manifest with these parts.
    pub fn key(&self) -> String {
        KeyParts {
            task: self.task,
            task_version: self.task_version,
            params: self.params.iter().map(|(k, p)| (*k, &p.v)).collect(),
            command: self.command,
            outputs: self.outputs,
            inputs: self.inputs,
            upstream: self.upstream.clone(),
        }
        .key()
    }
}

/// The hashed form: the manifest without display text, with the format version.
#[derive(Serialize)]
struct KeyInput<'a> {
    format: u32,
    #[serde(flatten)]
    parts: KeyParts<'a>,
}

/// The parts of a manifest that its key covers, borrowed: the planner computes a key from them
/// without building (and cloning into) a [`Manifest`], which it needs only when the key
/// changed. Serializes as the manifest's fields of the same names.
#[derive(Serialize, Clone)]
pub struct KeyParts<'a> {
    pub task: &'a str,
    pub task_version: u32,
    /// Canonical parameter values (as [`ParamRecord::v`]).
    pub params: BTreeMap<&'a str, &'a serde_json::Value>,
    pub command: &'a Option<String>,
    pub outputs: &'a [String],
    pub inputs: &'a BTreeMap<String, Digest>,
    pub upstream: BTreeMap<&'a str, &'a BTreeMap<String, Digest>>,
}

/// Upstream entries from which a key's JSON is written on two threads: a gather's (the
/// compare node of a 10,000-point sweep has 10,000, about 1.1 MB of JSON, which it keys on
/// the critical path of an incremental run, after its last upstream finished).
const PARALLEL_UPSTREAM: usize = 1024;

impl KeyParts<'_> {
    /// The same key as [`Manifest::key`] of the manifest with these parts.
    pub fn key(self) -> String {
        // One buffer, one hash call: feeding blake3 serde's many tiny writes costs more.
        blake3::hash(&self.hashed_form()).to_hex().to_string()
    }

    /// The JSON the key hashes: `KeyInput` as serde writes it, the upstream map of a gather
    /// written in two halves at once and spliced in (the same bytes).
    fn hashed_form(mut self) -> Vec<u8> {
        let upstream = if self.upstream.len() >= PARALLEL_UPSTREAM {
            std::mem::take(&mut self.upstream)
        } else {
            BTreeMap::new()
        };
        let mut bytes = Vec::with_capacity(1024 + 128 * upstream.len());
        let input = KeyInput {
            format: KEY_FORMAT,
            parts: self,
        };
        serde_json::to_writer(&mut bytes, &input).expect("manifests serialize");
        if upstream.is_empty() {
            return bytes;
        }
        // `upstream` is the last field: the text ends `"upstream":{}}`.
        const EMPTY_TAIL: &[u8] = b"{}}";
        debug_assert!(bytes.ends_with(EMPTY_TAIL));
        bytes.truncate(bytes.len() - EMPTY_TAIL.len());
        let entries: Vec<(&str, &BTreeMap<String, Digest>)> = upstream.into_iter().collect();
        let (first, second) = entries.split_at(entries.len() / 2);
        let (a, b) = rayon::join(|| map_entries(first), || map_entries(second));
        bytes.push(b'{');
        bytes.extend_from_slice(&a);
        if !a.is_empty() && !b.is_empty() {
            bytes.push(b',');
        }
        bytes.extend_from_slice(&b);
        bytes.extend_from_slice(b"}}");
        bytes
    }
}

/// `"key":value` pairs joined by commas, as serde_json writes the inside of a map.
fn map_entries(entries: &[(&str, &BTreeMap<String, Digest>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 * entries.len());
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).expect("strings serialize");
        out.push(b':');
        serde_json::to_writer(&mut out, v).expect("maps serialize");
    }
    out
}

impl Manifest {
    /// The [`KeyCheck`](crate::key_check::KeyCheck) of this manifest's key: what the planner
    /// computes from the graph for the same inputs.
    pub fn key_check(&self) -> crate::key_check::KeyCheck {
        crate::key_check::CheckedParts {
            task: &self.task,
            task_version: self.task_version,
            params: self.params.iter().map(|(k, p)| (k.as_str(), &p.v)),
            command: self.command.as_deref(),
            outputs: &self.outputs,
            inputs: &self.inputs,
            upstream: self.upstream.iter().map(|(k, v)| (k.as_str(), v)),
        }
        .check()
    }

    /// The node key, hex-encoded.
    pub fn key(&self) -> String {
        KeyParts {
            task: &self.task,
            task_version: self.task_version,
            params: self
                .params
                .iter()
                .map(|(k, p)| (k.as_str(), &p.v))
                .collect(),
            command: &self.command,
            outputs: &self.outputs,
            inputs: &self.inputs,
            upstream: self.upstream.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        }
        .key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(params: &[(&str, &str)]) -> Manifest {
        Manifest {
            task: "shell".into(),
            task_version: 1,
            params: params
                .iter()
                .map(|(k, w)| (k.to_string(), ParamRecord::new(&Value::from_plain(w), w)))
                .collect(),
            command: Some("train --lr 1e-4".into()),
            outputs: vec!["out/model.txt".into()],
            inputs: [("data/a.txt".to_string(), "ab".repeat(32))].into(),
            upstream: [(
                "prepare".to_string(),
                [("data/set.txt".to_string(), "cd".repeat(32))].into(),
            )]
            .into(),
        }
    }

    /// Pins the serialization: if this changes, every user's results go stale, so it must
    /// only change together with KEY_FORMAT.
    #[test]
    fn a_gather_key_written_in_halves_is_serde_s_own() {
        // Ids and paths that need escaping, on both sides of the split.
        let outputs: Vec<(String, BTreeMap<String, Digest>)> = (0..2 * PARALLEL_UPSTREAM + 1)
            .map(|i| {
                let mut m = BTreeMap::new();
                m.insert(format!("out/\"q\"\\{i}é.txt"), format!("{i:064x}"));
                if i % 3 == 0 {
                    m.insert(format!("out/second/{i}\n.txt"), "d".repeat(64));
                }
                (format!("m[i={i}]\t\u{1}"), m)
            })
            .collect();
        let inputs = BTreeMap::from([("in.txt".to_owned(), "0".repeat(64))]);
        let value = serde_json::json!({"a": [1, 2]});
        let parts = KeyParts {
            task: "shell",
            task_version: 1,
            params: BTreeMap::from([("x", &value)]),
            command: &Some("sort \"$@\"".to_owned()),
            outputs: &["out/compare.txt".to_owned()],
            inputs: &inputs,
            upstream: outputs.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        };
        let serde_form = serde_json::to_vec(&KeyInput {
            format: KEY_FORMAT,
            parts: parts.clone(),
        })
        .unwrap();
        assert_eq!(parts.clone().hashed_form(), serde_form);
        // Below the threshold the path is serde's alone; one entry over it splits unevenly.
        let small = KeyParts {
            upstream: parts
                .upstream
                .iter()
                .take(3)
                .map(|(k, v)| (*k, *v))
                .collect(),
            ..parts.clone()
        };
        let small_serde = serde_json::to_vec(&KeyInput {
            format: KEY_FORMAT,
            parts: small.clone(),
        })
        .unwrap();
        assert_eq!(small.hashed_form(), small_serde);
        let odd = KeyParts {
            upstream: parts
                .upstream
                .iter()
                .take(PARALLEL_UPSTREAM + 1)
                .map(|(k, v)| (*k, *v))
                .collect(),
            ..parts
        };
        let odd_serde = serde_json::to_vec(&KeyInput {
            format: KEY_FORMAT,
            parts: odd.clone(),
        })
        .unwrap();
        assert_eq!(odd.hashed_form(), odd_serde);
    }

    #[test]
    fn golden_key() {
        let m = manifest(&[("training.lr", "1.0e-4"), ("model_size", "nano")]);
        assert_eq!(
            m.key(),
            "a8307ef69f256c7666bef297b8ba70c55dca0cede51276c77baaf552f8e6098b"
        );
    }

    #[test]
    fn borrowed_parts_give_the_manifest_key() {
        let m = manifest(&[("training.lr", "1.0e-4"), ("model_size", "nano")]);
        let parts = KeyParts {
            task: &m.task,
            task_version: m.task_version,
            params: m.params.iter().map(|(k, p)| (k.as_str(), &p.v)).collect(),
            command: &m.command,
            outputs: &m.outputs,
            inputs: &m.inputs,
            upstream: m.upstream.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        };
        assert_eq!(parts.key(), m.key());
    }

    #[test]
    fn borrowed_manifest_parts_store_the_manifest_text_and_key() {
        let mut m = manifest(&[("training.lr", "1.0e-4"), ("model_size", "nano")]);
        m.upstream.insert(
            "a[i=1]".to_string(),
            [("x/\"q\".txt".to_string(), "ef".repeat(32))].into(),
        );
        let parts = ManifestParts {
            task: &m.task,
            task_version: m.task_version,
            params: m
                .params
                .iter()
                .map(|(k, p)| (k.as_str(), p.clone()))
                .collect(),
            command: &m.command,
            outputs: &m.outputs,
            inputs: &m.inputs,
            upstream: m.upstream.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        };
        assert_eq!(parts.stored().text(), StoredManifest::new(&m).text());
        assert_eq!(parts.stored().parse(), m);
        assert_eq!(parts.key(), m.key());
    }

    #[test]
    fn stored_manifests_serialize_as_their_json_and_bad_text_as_null() {
        let m = manifest(&[("a", "1")]);
        let valid = StoredManifest::new(&m);
        let json = serde_json::to_string(&valid).unwrap();
        assert_eq!(json, serde_json::to_string(&m).unwrap());
        let back: StoredManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.parse(), m);
        let unchecked = StoredManifest::from_text(valid.text().to_string());
        assert_eq!(serde_json::to_string(&unchecked).unwrap(), json);
        let bad = StoredManifest::from_text("{\"task\": ".to_string());
        assert_eq!(serde_json::to_string(&bad).unwrap(), "null");
        assert_eq!(bad.parse(), Manifest::default());
    }

    #[test]
    fn numbers_hash_by_value_and_order_is_irrelevant() {
        let a = manifest(&[("training.lr", "1.0e-4"), ("epochs", "10")]);
        let b = manifest(&[("epochs", "10.0"), ("training.lr", "0.0001")]);
        assert_eq!(a.key(), b.key());
        let c = manifest(&[("training.lr", "5.0e-5"), ("epochs", "10")]);
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = manifest(&[("a", "1")]);
        let mut variants = Vec::new();
        let mut m = base.clone();
        m.task_version = 2;
        variants.push(m);
        let mut m = base.clone();
        m.command = Some("other".into());
        variants.push(m);
        let mut m = base.clone();
        m.outputs.push("x".into());
        variants.push(m);
        let mut m = base.clone();
        m.inputs.insert("data/a.txt".into(), "ef".repeat(32));
        variants.push(m);
        let mut m = base.clone();
        m.upstream.clear();
        variants.push(m);
        let mut m = base.clone();
        m.params.get_mut("a").unwrap().w = "1.0".into();
        assert_eq!(m.key(), base.key(), "display text is not part of the key");
        for v in variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
        }
    }
}
