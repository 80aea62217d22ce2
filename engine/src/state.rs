//! What happened before: the latest record per instance and the file-digest cache.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::{Digest, FileMeta};
use crate::journal::{Entry, Journal, JournalError, LoadReport};
use crate::key::StoredManifest;

/// Bytes of journal JSON parsed by one load above which [`State::load`] may write a snapshot.
const SNAPSHOT_AFTER: u64 = 2 << 20;

/// Entries of JSON parsed by one load above which, with over [`SNAPSHOT_AFTER`] bytes,
/// [`State::load`] writes a snapshot. Parsing costs far more per entry than per byte: a tail
/// of a few large records (a 10,000-way gather's manifest is ~1 MB) parses in a millisecond
/// or two, less than writing the whole snapshot again would cost.
const SNAPSHOT_AFTER_ENTRIES: usize = 1000;

/// Whether a load that parsed `bytes` of journal JSON in `entries` entries, after a
/// snapshot of `snapshot_len` bytes (0: none), leaves a new snapshot:
/// `FLOW_SNAPSHOT_AFTER_BYTES` when set (bytes alone; tests set 0 to exercise snapshots on
/// small projects), else over 2 MiB in over 1,000 entries or in more than half the
/// snapshot's size.
fn snapshot_due(bytes: u64, entries: usize, snapshot_len: u64) -> bool {
    snapshot_due_after(bytes, entries, snapshot_len, snapshot_after_setting())
}

/// `FLOW_SNAPSHOT_AFTER_BYTES`, when set to a number.
fn snapshot_after_setting() -> Option<u64> {
    std::env::var("FLOW_SNAPSHOT_AFTER_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
}

fn snapshot_due_after(
    bytes: u64,
    entries: usize,
    snapshot_len: u64,
    after_bytes: Option<u64>,
) -> bool {
    match after_bytes {
        Some(after) => bytes > after,
        None => {
            bytes > SNAPSHOT_AFTER && (entries > SNAPSHOT_AFTER_ENTRIES || bytes > snapshot_len / 2)
        }
    }
}

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
    /// The [`KeyCheck`](crate::key_check::KeyCheck) of the inputs `key` was computed from,
    /// when the run recorded one: lets planning skip recomputing an unchanged key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::key_check::KeyCheck>,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why a run counted as failed when the exit code alone does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
    pub duration_ms: u64,
    pub manifest: StoredManifest,
    /// Output path -> digest; complete for `Ok` records.
    pub outputs: BTreeMap<String, Digest>,
    /// `FLOW_ATTEMPT` of the run this records (absent in records of older builds: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// Where a SLURM submission of one instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Recorded (and synced) just before `sbatch`: if flow dies before the job id is
    /// recorded, the next run looks the job up by name instead of submitting it again.
    Intent,
    /// `sbatch` answered with a job id.
    Submitted,
    /// The intent's job never reached SLURM (flow died before `sbatch`): forget it.
    Abandoned,
}

/// A SLURM job running (or about to run) one instance; superseded by the instance's
/// [`NodeRecord`] once reconciliation has seen the job end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub phase: JobPhase,
    /// SLURM job name of the submission (unique per batch script).
    pub job_name: String,
    /// `123` or `123_4`; set once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Key computed with upstream keys standing in for upstream outputs not yet produced.
    pub provisional_key: String,
    pub manifest: StoredManifest,
    /// Project-relative paths of the batch script and this instance's exit marker.
    pub script: String,
    pub marker: String,
    /// Unix seconds.
    pub submitted_at: u64,
}

/// A cached digest, valid while the file's metadata is unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub meta: FileMeta,
    pub digest: Digest,
}

/// The journal lines read after a snapshot.
struct Tail {
    /// Bytes of JSON parsed.
    bytes: u64,
    entries: usize,
    /// The snapshot's size.
    snapshot_len: u64,
}

/// The persisted state, loaded into memory.
#[derive(Debug, Default)]
pub struct State {
    pub nodes: HashMap<String, NodeRecord>,
    /// Instances with a SLURM job in flight.
    pub jobs: HashMap<String, JobRecord>,
    pub files: HashMap<String, FileRecord>,
    /// Entries in the journal, live or superseded; drives compaction.
    pub journal_entries: usize,
    /// Torn or corrupt lines dropped while loading.
    pub dropped: usize,
    /// Where [`State::refresh`] resumes reading, and the journal file it read.
    offset: u64,
    inode: u64,
}

impl State {
    /// `FLOW_ATTEMPT` for the next run of `id` producing `outputs`: one more than the last
    /// recorded run when that run failed with the same outputs (a retry, which should resume
    /// from what it left: a train node's outputs name its run directory), else 1.
    pub fn next_attempt(&self, id: &str, outputs: &[String]) -> u32 {
        match self.nodes.get(id) {
            Some(r) if r.status == RunStatus::Failed && r.manifest.parse().outputs == outputs => {
                r.attempt.unwrap_or(1) + 1
            }
            _ => 1,
        }
    }

    /// Loads the journal under `cache_dir`, cutting a torn tail and compacting when most
    /// entries are superseded. Used by commands that will write. When much of the journal
    /// had to be parsed as JSON, leaves a binary snapshot of the state for the next load.
    pub fn load(cache_dir: &Path) -> Result<State, JournalError> {
        let journal = Journal::new(cache_dir);
        // The state, with the bytes and entries of JSON parsed to load it (and the size of
        // the snapshot it started from).
        let (mut state, mut parsed, mut parsed_entries, snapshot_len) =
            match State::from_snapshot(cache_dir, &journal)? {
                Some((state, tail)) => {
                    tracing::debug!(
                        journal_tail = tail.bytes,
                        tail_entries = tail.entries,
                        "state loaded from the snapshot"
                    );
                    (state, tail.bytes, tail.entries, tail.snapshot_len)
                }
                None => {
                    let mut report = journal.load()?;
                    if report.valid_len < report.total_len {
                        report = journal.repair()?;
                    }
                    let parsed = report.total_len;
                    let state = State::from_report(report);
                    let entries = state.journal_entries;
                    (state, parsed, entries, 0)
                }
            };
        let live = state.nodes.len() + state.files.len() + state.jobs.len();
        tracing::debug!(
            entries = state.journal_entries,
            live,
            dropped = state.dropped,
            parsed,
            "journal loaded"
        );
        if state.journal_entries > 2 * live + 1000 {
            journal.compact(|entries| {
                let mut fresh = State::default();
                for e in entries {
                    fresh.apply(e);
                }
                fresh.entries()
            })?;
            let dropped = state.dropped;
            let report = journal.load()?;
            parsed = report.total_len;
            state = State::from_report(report);
            parsed_entries = state.journal_entries;
            state.dropped += dropped;
        }
        if snapshot_due(parsed, parsed_entries, snapshot_len) && state.dropped == 0 {
            // Only an accelerator: a failure costs the next load some time, nothing else.
            if let Err(e) = state.write_snapshot(cache_dir) {
                tracing::debug!("cannot write the state snapshot: {e}");
            }
        }
        Ok(state)
    }

    /// Whether a command that appended `appended` bytes to the journal should leave a
    /// snapshot ([`State::leave_snapshot`]): more than `FLOW_SNAPSHOT_AFTER_BYTES`, else
    /// 2 MiB.
    pub fn wrote_enough_to_snapshot(appended: u64) -> bool {
        appended > snapshot_after_setting().unwrap_or(SNAPSHOT_AFTER)
    }

    /// Loads the state again, which leaves a snapshot when one is due: a command that wrote
    /// much pays the parse of it (about 0.1 s after a 20,000-node run), so that the next one
    /// (often a no-op or `flow status` right after a sweep) does not. The caller frees its
    /// own state first, or the peak memory doubles. Failures only cost the next load that
    /// time.
    pub fn leave_snapshot(cache_dir: &Path) {
        match State::load(cache_dir) {
            // Not freed: the process is about to exit, and freeing a big state costs time.
            Ok(state) => std::mem::forget(state),
            Err(e) => tracing::debug!("cannot reload the state to snapshot it: {e}"),
        }
    }

    /// Writes a snapshot of this state, which must be exactly what the journal holds up to
    /// where it was read (a freshly loaded state, before anything is applied to it).
    pub(crate) fn write_snapshot(&self, cache_dir: &Path) -> std::io::Result<()> {
        let mark = crate::snapshot::JournalMark {
            inode: self.inode,
            offset: self.offset,
            entries: self.journal_entries as u64,
        };
        crate::snapshot::write(cache_dir, Journal::new(cache_dir).path(), self, mark)
    }

    /// Reads the state without repairing anything, for read-only commands: never waits.
    pub fn peek(cache_dir: &Path) -> Result<State, JournalError> {
        let journal = Journal::new(cache_dir);
        if let Some((state, _)) = State::from_snapshot(cache_dir, &journal)? {
            return Ok(state);
        }
        Ok(State::from_report(journal.load()?))
    }

    /// The snapshot plus the journal lines after it, with what was parsed of those; `None`
    /// when there is no usable snapshot or the journal's tail is torn (the caller then reads,
    /// and repairs, the whole journal).
    fn from_snapshot(
        cache_dir: &Path,
        journal: &Journal,
    ) -> Result<Option<(State, Tail)>, JournalError> {
        let Some(snap) = crate::snapshot::read(cache_dir, journal.path()) else {
            return Ok(None);
        };
        let report = journal.load_from(snap.mark.offset)?;
        if report.inode != snap.mark.inode || report.valid_len < report.total_len {
            return Ok(None);
        }
        let mut state = snap.state;
        state.journal_entries = snap.mark.entries as usize + report.entries.len();
        state.dropped = report.dropped;
        state.offset = report.complete_len;
        state.inode = report.inode;
        let parsed = report.total_len.saturating_sub(snap.mark.offset);
        let tail = Tail {
            bytes: parsed,
            entries: report.entries.len(),
            snapshot_len: snap.len,
        };
        for e in report.entries {
            state.apply(e);
        }
        Ok(Some((state, tail)))
    }

    fn from_report(report: LoadReport) -> State {
        let mut state = State {
            journal_entries: report.entries.len(),
            dropped: report.dropped,
            offset: report.complete_len,
            inode: report.inode,
            ..State::default()
        };
        for e in report.entries {
            state.apply(e);
        }
        state
    }

    /// The state from the journal alone, ignoring any snapshot (tests compare the two).
    #[cfg(test)]
    pub(crate) fn from_journal_only(cache_dir: &Path) -> State {
        State::from_report(Journal::new(cache_dir).load().unwrap())
    }

    /// Reads what other processes appended since the last read (all of it after a
    /// compaction replaced the file). Returns how many entries were new.
    pub fn refresh(&mut self, cache_dir: &Path) -> Result<usize, JournalError> {
        let journal = Journal::new(cache_dir);
        let current = std::fs::metadata(journal.path())
            .map(|m| (std::os::unix::fs::MetadataExt::ino(&m), m.len()))
            .ok();
        match current {
            None => Ok(0),
            Some((ino, len)) if ino == self.inode && len >= self.offset => {
                if len == self.offset {
                    return Ok(0);
                }
                let report = journal.load_from(self.offset)?;
                let n = report.entries.len();
                self.offset = report.complete_len;
                self.journal_entries += n;
                for e in report.entries {
                    self.apply(e);
                }
                Ok(n)
            }
            Some(_) => {
                let report = journal.load()?;
                let n = report.entries.len();
                let files = std::mem::take(&mut self.files);
                *self = State::from_report(report);
                if self.files.is_empty() {
                    self.files = files;
                }
                Ok(n)
            }
        }
    }

    /// Moves the read position past entries this process appended itself, when nobody
    /// else appended in between, so [`State::refresh`] does not read them back.
    pub fn skip_own(&mut self, appended: std::ops::Range<u64>) {
        if appended.start == self.offset && appended.start < appended.end {
            self.offset = appended.end;
        }
    }

    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Node(r) => {
                self.jobs.remove(&r.id);
                self.nodes.insert(r.id.clone(), r);
            }
            Entry::Job(j) if j.phase == JobPhase::Abandoned => {
                self.jobs.remove(&j.id);
            }
            Entry::Job(j) => {
                self.jobs.insert(j.id.clone(), j);
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
        let mut jobs: Vec<&JobRecord> = self.jobs.values().collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        // Jobs after nodes: a job in flight supersedes the instance's older record.
        files
            .into_iter()
            .cloned()
            .map(Entry::File)
            .chain(nodes.into_iter().cloned().map(Entry::Node))
            .chain(jobs.into_iter().cloned().map(Entry::Job))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::snapshot_due_after;

    #[test]
    fn a_snapshot_is_due_after_many_entries_or_many_bytes() {
        // Many small records: parsing them is what a snapshot saves.
        assert!(snapshot_due_after(3 << 20, 10_000, 100 << 20, None));
        assert!(!snapshot_due_after(1 << 20, 10_000, 0, None));
        // A few large records (a big gather's manifest) parse fast: not worth writing a
        // snapshot again until they add up to half its size.
        assert!(!snapshot_due_after(3 << 20, 3, 16 << 20, None));
        assert!(snapshot_due_after(9 << 20, 9, 16 << 20, None));
        // Without a snapshot, as many bytes make one.
        assert!(snapshot_due_after(3 << 20, 3, 0, None));
        // FLOW_SNAPSHOT_AFTER_BYTES counts bytes alone.
        assert!(snapshot_due_after(1, 1, 1 << 20, Some(0)));
        assert!(!snapshot_due_after(3 << 20, 10_000, 0, Some(1 << 30)));
    }
}
