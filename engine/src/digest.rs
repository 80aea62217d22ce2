//! Content digests of inputs and outputs, reusing cached ones while a file's metadata
//! (size, mtime, ctime, inode) is unchanged, so unchanged checkpoints are never re-hashed.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::io;
use std::sync::Mutex;

use crate::disk::{Digest, Disk, FileMeta};
use crate::graph::Input;
use crate::state::FileRecord;

/// Digests paths through a [`Disk`], remembering what it hashed for the journal.
pub struct Digester<'a> {
    disk: &'a dyn Disk,
    cache: &'a HashMap<String, FileRecord>,
    /// Hashed during this process.
    fresh: Mutex<Fresh>,
}

/// Digests hashed during this process, and which of them the journal does not have yet.
#[derive(Default)]
struct Fresh {
    /// Path -> (record, whether the journal has it).
    records: HashMap<String, (FileRecord, bool)>,
    /// The paths whose flag is false, each once: a run takes the new ones after every
    /// instance, which must not cost a walk over everything hashed so far (quadratic over a
    /// 20,000-instance sweep).
    unpersisted: Vec<String>,
}

impl<'a> Digester<'a> {
    pub fn new(disk: &'a dyn Disk, cache: &'a HashMap<String, FileRecord>) -> Self {
        Digester {
            disk,
            cache,
            fresh: Mutex::new(Fresh::default()),
        }
    }

    pub fn disk(&self) -> &dyn Disk {
        self.disk
    }

    /// A regular file's digest; `None` when it does not exist.
    pub fn file(&self, path: &str) -> io::Result<Option<Digest>> {
        let Some(meta) = self.disk.stat(path)? else {
            return Ok(None);
        };
        self.file_with_meta(path, meta).map(Some)
    }

    /// The digest known for a file with this metadata, if any.
    fn known(&self, path: &str, meta: &FileMeta) -> Option<Digest> {
        self.with_known(path, meta, Digest::clone)
    }

    /// `f` of the digest known for a file with this metadata, if any: no copy of it.
    fn with_known<R>(
        &self,
        path: &str,
        meta: &FileMeta,
        f: impl FnOnce(&Digest) -> R,
    ) -> Option<R> {
        {
            let fresh = self.fresh.lock().unwrap();
            if let Some((r, _)) = fresh.records.get(path)
                && r.meta == *meta
            {
                return Some(f(&r.digest));
            }
        }
        if let Some(r) = self.cache.get(path)
            && r.meta == *meta
        {
            return Some(f(&r.digest));
        }
        None
    }

    /// A regular file's digest, given the metadata just read for it.
    fn file_with_meta(&self, path: &str, meta: FileMeta) -> io::Result<Digest> {
        if let Some(d) = self.known(path, &meta) {
            return Ok(d);
        }
        let digest = self.disk.hash_file(path)?;
        // A file that changed while it was hashed must not be cached as unchanged.
        if self.disk.stat(path)? == Some(meta) {
            let mut fresh = self.fresh.lock().unwrap();
            let record = FileRecord {
                path: path.to_string(),
                meta,
                digest: digest.clone(),
            };
            let before = fresh.records.insert(path.to_string(), (record, false));
            if before.is_none_or(|(_, persisted)| persisted) {
                fresh.unpersisted.push(path.to_string());
            }
        }
        Ok(digest)
    }

    /// A file's digest, or a directory's: blake3 over its files' relative paths and digests.
    pub fn path(&self, path: &str) -> io::Result<Option<Digest>> {
        match self.disk.stat(path)? {
            None => Ok(None),
            Some(m) if !m.is_dir => self.file_with_meta(path, m).map(Some),
            Some(_) => {
                let mut h = blake3::Hasher::new();
                for f in self.disk.walk(path)? {
                    let d = self.file(&f)?.unwrap_or_default();
                    let rel = f.strip_prefix(path).unwrap_or(&f);
                    h.update(rel.as_bytes());
                    h.update(b"\0");
                    h.update(d.as_bytes());
                    h.update(b"\n");
                }
                Ok(Some(format!("tree:{}", h.finalize().to_hex())))
            }
        }
    }

    /// Whether `path` (a file or directory) has the digest `expected`, as [`Digester::path`]
    /// would tell; `None` when nothing exists there. A known digest is compared in place.
    pub fn path_matches(&self, path: &str, expected: Option<&Digest>) -> io::Result<Option<bool>> {
        match self.disk.stat(path)? {
            None => Ok(None),
            Some(m) if !m.is_dir => {
                if let Some(same) = self.with_known(path, &m, |d| Some(d) == expected) {
                    return Ok(Some(same));
                }
                let d = self.file_with_meta(path, m)?;
                Ok(Some(Some(&d) == expected))
            }
            Some(_) => Ok(self.path(path)?.map(|d| Some(&d) == expected)),
        }
    }

    /// Expands one declared input to its files and their digests.
    pub fn input(&self, input: &Input, out: &mut BTreeMap<String, Digest>) -> io::Result<()> {
        let files = if input.glob {
            self.disk.glob(&input.path)?
        } else {
            match self.disk.stat(&input.path)? {
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("input `{}` does not exist", input.path),
                    ));
                }
                Some(m) if m.is_dir => self.disk.walk(&input.path)?,
                Some(m) => {
                    let d = self.file_with_meta(&input.path, m)?;
                    out.insert(input.path.clone(), d);
                    return Ok(());
                }
            }
        };
        for f in files {
            if let Some(d) = self.file(&f)? {
                out.insert(f, d);
            }
        }
        Ok(())
    }

    /// As [`Digester::input`], but a plain file whose metadata, as the graph's existence
    /// check saw it ([`Input::seen`]), has a known digest is not stated again: for planning,
    /// which follows that check at once. Anything else (a file not seen or changed since, to
    /// be hashed) goes to the disk; a run digests its inputs anew when it starts.
    pub fn input_as_seen(
        &self,
        input: &Input,
        out: &mut BTreeMap<String, Digest>,
    ) -> io::Result<()> {
        if let Some(meta) = &input.seen
            && !input.glob
            && !meta.is_dir
            && let Some(d) = self.known(&input.path, meta)
        {
            out.insert(input.path.clone(), d);
            return Ok(());
        }
        self.input(input, out)
    }

    /// Cache entries hashed since the last call, to be appended to the journal.
    pub fn take_new(&self) -> Vec<FileRecord> {
        let mut fresh = self.fresh.lock().unwrap();
        let Fresh {
            records,
            unpersisted,
        } = &mut *fresh;
        let mut v: Vec<FileRecord> = unpersisted
            .drain(..)
            .filter_map(|path| {
                let (r, persisted) = records.get_mut(&path)?;
                (!std::mem::replace(persisted, true)).then(|| r.clone())
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::MemDisk;
    use foldhash::HashMapExt;

    #[test]
    fn path_matches_agrees_with_path() {
        let disk = MemDisk::default();
        disk.write("a.txt", b"A");
        disk.write("d/x.txt", b"X");
        let cache = HashMap::new();
        let digester = Digester::new(&disk, &cache);
        let a = digester.path("a.txt").unwrap().unwrap();
        let dir = digester.path("d").unwrap().unwrap();
        for (path, digest) in [("a.txt", &a), ("d", &dir)] {
            assert_eq!(
                digester.path_matches(path, Some(digest)).unwrap(),
                Some(true)
            );
            assert_eq!(digester.path_matches(path, None).unwrap(), Some(false));
            let other = "0".repeat(64);
            assert_eq!(
                digester.path_matches(path, Some(&other)).unwrap(),
                Some(false)
            );
        }
        assert_eq!(digester.path_matches("missing", Some(&a)).unwrap(), None);
        // Not known yet: hashed, then compared.
        disk.write("a.txt", b"B");
        assert_eq!(
            digester.path_matches("a.txt", Some(&a)).unwrap(),
            Some(false)
        );
    }

    #[test]
    fn each_hashed_file_is_taken_for_the_journal_once_per_content() {
        let disk = MemDisk::default();
        disk.write("b.txt", b"B");
        disk.write("a.txt", b"A");
        let cache = HashMap::new();
        let digester = Digester::new(&disk, &cache);
        digester.file("b.txt").unwrap();
        digester.file("a.txt").unwrap();
        digester.file("a.txt").unwrap();
        let paths = |v: Vec<FileRecord>| v.into_iter().map(|r| r.path).collect::<Vec<_>>();
        assert_eq!(paths(digester.take_new()), ["a.txt", "b.txt"]);
        assert!(digester.take_new().is_empty());
        // Known and unchanged: nothing new. Changed: hashed again, and new again, once.
        digester.file("a.txt").unwrap();
        assert!(digester.take_new().is_empty());
        disk.write("a.txt", b"AA");
        digester.file("a.txt").unwrap();
        disk.write("a.txt", b"AAA");
        digester.file("a.txt").unwrap();
        let again = digester.take_new();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].digest, digester.file("a.txt").unwrap().unwrap());
    }
}
