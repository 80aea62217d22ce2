//! Why writing a synthetic dataset failed.

use std::path::PathBuf;

/// An error of the synthetic dataset generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A parameter is out of range.
    #[error("invalid synthetic dataset parameters: {message}")]
    InvalidConfig {
        /// What is wrong and what to pass instead.
        message: String,
    },
    /// The output directory holds files and overwriting was not asked for.
    #[error("{} is not empty: choose another --out or pass --force to replace it", path.display())]
    NotEmpty {
        /// The output directory.
        path: PathBuf,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "rename ... to").
        action: String,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image could not be encoded.
    #[error("cannot encode {}: {source}", path.display())]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}

impl SynthError {
    pub(crate) fn io(action: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SynthError::Io {
            action: action.to_owned(),
            path: path.into(),
            source,
        }
    }
}
