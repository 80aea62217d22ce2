//! `<out>/.compare-inputs.json`: the input digest each output was last rendered from, and the
//! digest of the file that render wrote.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;
use super::error::CompareError;

/// The state file's name inside the output directory.
pub const STATE_FILE: &str = ".compare-inputs.json";

/// The state file's format version; a newer one is refused, an older or unreadable one is
/// treated as empty (everything re-renders: the file is a cache, losing it costs time only).
pub const STATE_VERSION: u64 = 1;

/// What is known about one output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Input digest it was rendered from.
    pub inputs: String,
    /// blake3 of the file written, to notice a file modified or replaced since.
    pub content: String,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u64,
    /// By output file name.
    pub outputs: BTreeMap<String, Record>,
}

impl State {
    pub(crate) fn empty() -> Self {
        State {
            version: STATE_VERSION,
            outputs: BTreeMap::new(),
        }
    }

    /// Reads the state of `dir`: empty when missing, unreadable as JSON, or older.
    pub(crate) fn load(dir: &Path) -> Result<State, CompareError> {
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::empty()),
            Err(source) => return Err(CompareError::Read { path, source }),
        };
        #[derive(Deserialize)]
        struct Version {
            version: u64,
        }
        match serde_json::from_slice::<Version>(&bytes) {
            Ok(v) if v.version > STATE_VERSION => Err(CompareError::StateTooNew {
                path,
                found: v.version,
                supported: STATE_VERSION,
            }),
            Ok(v) if v.version == STATE_VERSION => {
                Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| State::empty()))
            }
            _ => Ok(State::empty()),
        }
    }

    /// Writes the state atomically; called after the outputs it describes are in place.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), CompareError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        write_atomic(&dir.join(STATE_FILE), text.as_bytes())
    }
}
