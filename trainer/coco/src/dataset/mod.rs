//! The RF-DETR COCO dataset layout (`train/`, `valid/`, `test/`, each with
//! `_annotations.coco.json` beside its images): reading and checking a split, decoding images
//! and masks, the reference's augmentations and normalisation, and a parallel batch loader.

mod augment;
mod batch;
mod bitmap;
mod error;
mod json;
mod loader;
mod raw;
mod sample;
mod split;
mod transform;

pub use augment::{Augment, TrainAugment, multi_scale_scales};
pub use batch::{Batch, Target};
pub use bitmap::Bitmap;
pub use error::DatasetError;
pub use loader::{Batches, Loader, LoaderConfig};
pub use raw::RawSample;
pub use sample::{IMAGENET_MEAN, IMAGENET_STD, Sample};
pub use split::{ANNOTATIONS_FILE, Annotation, CocoSplit, ImageRecord, Segmentation, Split};
pub use transform::{crop, hflip, resize, resize_shorter_side, square_resize};
