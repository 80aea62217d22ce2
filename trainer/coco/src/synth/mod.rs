//! The synthetic COCO instance-segmentation dataset (`flow-train synth`): shapes of five
//! classes on textured backgrounds, overlapping and occluding each other, in the RF-DETR /
//! Roboflow layout, byte-identical for a seed, so that the whole trainer runs on a laptop CPU.

mod coco_json;
mod config;
mod error;
mod generate;
mod paint;
pub(crate) mod rng;
mod scene;
mod shapes;
mod write;

pub use coco_json::SUPER_CATEGORY;
pub use config::{ImageFormat, SynthConfig};
pub use error::SynthError;
pub use shapes::ShapeClass;
pub use write::{ANNOTATIONS_FILE, SPLITS, SplitSummary, SynthSummary, write_dataset};
