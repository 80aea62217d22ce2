//! Grouping ground truth and detections per (image, category), as pycocotools' `loadRes` and
//! `COCOeval._prepare` do, with their quirks:
//!
//! - Images are evaluated in sorted id order and categories in sorted id order; detections on
//!   categories the annotation file lacks are dropped, detections on unknown images refused.
//! - The kind of the results file is decided by its first detection: "box results" when it has
//!   a non-empty `bbox` (then every detection's area is its box area and a missing mask is the
//!   box's polygon), otherwise "mask results" (area and missing box from the mask).
//! - Ground truth is looked up by annotation id (`loadAnns`), so when ids repeat, every copy
//!   reads as the last annotation with that id.

use std::collections::HashMap;

use super::error::EvalError;
use super::params::{Feed, IouType, Params};
use crate::format::{Annotation, AnnotationFile, Detection, Image, Segmentation};

/// The kind pycocotools' `loadRes` gives a results file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResultKind {
    /// The first detection has a non-empty box.
    Boxes,
    /// The first detection has only a mask.
    Masks,
}

/// The ground truth and detections of one image and one category.
pub(crate) struct Cell<'a> {
    /// Index of the category in sorted category ids.
    pub k: usize,
    /// Index of the image in sorted image ids.
    pub i: usize,
    /// The image (its size rasterises polygons).
    pub image: &'a Image,
    /// Ground truth in file order.
    pub gts: Vec<&'a Annotation>,
    /// Detections in file order, with their 0-based position in the results.
    pub dts: Vec<(usize, &'a Detection)>,
}

/// Everything to evaluate, in pycocotools' order.
pub(crate) struct Prepared<'a> {
    /// Sorted, unique image ids.
    pub img_ids: Vec<i64>,
    /// Sorted, unique category ids.
    pub cat_ids: Vec<i64>,
    /// Non-empty cells sorted by (category, image).
    pub cells: Vec<Cell<'a>>,
    /// How the detections are read.
    pub kind: ResultKind,
}

/// The detection's box as fed to `loadRes` (RF-DETR drops it for segm evaluation).
pub(crate) fn fed_bbox<'d>(det: &'d Detection, params: &Params) -> Option<&'d [f64]> {
    match (params.feed, params.iou_type) {
        (Feed::Rfdetr, IouType::Segm) => None,
        _ => det.bbox.as_deref(),
    }
}

/// The detection's mask as fed to `loadRes` (RF-DETR drops it for bbox evaluation).
pub(crate) fn fed_segmentation<'d>(
    det: &'d Detection,
    params: &Params,
) -> Option<&'d Segmentation> {
    match (params.feed, params.iou_type) {
        (Feed::Rfdetr, IouType::Bbox) => None,
        _ => det.segmentation.as_ref(),
    }
}

/// Groups `gt` and `dts` into cells.
pub(crate) fn prepare<'a>(
    gt: &'a AnnotationFile,
    dts: &'a [Detection],
    params: &Params,
) -> Result<Prepared<'a>, EvalError> {
    // Images and categories by id; a repeated id keeps its last entry, as a Python dict does.
    let mut images: HashMap<i64, &Image> = HashMap::with_capacity(gt.images.len());
    for image in &gt.images {
        images.insert(image.id, image);
    }
    let mut img_ids: Vec<i64> = images.keys().copied().collect();
    img_ids.sort_unstable();
    let img_index: HashMap<i64, usize> =
        img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut cat_ids: Vec<i64> = gt.categories.iter().map(|c| c.id).collect();
    cat_ids.sort_unstable();
    cat_ids.dedup();
    let cat_index: HashMap<i64, usize> =
        cat_ids.iter().enumerate().map(|(k, &id)| (id, k)).collect();

    let kind = match dts.first() {
        Some(first) if fed_bbox(first, params).is_some_and(|b| !b.is_empty()) => ResultKind::Boxes,
        Some(first) if fed_segmentation(first, params).is_some() => ResultKind::Masks,
        Some(_) => {
            return Err(EvalError::DetectionField {
                index: 0,
                needed: match params.iou_type {
                    IouType::Bbox => "bbox",
                    IouType::Segm => "segmentation",
                },
                why: "the first detection decides how the results are read",
            });
        }
        None => ResultKind::Boxes,
    };

    let mut cells: HashMap<(usize, usize), Cell<'a>> = HashMap::new();
    let new_cell = |k: usize, i: usize| Cell {
        k,
        i,
        image: images[&img_ids[i]],
        gts: Vec::new(),
        dts: Vec::new(),
    };

    // Ground truth: per image in sorted order, then file order, resolved by id.
    let mut last_by_id: HashMap<i64, usize> = HashMap::with_capacity(gt.annotations.len());
    let mut per_image: HashMap<i64, Vec<usize>> = HashMap::new();
    for (n, ann) in gt.annotations.iter().enumerate() {
        last_by_id.insert(ann.id, n);
        per_image.entry(ann.image_id).or_default().push(n);
    }
    for img in &img_ids {
        for &n in per_image.get(img).map(Vec::as_slice).unwrap_or(&[]) {
            if !cat_index.contains_key(&gt.annotations[n].category_id) {
                continue;
            }
            let ann = &gt.annotations[last_by_id[&gt.annotations[n].id]];
            if let (Some(&k), Some(&i)) = (
                cat_index.get(&ann.category_id),
                img_index.get(&ann.image_id),
            ) {
                cells
                    .entry((k, i))
                    .or_insert_with(|| new_cell(k, i))
                    .gts
                    .push(ann);
            }
        }
    }

    for (index, det) in dts.iter().enumerate() {
        let Some(&i) = img_index.get(&det.image_id) else {
            return Err(EvalError::UnknownImage {
                index,
                image_id: det.image_id,
            });
        };
        if let Some(&k) = cat_index.get(&det.category_id) {
            cells
                .entry((k, i))
                .or_insert_with(|| new_cell(k, i))
                .dts
                .push((index, det));
        }
    }

    let mut cells: Vec<Cell<'a>> = cells.into_values().collect();
    cells.sort_unstable_by_key(|c| (c.k, c.i));
    Ok(Prepared {
        img_ids,
        cat_ids,
        cells,
        kind,
    })
}
