//! Errors of building and running the model.

use thiserror::Error;

/// What can go wrong when building or running an RF-DETR-Seg model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A model size name that is not one of the presets.
    #[error(
        "unknown model size `{0}` (expected tiny, nano, small, medium, large, xlarge or 2xlarge)"
    )]
    UnknownSize(String),
    /// A configuration that breaks an invariant of the architecture.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// An input tensor whose shape the model cannot take.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A libtorch function outside tch's wrappers (autocast, fused kernels) failed.
    #[error(transparent)]
    TorchExt(#[from] crate::torch_ext::TorchExtError),
}
