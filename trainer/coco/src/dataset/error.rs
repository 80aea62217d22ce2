//! Why a dataset split could not be read: each message names the file and says what to fix.

use std::path::PathBuf;

/// An error of the COCO dataset loader.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The dataset has no folder for a split.
    #[error(
        "{} has no `{split}/` folder: the RF-DETR COCO layout needs train/, valid/ and test/, each with _annotations.coco.json beside its images",
        dataset.display()
    )]
    MissingSplit {
        /// The dataset directory.
        dataset: PathBuf,
        /// "train", "valid" or "test".
        split: &'static str,
    },
    /// A split folder without its annotation file.
    #[error("{} is missing: export the split in COCO format (Roboflow: `COCO`) so that it sits beside the images", path.display())]
    MissingAnnotations {
        /// The expected annotation file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The annotation file is not valid COCO JSON.
    #[error("{}:{line}:{column}: {message}: fix the JSON there", path.display())]
    Json {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// An annotation refers to a category that is not one of the classes.
    #[error(
        "{}: annotation {annotation} has category_id {category_id}, which is not one of the {num_classes} classes (ids {valid}): fix the annotation or declare its category (supercategory other than \"none\")",
        path.display()
    )]
    UnknownCategory {
        /// The annotation file.
        path: PathBuf,
        /// The annotation's id.
        annotation: i64,
        /// Its category id.
        category_id: i64,
        /// Number of classes.
        num_classes: usize,
        /// The valid ids, as text.
        valid: String,
    },
    /// An annotation without the `area` field, which the reference requires.
    #[error("{}: annotation {annotation} has no `area`: add its area in pixels (the mask area, or w*h of its bbox)", path.display())]
    MissingArea {
        /// The annotation file.
        path: PathBuf,
        /// The annotation's id.
        annotation: i64,
    },
    /// An annotation refers to an image id that the file does not list.
    #[error("{}: annotation {annotation} refers to image_id {image_id}, which is not in `images`: fix the id or add the image", path.display())]
    UnknownImage {
        /// The annotation file.
        path: PathBuf,
        /// The annotation's id.
        annotation: i64,
        /// The unknown image id.
        image_id: i64,
    },
    /// An RLE mask that is malformed or does not fit its image.
    #[error("{}: annotation {annotation} has a bad RLE segmentation: {message}: re-encode it for the image's size", path.display())]
    BadMask {
        /// The annotation file.
        path: PathBuf,
        /// The annotation's id.
        annotation: i64,
        /// What is wrong.
        message: String,
    },
    /// An image file could not be decoded.
    #[error("cannot decode image {}: {message}: replace the file or remove it from the annotations", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        message: String,
    },
}
