//! COCO evaluation (bbox and segm) whose twelve numbers equal pycocotools' `COCOeval`, quirks
//! included (see ../../../shared/spec/coco-eval.md and each module's notes), computed in
//! parallel over images and categories.
//!
//! The stages follow pycocotools, one module each: `prepare` (`loadRes` + `_prepare`),
//! `matching` (`computeIoU` + `evaluateImg`), `accumulate` and `summary` (`summarize`).

mod accumulate;
mod error;
mod evaluate;
mod matching;
mod params;
mod prepare;
mod summary;

pub use accumulate::Accumulated;
pub use error::EvalError;
pub use evaluate::{Evaluation, evaluate, evaluate_files};
pub use params::{Feed, IouType, Params, Summarize, iou_thresholds, recall_thresholds};
pub use summary::Summary;
