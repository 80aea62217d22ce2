//! The RF-DETR-Seg model family (issue 8): presets, the modules (each in its own file, built
//! under the reference's variable names), post-processing, and weight import from
//! `torch.save` checkpoints.

pub mod backbone;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod deform_attn;
pub mod error;
pub mod import;
pub mod layers;
pub mod params;
pub mod pickle;
pub mod postprocess;
pub mod projector;
pub mod rfdetr;
pub mod seg_head;
pub mod transformer;

pub use config::{ModelConfig, ModelSize};
pub use error::ModelError;
pub use rfdetr::{Mode, ModelOutput, Predictions, RfDetrSeg};
