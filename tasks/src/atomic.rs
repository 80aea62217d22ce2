//! Whole-file writes that a crash cannot leave half done: a temp file beside the target, then
//! a rename, so a reader (or a crash) sees the old file or the new one, never a mix. One
//! helper for every file flow-tasks writes: run configs, metrics files, the metrics cache,
//! the registry and the compare outputs.

use std::io::Write;
use std::path::Path;

/// How a file is written beyond the rename.
#[derive(Clone, Copy)]
struct Mode {
    /// File mode before the umask; `None` keeps the temp file's (0600).
    permissions: Option<u32>,
    /// fsync the file before the rename and its directory after: for files whose loss
    /// would lose work (the registry), not for caches and derived outputs.
    durable: bool,
}

/// Replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(
        path,
        bytes,
        Mode {
            permissions: None,
            durable: false,
        },
    )
}

/// [`write_atomic`], synced to disk before it returns.
pub fn write_atomic_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(
        path,
        bytes,
        Mode {
            permissions: None,
            durable: true,
        },
    )
}

/// [`write_atomic`] for outputs meant to be shared (a report on a cluster filesystem):
/// readable by others as far as the umask allows, instead of the temp file's 0600.
pub fn write_atomic_shared(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(
        path,
        bytes,
        Mode {
            permissions: Some(0o644),
            durable: false,
        },
    )
}

fn write(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".flow-tmp-");
    if let Some(bits) = mode.permissions {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(bits));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if mode.durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if mode.durable
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        write_atomic(&p, b"one").unwrap();
        assert_eq!(mode(&p), 0o600, "private unless shared");
        write_atomic_durable(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        write_atomic_shared(&p, b"three").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "three");
        assert_eq!(mode(&p) & !0o644, 0, "at most 0644");
        assert_eq!(mode(&p) & 0o600, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
