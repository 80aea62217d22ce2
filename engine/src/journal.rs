//! The append-only, checksummed journal that holds flow's state.
//!
//! One line per entry, `crc32 json`, after a versioned header. Recording a result costs one
//! append (no fsync of a whole file); a crash can leave a torn last line, which the checksum
//! exposes and loading drops with a warning. Compaction rewrites the live entries to a temp
//! file and renames it over the journal, so the journal is always either old or new.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::state::{FileRecord, JobRecord, NodeRecord};

/// The journal format this build writes; newer ones are refused, not misread.
pub const JOURNAL_VERSION: u32 = 1;
const MAGIC: &str = "flow-journal";

/// One line of the journal.
#[derive(Debug, Clone)]
pub enum Entry {
    Node(NodeRecord),
    File(FileRecord),
    Job(JobRecord),
}

/// Failures reading or writing the journal.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JournalError {
    #[error("cannot read the state journal {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the state journal {path}")]
    #[diagnostic(help(
        "free space (or fix permissions) and run again: what was not recorded re-runs, and nothing unverified is ever marked fresh"
    ))]
    Write { path: PathBuf, source: io::Error },
    #[diagnostic(help("upgrade flow; this project's state was written by a newer version"))]
    #[error(
        "{path} was written by a newer flow (journal format {found}, this flow reads {JOURNAL_VERSION})"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("{path} is not a flow journal (first line `{line}`)")]
    NotAJournal { path: PathBuf, line: String },
}

/// What loading found, besides the entries.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub entries: Vec<Entry>,
    /// Lines dropped because they were torn or failed their checksum.
    pub dropped: usize,
    /// Byte length of the valid prefix, where a torn tail must be cut.
    pub valid_len: u64,
    /// End of the last complete line, good or bad: where a later read resumes.
    pub complete_len: u64,
    pub total_len: u64,
    /// Identity of the file read; a compaction by another process changes it.
    pub inode: u64,
}

/// The journal file and its lock.
pub struct Journal {
    path: PathBuf,
    lock_path: PathBuf,
    lock_file: std::sync::Mutex<Option<File>>,
}

/// Holds the commit lock (and this process's lock-file slot) until dropped.
struct LockGuard<'a> {
    slot: std::sync::MutexGuard<'a, Option<File>>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.slot.as_ref() {
            let _ = f.unlock();
        }
    }
}

impl Journal {
    pub fn new(cache_dir: &Path) -> Self {
        Journal {
            path: cache_dir.join("journal"),
            lock_path: cache_dir.join("journal.lock"),
            lock_file: std::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every valid entry. A missing journal is an empty one.
    pub fn load(&self) -> Result<LoadReport, JournalError> {
        self.load_from(0)
    }

    /// Reads the entries that start at byte `offset` (0: the whole journal, header included).
    pub fn load_from(&self, offset: u64) -> Result<LoadReport, JournalError> {
        let read_err = |source| JournalError::Read {
            path: self.path.clone(),
            source,
        };
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoadReport::default()),
            Err(e) => return Err(read_err(e)),
        };
        let meta = file.metadata().map_err(read_err)?;
        let mut report = LoadReport {
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
            ..LoadReport::default()
        };
        let mut pos = offset;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        if offset == 0 {
            let n = reader.read_until(b'\n', &mut line).map_err(read_err)?;
            if n == 0 {
                return Ok(report);
            }
            let header = String::from_utf8_lossy(&line).trim_end().to_string();
            let version = header
                .strip_prefix(MAGIC)
                .and_then(|v| v.trim().parse::<u32>().ok());
            match version {
                Some(v) if v > JOURNAL_VERSION => {
                    return Err(JournalError::TooNew {
                        path: self.path.clone(),
                        found: v,
                    });
                }
                Some(_) => {}
                None if !line.ends_with(b"\n") => {
                    // A crash while writing the header: nothing was recorded yet.
                    report.total_len = n as u64;
                    report.dropped = 1;
                    return Ok(report);
                }
                None => {
                    return Err(JournalError::NotAJournal {
                        path: self.path.clone(),
                        line: header,
                    });
                }
            }
            pos = n as u64;
        }
        report.valid_len = pos;
        report.complete_len = pos;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(read_err)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            if line.ends_with(b"\n") {
                report.complete_len = pos;
            }
            match parse_line(&line) {
                Some(entry) => {
                    report.entries.push(entry);
                    report.valid_len = pos;
                }
                None => report.dropped += 1,
            }
        }
        report.total_len = pos;
        Ok(report)
    }

    /// Appends entries with one write, under the commit lock. Returns the byte range the
    /// journal grew by, so a reader can skip re-reading its own entries.
    pub fn append(&self, entries: &[Entry]) -> Result<std::ops::Range<u64>, JournalError> {
        let write_err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        let mut buf = Vec::with_capacity(256 * entries.len());
        for e in entries {
            encode_line(e, &mut buf);
        }
        if buf.is_empty() {
            return Ok(0..0);
        }
        let _lock = self.lock().map_err(write_err)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_err)?;
        let len = file.metadata().map_err(write_err)?.len();
        if len == 0 {
            let mut with_header = format!("{MAGIC} {JOURNAL_VERSION}\n").into_bytes();
            with_header.extend_from_slice(&buf);
            buf = with_header;
        }
        file.write_all(&buf).map_err(write_err)?;
        Ok(len..len + buf.len() as u64)
    }

    /// Cuts a torn tail so later appends start on a fresh line. Re-reads under the commit
    /// lock: a tail that only looked torn because another process was mid-append is kept.
    pub fn repair(&self) -> Result<LoadReport, JournalError> {
        let _lock = self.lock().map_err(|source| self.write_err(source))?;
        let report = self.load()?;
        if report.valid_len < report.total_len {
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(|source| self.write_err(source))?;
            file.set_len(report.valid_len)
                .map_err(|source| self.write_err(source))?;
        }
        Ok(report)
    }

    /// Rewrites the journal to the live entries `live` computes from the current ones, under
    /// the commit lock so no other process's append is lost. Atomic: temp file + rename.
    pub fn compact(&self, live: impl FnOnce(Vec<Entry>) -> Vec<Entry>) -> Result<(), JournalError> {
        let _lock = self.lock().map_err(|source| self.write_err(source))?;
        let report = self.load()?;
        let entries = live(report.entries);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|s| self.write_err(s))?;
        let mut buf = format!("{MAGIC} {JOURNAL_VERSION}\n").into_bytes();
        for e in &entries {
            encode_line(e, &mut buf);
        }
        tmp.write_all(&buf).map_err(|s| self.write_err(s))?;
        tmp.as_file().sync_all().map_err(|s| self.write_err(s))?;
        tmp.persist(&self.path)
            .map_err(|e| self.write_err(e.error))?;
        Ok(())
    }

    fn write_err(&self, source: io::Error) -> JournalError {
        JournalError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Flushes appended entries to stable storage (once per run, not per record).
    pub fn sync(&self) -> Result<(), JournalError> {
        match File::open(&self.path) {
            Ok(f) => f.sync_all().map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Ok(()),
        }
    }

    /// The short commit lock. The lock file stays open for the journal's lifetime; each
    /// call locks it and the guard unlocks on drop.
    fn lock(&self) -> io::Result<LockGuard<'_>> {
        let mut slot = self.lock_file.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            if let Some(dir) = self.lock_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *slot = Some(
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&self.lock_path)?,
            );
        }
        slot.as_ref().expect("just opened").lock()?;
        Ok(LockGuard { slot })
    }
}

fn encode_line(entry: &Entry, out: &mut Vec<u8>) {
    // `crc tag json`: the tag picks the record type, so a line deserializes straight into
    // its struct (an internally tagged enum would buffer every value first). Written in
    // place after a placeholder for the checksum, which is filled in once the body is known.
    let start = out.len();
    let hint = match entry {
        Entry::Node(r) => r.manifest.text().len(),
        Entry::Job(r) => r.manifest.text().len(),
        Entry::File(_) => 0,
    };
    out.reserve(hint + 256);
    out.extend_from_slice(b"00000000 ");
    let body = out.len();
    match entry {
        Entry::Node(r) => {
            out.extend_from_slice(b"N ");
            serde_json::to_writer(&mut *out, r).expect("records serialize");
        }
        Entry::File(r) => {
            out.extend_from_slice(b"F ");
            serde_json::to_writer(&mut *out, r).expect("records serialize");
        }
        Entry::Job(r) => {
            out.extend_from_slice(b"J ");
            serde_json::to_writer(&mut *out, r).expect("records serialize");
        }
    }
    let crc = crc32fast::hash(&out[body..]);
    out[start..start + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
    out.push(b'\n');
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let line = line.strip_suffix(b"\n")?;
    if line.len() < 12 || line[8] != b' ' || line[10] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let body = &line[9..];
    if crc32fast::hash(body) != crc {
        return None;
    }
    let json = &body[2..];
    match body[0] {
        b'N' => serde_json::from_slice(json).ok().map(Entry::Node),
        b'F' => serde_json::from_slice(json).ok().map(Entry::File),
        b'J' => serde_json::from_slice(json).ok().map(Entry::Job),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::FileMeta;

    fn file_entry(path: &str) -> Entry {
        Entry::File(FileRecord {
            path: path.into(),
            meta: FileMeta {
                size: 1,
                mtime_ns: 2,
                ctime_ns: 3,
                inode: 4,
                is_dir: false,
            },
            digest: "d".into(),
        })
    }

    #[test]
    fn round_trips_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&[file_entry("a"), file_entry("b")]).unwrap();
        j.append(&[file_entry("c")]).unwrap();
        let full = std::fs::read(j.path()).unwrap();
        // Tear the last line in the middle.
        std::fs::write(j.path(), &full[..full.len() - 5]).unwrap();
        let r = j.load().unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.dropped, 1);
        j.repair().unwrap();
        j.append(&[file_entry("d")]).unwrap();
        let r = j.load().unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.dropped, 0);
    }

    #[test]
    fn corrupted_line_fails_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&[file_entry("a"), file_entry("b")]).unwrap();
        let text = std::fs::read_to_string(j.path()).unwrap();
        std::fs::write(j.path(), text.replacen("\"a\"", "\"z\"", 1)).unwrap();
        let r = j.load().unwrap();
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.dropped, 1);
    }

    #[test]
    fn newer_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        std::fs::write(j.path(), "flow-journal 99\n").unwrap();
        assert!(matches!(
            j.load(),
            Err(JournalError::TooNew { found: 99, .. })
        ));
    }
}
