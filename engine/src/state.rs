//! What happened before: the latest record per instance and the file-digest cache.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::{Digest, FileMeta};
use crate::journal::{Entry, Journal, JournalError};
use crate::key::Manifest;

/// How a recorded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The command succeeded and every declared output was present and digested.
    Ok,
    Failed,
}

/// The record of one instance's latest run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub key: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why a run counted as failed when the exit code alone does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
    pub duration_ms: u64,
    pub manifest: Manifest,
    /// Output path -> digest; complete for `Ok` records.
    pub outputs: BTreeMap<String, Digest>,
}

/// A cached digest, valid while the file's metadata is unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub meta: FileMeta,
    pub digest: Digest,
}

/// The persisted state, loaded into memory.
#[derive(Debug, Default)]
pub struct State {
    pub nodes: HashMap<String, NodeRecord>,
    pub files: HashMap<String, FileRecord>,
    /// Entries in the journal, live or superseded; drives compaction.
    pub journal_entries: usize,
    /// Torn or corrupt lines dropped while loading.
    pub dropped: usize,
}

impl State {
    /// Loads the journal under `cache_dir`, cutting a torn tail and compacting when most
    /// entries are superseded.
    pub fn load(cache_dir: &Path) -> Result<State, JournalError> {
        let journal = Journal::new(cache_dir);
        let report = journal.load()?;
        let mut state = State {
            journal_entries: report.entries.len(),
            dropped: report.dropped,
            ..State::default()
        };
        for e in report.entries {
            state.apply(e);
        }
        if report.valid_len < report.total_len {
            journal.truncate_to(report.valid_len)?;
        }
        let live = state.nodes.len() + state.files.len();
        if state.journal_entries > 2 * live + 1000 {
            journal.rewrite(&state.entries())?;
            state.journal_entries = live;
        }
        Ok(state)
    }

    /// Reads the state without repairing anything, for read-only commands.
    pub fn peek(cache_dir: &Path) -> Result<State, JournalError> {
        let report = Journal::new(cache_dir).load()?;
        let mut state = State {
            journal_entries: report.entries.len(),
            dropped: report.dropped,
            ..State::default()
        };
        for e in report.entries {
            state.apply(e);
        }
        Ok(state)
    }

    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Node(r) => {
                self.nodes.insert(r.id.clone(), r);
            }
            Entry::File(f) => {
                self.files.insert(f.path.clone(), f);
            }
        }
    }

    /// The live entries, for compaction.
    pub fn entries(&self) -> Vec<Entry> {
        let mut files: Vec<&FileRecord> = self.files.values().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut nodes: Vec<&NodeRecord> = self.nodes.values().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        files
            .into_iter()
            .cloned()
            .map(Entry::File)
            .chain(nodes.into_iter().cloned().map(Entry::Node))
            .collect()
    }
}
