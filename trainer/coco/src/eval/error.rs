//! What can make an evaluation fail: unreadable files and inputs pycocotools would refuse.

use thiserror::Error;

use crate::format::FormatError;
use crate::mask::MaskError;

/// Why an evaluation could not run.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The annotation or results file could not be read.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A detection names an image that the annotation file lacks (pycocotools asserts
    /// "Results do not correspond to current coco set").
    #[error(
        "detection #{index} is on image id {image_id}, which the annotation file does not have"
    )]
    UnknownImage {
        /// 0-based position of the detection in the results.
        index: usize,
        /// The unknown image id.
        image_id: i64,
    },
    /// A ground-truth annotation lacks a field this evaluation needs.
    #[error("annotation id {id} has no `{field}`, which {iou_type} evaluation needs")]
    AnnotationField {
        /// Annotation id.
        id: i64,
        /// The missing field.
        field: &'static str,
        /// "bbox" or "segm".
        iou_type: &'static str,
    },
    /// A detection lacks the geometry its results file's kind needs (pycocotools decides the
    /// kind from the first detection: box results when it has a non-empty `bbox`).
    #[error("detection #{index} has no {needed}; {why}")]
    DetectionField {
        /// 0-based position of the detection in the results.
        index: usize,
        /// What is missing.
        needed: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// A box that is not `[x, y, w, h]`.
    #[error("{what} has a bbox of {len} numbers; expected [x, y, w, h]")]
    BadBox {
        /// "annotation id N" or "detection #N".
        what: String,
        /// Number of values found.
        len: usize,
    },
    /// A mask that cannot be decoded.
    #[error("{what}: {source}")]
    Mask {
        /// "annotation id N" or "detection #N".
        what: String,
        /// Why.
        #[source]
        source: MaskError,
    },
}
