//! Per-instance claims, so two `flow` processes on one project never run a node at once.
//!
//! A claim is an exclusive `flock` on `.cache/claims/<hash of id>`, held while the node runs
//! and released by the kernel when the process ends, however it ends (kill -9 included).
//! The file holds the owner's pid, for messages. Read-only commands never take claims.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The claims directory of a project.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

/// A held claim; dropping it removes the claim file and releases the node.
#[derive(Debug)]
pub struct Claim {
    file: File,
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Unlink while still locked: a waiter that locks the old inode afterwards sees it is
        // no longer the file at `path` and retries on a fresh one (see `acquired`).
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

impl Claims {
    pub fn new(cache_dir: &Path) -> Self {
        Claims {
            dir: cache_dir.join("claims"),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        let hash = blake3::hash(id.as_bytes()).to_hex();
        self.dir.join(format!("{}.claim", &hash[..32]))
    }

    fn open(&self, id: &str) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.path(id))
    }

    /// Claims `id` if no other process holds it.
    pub fn try_claim(&self, id: &str) -> io::Result<Option<Claim>> {
        loop {
            let file = self.open(id)?;
            match file.try_lock() {
                Ok(()) => {
                    if let Some(claim) = self.acquired(id, file)? {
                        return Ok(Some(claim));
                    }
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// Waits until `id` is free, then claims it. Blocking: run it off the async threads.
    pub fn claim_blocking(&self, id: &str) -> io::Result<Claim> {
        loop {
            let file = self.open(id)?;
            file.lock()?;
            if let Some(claim) = self.acquired(id, file)? {
                return Ok(claim);
            }
        }
    }

    /// A lock is a claim only if its file is still the one at the path (the previous holder
    /// may have removed it between our open and our lock).
    fn acquired(&self, id: &str, mut file: File) -> io::Result<Option<Claim>> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path(id);
        let current = match std::fs::metadata(&path) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.ino() != current {
            return Ok(None);
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(Some(Claim { file, path }))
    }

    /// The pid written by the current or last holder of `id`.
    pub fn holder(&self, id: &str) -> Option<u32> {
        let mut s = String::new();
        File::open(self.path(id))
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        s.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_excludes_others_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path());
        let held = claims.try_claim("train[lr=1]").unwrap().expect("free");
        assert!(claims.try_claim("train[lr=1]").unwrap().is_none());
        assert!(claims.try_claim("train[lr=2]").unwrap().is_some());
        assert_eq!(claims.holder("train[lr=1]"), Some(std::process::id()));
        drop(held);
        assert!(claims.try_claim("train[lr=1]").unwrap().is_some());
        assert!(
            std::fs::read_dir(dir.path().join("claims"))
                .unwrap()
                .next()
                .is_none(),
            "released claims leave no files behind"
        );
    }
}
