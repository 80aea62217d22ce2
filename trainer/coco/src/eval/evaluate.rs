//! The evaluation entry points: files or parsed values in, curves and twelve numbers out.

use std::path::Path;

use rayon::prelude::*;

use super::accumulate::{Accumulated, accumulate};
use super::error::EvalError;
use super::matching::{CellEval, evaluate_cell};
use super::params::Params;
use super::prepare::prepare;
use super::summary::{Summary, summarize};
use crate::format::{AnnotationFile, Detection, read_results};

/// A finished evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Sorted category ids: the K axis of the curves.
    pub cat_ids: Vec<i64>,
    /// Sorted image ids that were evaluated.
    pub img_ids: Vec<i64>,
    /// Precision and recall curves (for per-class numbers).
    pub accumulated: Accumulated,
    /// The twelve numbers.
    pub summary: Summary,
}

/// Evaluates `detections` against `gt` as pycocotools' `COCOeval` (evaluate, accumulate,
/// summarize) with `params`; images and categories are processed in parallel.
pub fn evaluate(
    gt: &AnnotationFile,
    detections: &[Detection],
    params: &Params,
) -> Result<Evaluation, EvalError> {
    let prepared = prepare(gt, detections, params)?;
    let cells: Vec<CellEval> = prepared
        .cells
        .par_iter()
        .map(|cell| evaluate_cell(cell, prepared.kind, params))
        .collect::<Result<_, _>>()?;
    let accumulated = accumulate(&cells, prepared.cat_ids.len(), params);
    let summary = summarize(&accumulated, params);
    Ok(Evaluation {
        cat_ids: prepared.cat_ids,
        img_ids: prepared.img_ids,
        accumulated,
        summary,
    })
}

/// Reads an annotation file and a results file (in parallel) and evaluates them.
pub fn evaluate_files(
    annotations: &Path,
    predictions: &Path,
    params: &Params,
) -> Result<Evaluation, EvalError> {
    let (gt, detections) = rayon::join(
        || AnnotationFile::read(annotations),
        || read_results(predictions),
    );
    evaluate(&gt?, &detections?, params)
}
