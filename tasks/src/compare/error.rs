//! Why a compare could not write its outputs.

use std::path::PathBuf;

use super::output::Output;

/// A compare failure. Bad metrics are never one: such runs are flagged in the outputs.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The output directory could not be created.
    #[error("cannot create the output directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output or the state file could not be written.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// plotters failed to draw a plot.
    #[error("cannot draw {output}: {message}")]
    Draw { output: Output, message: String },
    /// A drawn plot could not be encoded.
    #[error("cannot encode {output} as PNG")]
    Encode {
        output: Output,
        #[source]
        source: png::EncodingError,
    },
    /// The font built into flow is unusable (a broken build).
    #[error("the bundled plot font cannot be loaded")]
    Font,
    /// The state file was written by a newer flow.
    #[error(
        "{path} has format version {found}, newer than this flow understands ({supported}); \
         delete it to re-render every output"
    )]
    StateTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    /// Two runs share an id, so outputs could not tell them apart.
    #[error("run id `{id}` is given twice")]
    DuplicateRunId { id: String },
    /// `--ids` named runs that are not among the runs given.
    #[error("no run has the id{} {}", if .ids.len() == 1 { "" } else { "s" }, .ids.join(", "))]
    UnknownIds { ids: Vec<String> },
}
