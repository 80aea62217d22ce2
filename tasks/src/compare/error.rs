//! Why a compare could not write its outputs.

use std::path::PathBuf;

use super::output::Output;

/// A compare failure. Bad metrics are never one: such runs are flagged in the outputs.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot create the output directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw {output}: {message}")]
    Draw { output: Output, message: String },
    #[error("cannot encode {output} as PNG")]
    Encode {
        output: Output,
        #[source]
        source: png::EncodingError,
    },
    #[error("the bundled plot font cannot be loaded")]
    Font,
    #[error(
        "{path} has format version {found}, newer than this flow understands ({supported}); \
         delete it to re-render every output"
    )]
    StateTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("run id `{id}` is given twice")]
    DuplicateRunId { id: String },
    #[error("no run has the id{} {}", if .ids.len() == 1 { "" } else { "s" }, .ids.join(", "))]
    UnknownIds { ids: Vec<String> },
}
