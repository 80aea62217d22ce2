//! Whole-file writes that a crash cannot leave half done: temp file beside the target, then
//! rename.

use std::io::Write;
use std::path::Path;

use super::error::CompareError;

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so a reader
/// (or a crash) sees the old file or the new one, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CompareError> {
    let err = |source| CompareError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".compare-tmp-");
    // Outputs are meant to be shared (a report on a cluster filesystem): tempfile's default 0600
    // would make them private. The umask still applies.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
