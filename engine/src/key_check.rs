//! A short check value of everything a node's key covers, stored with the record, so that
//! planning can tell an unchanged instance without writing its key's canonical JSON.
//!
//! Keying a 10,000-point sweep's instances is most of a no-op plan's work: each key is a JSON
//! document (a gather's is over a megabyte) hashed with blake3. The check hashes the same
//! inputs in a plain binary framing instead: strings end with a 0xFF byte (never part of
//! UTF-8), collections start with their length, parameter values are their canonical JSON,
//! upstreams are in id order (as the key's map has them). Both the planner, from the graph,
//! and a SLURM completion, from the manifest it records, compute the same check.
//! Equal checks mean equal inputs, so equal keys; a different check (or none: records of
//! older builds) only means the key is computed and compared as before.
//! It is an accelerator, never the record: the key stays the contract.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::disk::Digest;
use crate::key::KEY_FORMAT;

/// Bumped whenever the framing below changes; older checks then simply never match.
const CHECK_FORMAT: u8 = 2;

/// 128 bits of blake3 over a key's inputs; written as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyCheck(pub [u8; 16]);

impl fmt::Debug for KeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCheck({self})")
    }
}

impl fmt::Display for KeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl KeyCheck {
    /// Reads the 32-hex-digit form; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<KeyCheck> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(KeyCheck(out))
    }
}

impl Serialize for KeyCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KeyCheck::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("a key check is 32 hexadecimal digits"))
    }
}

/// The check of a key's inputs, given as the key has them: parameters and inputs by name,
/// upstreams by instance id, each once.
pub struct CheckedParts<'a, P, U> {
    pub task: &'a str,
    pub task_version: u32,
    /// (dotted key, canonical value), in key order.
    pub params: P,
    pub command: Option<&'a str>,
    pub outputs: &'a [String],
    pub inputs: &'a BTreeMap<String, Digest>,
    /// (upstream instance id, its output digests), in id order.
    pub upstream: U,
}

impl<'a, P, U> CheckedParts<'a, P, U>
where
    U: ExactSizeIterator<Item = (&'a str, &'a BTreeMap<String, Digest>)>,
{
    /// The check; parameter values are graph [`Value`](crate::value::Value)s or a manifest's
    /// `serde_json::Value`s.
    pub fn check<V>(self) -> KeyCheck
    where
        V: Serialize + 'a,
        P: ExactSizeIterator<Item = (&'a str, &'a V)>,
    {
        let mut w = KeyCheckWriter::new(256 + 128 * self.upstream.len());
        w.str(self.task);
        w.u32(self.task_version);
        w.count(self.params.len());
        for (k, v) in self.params {
            w.str(k);
            w.value(v);
        }
        w.opt_str(self.command);
        w.count(self.outputs.len());
        for o in self.outputs {
            w.str(o);
        }
        w.digests(self.inputs);
        w.count(self.upstream.len());
        for (id, outputs) in self.upstream {
            w.str(id);
            w.digests(outputs);
        }
        w.finish()
    }
}

/// Writes a key's inputs, field by field in a fixed order, and hashes them once at the end
/// (blake3 is fastest over one buffer).
struct KeyCheckWriter {
    buf: Vec<u8>,
}

impl KeyCheckWriter {
    /// Starts a check for the key format this build computes.
    fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 16);
        buf.push(CHECK_FORMAT);
        buf.extend_from_slice(&KEY_FORMAT.to_le_bytes());
        KeyCheckWriter { buf }
    }

    fn str(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0xFF);
    }

    fn count(&mut self, n: usize) {
        self.buf.extend_from_slice(&(n as u64).to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.buf.push(0),
            Some(s) => {
                self.buf.push(1);
                self.str(s);
            }
        }
    }

    /// A parameter value as its canonical JSON (what the key's manifest holds): a
    /// [`Value`] and the `serde_json::Value` a manifest records for it write the same text.
    fn value(&mut self, v: &impl Serialize) {
        serde_json::to_writer(&mut self.buf, v).expect("values serialize");
        self.buf.push(0xFF);
    }

    /// A path -> digest map, in its order.
    fn digests(&mut self, m: &BTreeMap<String, Digest>) {
        self.count(m.len());
        for (path, digest) in m {
            self.str(path);
            self.str(digest);
        }
    }

    fn finish(self) -> KeyCheck {
        let hash = blake3::hash(&self.buf);
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
        KeyCheck(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn check(parts: &[&str]) -> KeyCheck {
        let mut w = KeyCheckWriter::new(64);
        for p in parts {
            w.str(p);
        }
        w.finish()
    }

    #[test]
    fn the_framing_keeps_fields_apart() {
        assert_ne!(check(&["ab", "c"]), check(&["a", "bc"]));
        assert_ne!(check(&["ab", ""]), check(&["ab"]));
        assert_eq!(check(&["ab", "c"]), check(&["ab", "c"]));
    }

    #[test]
    fn hex_round_trips_and_rejects_other_text() {
        let c = check(&["x"]);
        let text = c.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(KeyCheck::from_hex(&text), Some(c));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<KeyCheck>(&json).unwrap(), c);
        assert_eq!(KeyCheck::from_hex("0f"), None);
        assert_eq!(KeyCheck::from_hex(&"g".repeat(32)), None);
        assert!(serde_json::from_str::<KeyCheck>("\"abc\"").is_err());
    }

    /// Pins the framing: a change makes every stored check miss (harmless, but the planner
    /// then keys every instance in full until it runs again), so it goes with CHECK_FORMAT.
    #[test]
    fn golden_check() {
        let mut w = KeyCheckWriter::new(64);
        w.str("shell");
        w.u32(1);
        w.count(1);
        w.str("lr");
        w.value(&Value::Float(1e-4));
        w.opt_str(Some("train"));
        w.digests(&BTreeMap::from([("a.txt".to_owned(), "ab".repeat(32))]));
        assert_eq!(w.finish().to_string(), "529ad5c9a7a71707c5812711ba919079");
    }
}
