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

/// A held claim; dropping it releases the node.
#[derive(Debug)]
pub struct Claim {
    _file: File,
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
        let file = self.open(id)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self::stamp(file)?)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Waits until `id` is free, then claims it. Blocking: run it off the async threads.
    pub fn claim_blocking(&self, id: &str) -> io::Result<Claim> {
        let file = self.open(id)?;
        file.lock()?;
        Self::stamp(file)
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

    fn stamp(mut file: File) -> io::Result<Claim> {
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(Claim { _file: file })
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
    }
}
