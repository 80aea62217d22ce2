//! Whole-file writes that a crash cannot leave half done: temp file beside the target, then
//! rename.

use std::path::Path;

use super::error::CompareError;

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so a reader
/// (or a crash) sees the old file or the new one, never a mix. Outputs are meant to be shared
/// (a report on a cluster filesystem), so they are written readable by others.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CompareError> {
    crate::atomic::write_atomic_shared(path, bytes).map_err(|source| CompareError::Write {
        path: path.to_path_buf(),
        source,
    })
}
