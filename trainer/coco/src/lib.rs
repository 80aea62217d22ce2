//! flow-coco: the data side of flow-train (COCO annotation files, masks, evaluation equal to
//! pycocotools, the synthetic dataset) in plain Rust, so that it is built and tested without
//! libtorch; `flow-train` turns its images and targets into tensors.

pub mod dataset;
pub mod eval;
pub mod format;
pub mod mask;
pub mod synth;
