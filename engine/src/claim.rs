//! Per-instance claims, so two `flow` processes on one project never run a node at once.
//!
//! A claim is an exclusive open-file-description lock (`F_OFD_SETLK`) on one byte of
//! `.cache/claims.lock`, at an offset derived from the instance id. The kernel releases it
//! when the process ends, however it ends (kill -9 included), and nothing is created or
//! deleted per node (creating and unlinking a file per node cost more than the node on
//! ext4). Read-only commands never take claims.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

/// The claims of a project, through one open lock file.
#[derive(Debug, Clone)]
pub struct Claims {
    file: Arc<File>,
}

/// A held claim; dropping it releases the node.
#[derive(Debug)]
pub struct Claim {
    file: Arc<File>,
    offset: i64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = lock(&self.file, self.offset, libc::F_UNLCK as i16, false);
    }
}

/// The byte an id locks. Two ids sharing one (a 1 in 2^62 chance) only make one wait.
fn offset_of(id: &str) -> i64 {
    let hash = blake3::hash(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) >> 2) as i64
}

fn lock(file: &File, offset: i64, kind: i16, wait: bool) -> io::Result<bool> {
    // SAFETY: an all-zero flock is valid; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = offset;
    fl.l_len = 1;
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: fcntl on a file descriptor we own, with a valid flock.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) };
        if r == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
            _ => return Err(err),
        }
    }
}

impl Claims {
    pub fn open(cache_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(cache_dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(cache_dir.join("claims.lock"))?;
        Ok(Claims {
            file: Arc::new(file),
        })
    }

    /// Claims `id` if no other process holds it.
    pub fn try_claim(&self, id: &str) -> io::Result<Option<Claim>> {
        let offset = offset_of(id);
        Ok(
            lock(&self.file, offset, libc::F_WRLCK as i16, false)?.then(|| Claim {
                file: self.file.clone(),
                offset,
            }),
        )
    }

    /// Waits until `id` is free, then claims it. Blocking: run it off the async threads.
    pub fn claim_blocking(&self, id: &str) -> io::Result<Claim> {
        let offset = offset_of(id);
        lock(&self.file, offset, libc::F_WRLCK as i16, true)?;
        Ok(Claim {
            file: self.file.clone(),
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_excludes_other_processes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Claims::open(dir.path()).unwrap();
        // A second open file description stands in for another process: OFD locks
        // conflict between descriptions, not between threads of one holder.
        let other = Claims::open(dir.path()).unwrap();
        let held = mine.try_claim("train[lr=1]").unwrap().expect("free");
        assert!(other.try_claim("train[lr=1]").unwrap().is_none());
        assert!(other.try_claim("train[lr=2]").unwrap().is_some());
        drop(held);
        assert!(other.try_claim("train[lr=1]").unwrap().is_some());
    }

    #[test]
    fn a_waiter_gets_the_claim_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Claims::open(dir.path()).unwrap();
        let other = Claims::open(dir.path()).unwrap();
        let held = mine.try_claim("x").unwrap().expect("free");
        let waiter = std::thread::spawn(move || other.claim_blocking("x").map(|_| ()));
        drop(held);
        waiter.join().unwrap().unwrap();
    }
}
