//! A compact binary snapshot of the state the journal holds up to some byte offset, so that
//! loading a big project's state does not parse every JSON line of the journal.
//!
//! Only an accelerator: the journal stays the record. The snapshot names the journal it was
//! taken from (inode, byte offset and a digest of the journal bytes just before that offset)
//! and carries a format version and a crc32 checksum of its whole content. Loading uses it
//! only when all of these agree, then reads the journal's lines after the offset; a missing,
//! stale, corrupt or newer snapshot is ignored and the whole journal is read. It is written
//! atomically (temp file + rename), never fsynced: a snapshot torn by a crash fails its
//! checksum.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::disk::FileMeta;
use crate::key::StoredManifest;
use crate::key_check::KeyCheck;
use crate::state::{FileRecord, JobRecord, NodeRecord, RunStatus, State};

/// The snapshot format this build writes and reads; any other is ignored (and replaced).
pub const SNAPSHOT_VERSION: u32 = 2;
const MAGIC: &[u8; 12] = b"flow-snap\0\0\0";
/// How many journal bytes before the offset are digested to recognise the journal.
const FINGERPRINT_LEN: u64 = 4096;
const FILE_NAME: &str = "state.snapshot";

/// Which journal prefix a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalMark {
    pub inode: u64,
    /// The state holds exactly the journal's entries before this byte.
    pub offset: u64,
    /// Entries (live or superseded) in that prefix: drives compaction.
    pub entries: u64,
}

/// A snapshot read back and checked against the journal.
pub struct Loaded {
    pub state: State,
    pub mark: JournalMark,
    /// The snapshot file's size in bytes.
    pub len: u64,
}

pub fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE_NAME)
}

/// Digest of the journal bytes just before `offset` (the header included when the journal is
/// short): a journal rewritten, cut or replaced since the snapshot no longer matches.
fn fingerprint(journal: &Path, offset: u64) -> io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(journal)?;
    let start = offset.saturating_sub(FINGERPRINT_LEN);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; (offset - start) as usize];
    f.read_exact(&mut buf)?;
    let mut h = blake3::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(&buf);
    Ok(*h.finalize().as_bytes())
}

/// Writes a snapshot of `state`, which must hold exactly the journal's entries before
/// `mark.offset`. Atomic; failures are returned but callers may ignore them.
pub fn write(cache_dir: &Path, journal: &Path, state: &State, mark: JournalMark) -> io::Result<()> {
    let fp = fingerprint(journal, mark.offset)?;
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir)?;
    // Streamed through a small buffer, so writing costs no second copy of the state.
    let mut e = Encoder {
        buf: Vec::with_capacity(1 << 17),
        crc: crc32fast::Hasher::new(),
        out: tmp.as_file_mut(),
    };
    e.buf.extend_from_slice(MAGIC);
    e.u32(SNAPSHOT_VERSION);
    e.u64(mark.inode);
    e.u64(mark.offset);
    e.u64(mark.entries);
    e.buf.extend_from_slice(&fp);
    e.u64(state.files.len() as u64);
    for r in state.files.values() {
        e.str(&r.path);
        e.u64(r.meta.size);
        e.u64(r.meta.mtime_ns as u64);
        e.u64(r.meta.ctime_ns as u64);
        e.u64(r.meta.inode);
        e.u8(r.meta.is_dir as u8);
        e.str(&r.digest);
        e.spill()?;
    }
    e.u64(state.nodes.len() as u64);
    for r in state.nodes.values() {
        e.str(&r.id);
        e.str(&r.key);
        e.opt(r.check, |e, c| e.buf.extend_from_slice(&c.0));
        e.u8(match r.status {
            RunStatus::Ok => 0,
            RunStatus::Failed => 1,
        });
        e.opt(r.exit_code, |e, c| e.u32(c as u32));
        e.opt(r.error.as_deref(), |e, s| e.str(s));
        e.u64(r.started_at);
        e.u64(r.duration_ms);
        e.str(r.manifest.text());
        e.u64(r.outputs.len() as u64);
        for (p, d) in &r.outputs {
            e.str(p);
            e.str(d);
        }
        e.opt(r.attempt, |e, a| e.u32(a));
        e.spill()?;
    }
    // Jobs are few (SLURM submissions in flight): their JSON form is good enough.
    e.u64(state.jobs.len() as u64);
    for j in state.jobs.values() {
        e.str(&serde_json::to_string(j).map_err(io::Error::other)?);
        e.spill()?;
    }
    e.finish()?;
    tmp.persist(path(cache_dir)).map_err(|e| e.error)?;
    Ok(())
}

/// Reads the snapshot when it exists, is intact, has this build's version and still matches
/// the journal at `journal`; `None` otherwise (the caller reads the whole journal).
pub fn read(cache_dir: &Path, journal: &Path) -> Option<Loaded> {
    let file = std::fs::File::open(path(cache_dir)).ok()?;
    // SAFETY: snapshots are never modified in place, only replaced by a rename, so the
    // mapped file's content cannot change while it is read. Mapped (and populated at once)
    // rather than read: no copy, no page faults on a buffer of several megabytes.
    let bytes = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
    let loaded = decode(&bytes)?;
    let meta = std::fs::metadata(journal).ok()?;
    let mark = loaded.mark;
    if std::os::unix::fs::MetadataExt::ino(&meta) != mark.inode || meta.len() < mark.offset {
        return None;
    }
    if fingerprint(journal, mark.offset).ok()? != *loaded_fingerprint(&bytes)? {
        return None;
    }
    Some(loaded)
}

fn loaded_fingerprint(bytes: &[u8]) -> Option<&[u8; 32]> {
    let at = MAGIC.len() + 4 + 8 * 3;
    bytes.get(at..at + 32)?.try_into().ok()
}

/// Parses and checks a snapshot's bytes (magic, version, checksum, structure).
fn decode(bytes: &[u8]) -> Option<Loaded> {
    if bytes.len() < MAGIC.len() + 4 + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != sum {
        return None;
    }
    let mut d = Decoder(&body[MAGIC.len()..]);
    if d.u32()? != SNAPSHOT_VERSION {
        return None;
    }
    let mark = JournalMark {
        inode: d.u64()?,
        offset: d.u64()?,
        entries: d.u64()?,
    };
    d.take(32)?;
    let mut state = State::default();
    let n = d.len()?;
    state.files.reserve(n);
    for _ in 0..n {
        let path = d.string()?;
        let meta = FileMeta {
            size: d.u64()?,
            mtime_ns: d.u64()? as i64,
            ctime_ns: d.u64()? as i64,
            inode: d.u64()?,
            is_dir: d.u8()? != 0,
        };
        let digest = d.string()?;
        state
            .files
            .insert(path.clone(), FileRecord { path, meta, digest });
    }
    let n = d.len()?;
    state.nodes.reserve(n);
    for _ in 0..n {
        let id = d.string()?;
        let key = d.string()?;
        let check = d.opt(|d| Some(KeyCheck(d.take(16)?.try_into().ok()?)))?;
        let status = match d.u8()? {
            0 => RunStatus::Ok,
            1 => RunStatus::Failed,
            _ => return None,
        };
        let exit_code = d.opt(|d| d.u32().map(|c| c as i32))?;
        let error = d.opt(Decoder::string)?;
        let started_at = d.u64()?;
        let duration_ms = d.u64()?;
        let manifest = StoredManifest::from_text(d.string()?);
        let mut outputs = BTreeMap::new();
        for _ in 0..d.len()? {
            let p = d.string()?;
            outputs.insert(p, d.string()?);
        }
        let attempt = d.opt(Decoder::u32)?;
        state.nodes.insert(
            id.clone(),
            NodeRecord {
                id,
                key,
                check,
                status,
                exit_code,
                error,
                started_at,
                duration_ms,
                manifest,
                outputs,
                attempt,
            },
        );
    }
    for _ in 0..d.len()? {
        let j: JobRecord = serde_json::from_str(&d.string()?).ok()?;
        state.jobs.insert(j.id.clone(), j);
    }
    if !d.0.is_empty() {
        return None;
    }
    Some(Loaded {
        state,
        mark,
        len: bytes.len() as u64,
    })
}

/// Writes the snapshot's fields to a file through a buffer, summing what it writes.
struct Encoder<'a> {
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    out: &'a mut std::fs::File,
}

impl Encoder<'_> {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
    /// Writes the buffer out once it is large.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
    /// Writes the rest, then the checksum of everything before it.
    fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        let sum = self.crc.finalize();
        self.out.write_all(&sum.to_le_bytes())
    }
}

struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count, refused when larger than the bytes left could hold.
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, Journal};
    use crate::key::Manifest;
    use crate::state::JobPhase;

    fn file(path: &str, digest: &str) -> Entry {
        Entry::File(FileRecord {
            path: path.into(),
            meta: FileMeta {
                size: 3,
                mtime_ns: -5,
                ctime_ns: 7,
                inode: 11,
                is_dir: false,
            },
            digest: digest.into(),
        })
    }

    fn node(id: &str, status: RunStatus) -> Entry {
        let manifest = Manifest {
            task: "shell".into(),
            command: Some(format!("make {id}")),
            ..Manifest::default()
        };
        Entry::Node(NodeRecord {
            id: id.into(),
            key: format!("key-{id}"),
            check: (status == RunStatus::Ok).then_some(KeyCheck([7; 16])),
            status,
            exit_code: (status == RunStatus::Failed).then_some(-2),
            error: (status == RunStatus::Failed).then(|| "boom ✗".to_string()),
            started_at: 12,
            duration_ms: 34,
            manifest: StoredManifest::new(&manifest),
            outputs: [(format!("out/{id}"), "d".repeat(64))].into(),
            attempt: Some(3),
        })
    }

    fn job(id: &str) -> Entry {
        Entry::Job(JobRecord {
            id: id.into(),
            phase: JobPhase::Submitted,
            job_name: "flow-x".into(),
            job: Some("123_4".into()),
            provisional_key: "pk".into(),
            manifest: StoredManifest::new(&Manifest::default()),
            script: "s.sh".into(),
            marker: "m".into(),
            submitted_at: 9,
        })
    }

    /// A state's content, comparable: every live entry as its journal JSON.
    fn dump(s: &State) -> Vec<String> {
        s.entries()
            .iter()
            .map(|e| match e {
                Entry::Node(r) => serde_json::to_string(r).unwrap(),
                Entry::File(r) => serde_json::to_string(r).unwrap(),
                Entry::Job(r) => serde_json::to_string(r).unwrap(),
            })
            .collect()
    }

    fn setup() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&[
            file("a.txt", "aa"),
            node("n1", RunStatus::Ok),
            node("n2", RunStatus::Failed),
            job("n3"),
            file("a.txt", "a2"),
        ])
        .unwrap();
        (dir, j)
    }

    #[test]
    fn round_trips_every_record() {
        let (dir, j) = setup();
        let full = State::peek(dir.path()).unwrap();
        full.write_snapshot(dir.path()).unwrap();
        let snap = read(dir.path(), j.path()).expect("snapshot matches the journal");
        assert_eq!(dump(&snap.state), dump(&full));
        assert_eq!(snap.mark.entries, 5);
        assert_eq!(snap.mark.offset, std::fs::metadata(j.path()).unwrap().len());
        let loaded = State::load(dir.path()).unwrap();
        assert_eq!(dump(&loaded), dump(&full));
        assert_eq!(loaded.journal_entries, 5);
    }

    #[test]
    fn lines_appended_after_the_snapshot_are_read_from_the_journal() {
        let (dir, j) = setup();
        State::peek(dir.path())
            .unwrap()
            .write_snapshot(dir.path())
            .unwrap();
        j.append(&[node("n3", RunStatus::Ok), file("b.txt", "bb")])
            .unwrap();
        let full = State::from_journal_only(dir.path());
        let via_snapshot = State::load(dir.path()).unwrap();
        assert_eq!(dump(&via_snapshot), dump(&full));
        assert!(
            via_snapshot.jobs.is_empty(),
            "the node record supersedes the job"
        );
        assert_eq!(via_snapshot.journal_entries, 7);
        assert_eq!(dump(&State::peek(dir.path()).unwrap()), dump(&full));
    }

    #[test]
    fn a_corrupt_or_foreign_version_snapshot_is_ignored() {
        let (dir, j) = setup();
        let full = State::peek(dir.path()).unwrap();
        full.write_snapshot(dir.path()).unwrap();
        let good = std::fs::read(path(dir.path())).unwrap();
        // A flipped byte anywhere fails the checksum; a torn file too.
        for at in [0, MAGIC.len() + 1, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(path(dir.path()), &bad).unwrap();
            assert!(read(dir.path(), j.path()).is_none(), "byte {at}");
            assert_eq!(dump(&State::load(dir.path()).unwrap()), dump(&full));
        }
        std::fs::write(path(dir.path()), &good[..good.len() / 3]).unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        // Another version, with a checksum that matches: ignored all the same.
        let mut other = good[..good.len() - 4].to_vec();
        other[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
        let sum = crc32fast::hash(&other);
        other.extend_from_slice(&sum.to_le_bytes());
        std::fs::write(path(dir.path()), &other).unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        assert_eq!(dump(&State::peek(dir.path()).unwrap()), dump(&full));
    }

    #[test]
    fn a_rewritten_or_replaced_journal_makes_the_snapshot_stale() {
        let (dir, j) = setup();
        State::peek(dir.path())
            .unwrap()
            .write_snapshot(dir.path())
            .unwrap();
        // Compaction replaces the file (a new inode).
        j.compact(|entries| entries.into_iter().take(2).collect())
            .unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        assert_eq!(State::load(dir.path()).unwrap().nodes.len(), 1);
        // Rewritten in place (same inode, same length, other content).
        State::peek(dir.path())
            .unwrap()
            .write_snapshot(dir.path())
            .unwrap();
        assert!(read(dir.path(), j.path()).is_some());
        let text = std::fs::read_to_string(j.path()).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(j.path())
            .unwrap();
        use std::io::Write as _;
        (&f).write_all(text.replace("\"aa\"", "\"zz\"").as_bytes())
            .unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        // Cut shorter than the snapshot's offset.
        f.set_len(20).unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        // Gone.
        std::fs::remove_file(j.path()).unwrap();
        assert!(read(dir.path(), j.path()).is_none());
        assert!(State::load(dir.path()).unwrap().nodes.is_empty());
    }
}
