//! Per image and category: IoUs (`computeIoU`) and greedy matching at every IoU threshold and
//! area range (`evaluateImg`), exactly as pycocotools orders and breaks ties:
//!
//! - Detections are ranked by score with a stable sort (ties keep file order) and cut to the
//!   largest max detections before IoUs are computed; the smaller max detections are applied
//!   later, in accumulation, to the matches made here.
//! - Ground truth is visited non-ignored first (stable); a detection takes the best still free
//!   ground truth with IoU ≥ min(threshold, 1 − 1e-10), a crowd region may take several, and
//!   once matched to a regular object the search stops at the first ignored one.
//! - A detection matched to ignored ground truth (crowd or outside the area range) is ignored;
//!   an unmatched detection outside the area range is ignored.
//! - Matches are recorded by ground-truth annotation id and id 0 reads as "no match", so a
//!   detection matched to annotation id 0 is a false positive (pycocotools' bug, reproduced for
//!   comparable numbers; Roboflow exports start ids at 0).

use std::cmp::Ordering;

use super::error::EvalError;
use super::params::{AREA_RANGES, IouType, Params, iou_thresholds};
use super::prepare::{Cell, ResultKind, fed_bbox, fed_segmentation};
use crate::format::{Annotation, Detection, Image, Segmentation};
use crate::mask::{Rle, box_iou, rle_iou};

/// A detection counted neither way.
pub(crate) const IGNORED: u8 = 0;
/// A detection matched to a positive.
pub(crate) const TRUE_POSITIVE: u8 = 1;
/// A detection matched to nothing.
pub(crate) const FALSE_POSITIVE: u8 = 2;

/// The outcome of one cell for one area range.
pub(crate) struct AreaEval {
    /// Status of each (threshold, detection), threshold-major: `status[t * D + d]`.
    pub status: Vec<u8>,
    /// Ground truth that counts as a positive (not crowd, inside the area range).
    pub positives: usize,
}

/// The outcome of one cell for all area ranges.
pub(crate) struct CellEval {
    /// Category index.
    pub k: usize,
    /// Scores of the kept detections, highest first.
    pub scores: Vec<f64>,
    /// One entry per area range of [`AREA_RANGES`].
    pub areas: [AreaEval; 4],
}

/// Geometry of one object for IoU: a box, or a mask with its box and pixel count.
enum Shape {
    Box([f64; 4]),
    Mask { rle: Rle, bbox: [f64; 4], area: u64 },
}

struct Object {
    shape: Shape,
    /// Area that decides the size range (the `area` field, or as `loadRes` sets it).
    area: f64,
}

/// Descending score order that treats -0.0 and 0.0 as equal, as `argsort(-score)` does.
pub(crate) fn by_score_desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// Evaluates one cell.
pub(crate) fn evaluate_cell(
    cell: &Cell<'_>,
    kind: ResultKind,
    params: &Params,
) -> Result<CellEval, EvalError> {
    let gts: Vec<(Object, bool, i64)> = cell
        .gts
        .iter()
        .map(|ann| {
            Ok((
                gt_object(ann, cell.image, params.iou_type)?,
                ann.iscrowd != 0,
                ann.id,
            ))
        })
        .collect::<Result<_, EvalError>>()?;
    let mut order: Vec<usize> = (0..cell.dts.len()).collect();
    order.sort_by(|&a, &b| by_score_desc(cell.dts[a].1.score, cell.dts[b].1.score));
    order.truncate(params.max_det());
    let dts: Vec<(Object, f64)> = order
        .iter()
        .map(|&n| {
            let (index, det) = cell.dts[n];
            Ok((dt_object(index, det, cell.image, kind, params)?, det.score))
        })
        .collect::<Result<_, EvalError>>()?;

    let (nd, ng) = (dts.len(), gts.len());
    let mut ious = vec![0.0f64; nd * ng];
    for (d, (dt, _)) in dts.iter().enumerate() {
        for (g, (gt, crowd, _)) in gts.iter().enumerate() {
            ious[d * ng + g] = iou(&dt.shape, &gt.shape, *crowd);
        }
    }

    let thresholds = iou_thresholds();
    let areas = AREA_RANGES.map(|(lo, hi)| {
        let outside = |area: f64| area < lo || area > hi;
        let gt_ignored: Vec<bool> = gts
            .iter()
            .map(|(g, crowd, _)| *crowd || outside(g.area))
            .collect();
        // Non-ignored ground truth first, stable.
        let mut gt_order: Vec<usize> = (0..ng).collect();
        gt_order.sort_by_key(|&g| gt_ignored[g]);
        let mut status = vec![IGNORED; thresholds.len() * nd];
        let mut taken = vec![false; ng];
        for (t, &threshold) in thresholds.iter().enumerate() {
            taken.fill(false);
            for (d, (dt, _)) in dts.iter().enumerate() {
                let mut best = threshold.min(1.0 - 1e-10);
                let mut matched: Option<usize> = None;
                for (pos, &g) in gt_order.iter().enumerate() {
                    let crowd = gts[g].1;
                    if taken[pos] && !crowd {
                        continue;
                    }
                    if let Some(m) = matched
                        && !gt_ignored[gt_order[m]]
                        && gt_ignored[g]
                    {
                        break;
                    }
                    let v = ious[d * ng + g];
                    if v < best {
                        continue;
                    }
                    best = v;
                    matched = Some(pos);
                }
                let (ignored, has_match_id) = match matched {
                    Some(pos) => {
                        taken[pos] = true;
                        let g = gt_order[pos];
                        (gt_ignored[g], gts[g].2 != 0)
                    }
                    None => (false, false),
                };
                let ignored = ignored || (!has_match_id && outside(dt.area));
                status[t * nd + d] = if ignored {
                    IGNORED
                } else if has_match_id {
                    TRUE_POSITIVE
                } else {
                    FALSE_POSITIVE
                };
            }
        }
        AreaEval {
            status,
            positives: gt_ignored.iter().filter(|&&ig| !ig).count(),
        }
    });
    Ok(CellEval {
        k: cell.k,
        scores: dts.iter().map(|(_, s)| *s).collect(),
        areas,
    })
}

fn iou(dt: &Shape, gt: &Shape, crowd: bool) -> f64 {
    match (dt, gt) {
        (Shape::Box(d), Shape::Box(g)) => box_iou(d, g, crowd),
        (
            Shape::Mask {
                rle: dr,
                bbox: db,
                area: da,
            },
            Shape::Mask {
                rle: gr, bbox: gb, ..
            },
        ) => rle_iou(dr, db, *da, gr, gb, crowd),
        // Both sides are built for the same IoU type.
        _ => 0.0,
    }
}

fn as_box(bbox: &[f64], what: impl Fn() -> String) -> Result<[f64; 4], EvalError> {
    <[f64; 4]>::try_from(bbox).map_err(|_| EvalError::BadBox {
        what: what(),
        len: bbox.len(),
    })
}

fn gt_object(ann: &Annotation, image: &Image, iou_type: IouType) -> Result<Object, EvalError> {
    let name = iou_type.name();
    let area = ann.area.ok_or(EvalError::AnnotationField {
        id: ann.id,
        field: "area",
        iou_type: name,
    })?;
    let what = || format!("annotation id {}", ann.id);
    let shape = match iou_type {
        IouType::Bbox => {
            let bbox = ann.bbox.as_deref().ok_or(EvalError::AnnotationField {
                id: ann.id,
                field: "bbox",
                iou_type: name,
            })?;
            Shape::Box(as_box(bbox, what)?)
        }
        IouType::Segm => {
            let segm = ann
                .segmentation
                .as_ref()
                .ok_or(EvalError::AnnotationField {
                    id: ann.id,
                    field: "segmentation",
                    iou_type: name,
                })?;
            mask_shape(
                segmentation_rle(segm, image).map_err(|source| EvalError::Mask {
                    what: what(),
                    source,
                })?,
            )
        }
    };
    Ok(Object { shape, area })
}

fn dt_object(
    index: usize,
    det: &Detection,
    image: &Image,
    kind: ResultKind,
    params: &Params,
) -> Result<Object, EvalError> {
    let what = || format!("detection #{index}");
    let mask_error = |source| EvalError::Mask {
        what: what(),
        source,
    };
    let bbox = fed_bbox(det, params);
    let segm = fed_segmentation(det, params);
    match kind {
        ResultKind::Boxes => {
            let bbox = bbox.ok_or(EvalError::DetectionField {
                index,
                needed: "bbox",
                why: "the first detection has one, so every detection is read as a box",
            })?;
            let bbox = as_box(bbox, what)?;
            let area = bbox[2] * bbox[3];
            let shape = match params.iou_type {
                IouType::Bbox => Shape::Box(bbox),
                IouType::Segm => mask_shape(match segm {
                    Some(s) => segmentation_rle(s, image).map_err(mask_error)?,
                    None => box_polygon_rle(&bbox, image),
                }),
            };
            Ok(Object { shape, area })
        }
        ResultKind::Masks => {
            let segm = segm.ok_or(EvalError::DetectionField {
                index,
                needed: "segmentation",
                why: "the first detection has only a mask, so every detection is read as a mask",
            })?;
            let rle = segmentation_rle(segm, image).map_err(mask_error)?;
            let area = rle.area() as f64;
            let shape = match params.iou_type {
                IouType::Bbox => Shape::Box(match bbox {
                    Some(b) => as_box(b, what)?,
                    None => rle.to_bbox(),
                }),
                IouType::Segm => mask_shape(rle),
            };
            Ok(Object { shape, area })
        }
    }
}

fn mask_shape(rle: Rle) -> Shape {
    let bbox = rle.to_bbox();
    let area = rle.area();
    Shape::Mask { rle, bbox, area }
}

/// pycocotools' `annToRLE`: polygons are rasterised at the image size and merged, RLE is
/// taken with its own size. When the first polygon has exactly four numbers, pycocotools'
/// `frPyObjects` reads every polygon as a box `[x, y, w, h]`; that is reproduced.
fn segmentation_rle(segm: &Segmentation, image: &Image) -> Result<Rle, crate::mask::MaskError> {
    match segm {
        Segmentation::Polygons(polys) if polys.first().is_some_and(|p| p.len() == 4) => {
            let parts: Vec<Rle> = polys
                .iter()
                .map(|p| {
                    let b = [
                        p[0],
                        p[1],
                        p.get(2).copied().unwrap_or(0.0),
                        p.get(3).copied().unwrap_or(0.0),
                    ];
                    box_polygon_rle(&b, image)
                })
                .collect();
            Ok(Rle::union(&parts).unwrap_or_else(|| Rle::empty(image.height, image.width)))
        }
        Segmentation::Polygons(polys) => Ok(Rle::from_polygons(polys, image.height, image.width)),
        Segmentation::Rle(rle) => rle.to_rle(),
    }
}

/// The mask pycocotools gives a box: its four corners as a polygon (`loadRes` / `frBbox`).
fn box_polygon_rle(b: &[f64; 4], image: &Image) -> Rle {
    let (x1, y1, x2, y2) = (b[0], b[1], b[0] + b[2], b[1] + b[3]);
    Rle::from_polygon(&[x1, y1, x1, y2, x2, y2, x2, y1], image.height, image.width)
}
