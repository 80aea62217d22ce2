//! Post-processing (the reference's `PostProcess`): the top `num_select` (query, class) pairs
//! by sigmoid score, their boxes in absolute xyxy pixels of the original image, and their
//! masks upsampled to the original size and thresholded at logit > 0.

use tch::{Kind, Tensor};

use super::error::ModelError;
use super::rfdetr::Predictions;

/// Detections of one image, best first.
#[derive(Debug)]
pub struct Detections {
    /// Sigmoid scores: [K].
    pub scores: Tensor,
    /// Class ids (the logit index, as the reference): [K] int64.
    pub labels: Tensor,
    /// Boxes (x0, y0, x1, y1) in pixels of the original image: [K, 4].
    pub boxes: Tensor,
    /// Binary masks at the original size: [K, H, W] bool.
    pub masks: Tensor,
}

/// Detections of one image without their masks, and the query each came from (so that masks
/// can be made a few at a time: 300 masks at a large original size take gigabytes).
#[derive(Debug)]
pub struct Selection {
    /// Sigmoid scores: [K].
    pub scores: Tensor,
    /// Class ids: [K] int64.
    pub labels: Tensor,
    /// Boxes (x0, y0, x1, y1) in pixels of the original image: [K, 4].
    pub boxes: Tensor,
    /// Query index of each detection: [K] int64.
    pub queries: Tensor,
}

/// Turns eval-mode predictions into detections; `original_sizes[i]` is image i's (height,
/// width) before resizing.
pub fn postprocess(
    pred: &Predictions,
    original_sizes: &[(i64, i64)],
    num_select: i64,
) -> Result<Vec<Detections>, ModelError> {
    let selected = select(pred, original_sizes, num_select)?;
    Ok(selected
        .into_iter()
        .zip(original_sizes)
        .enumerate()
        .map(|(i, (s, &size))| Detections {
            masks: masks_of(pred, i as i64, &s.queries, size),
            scores: s.scores,
            labels: s.labels,
            boxes: s.boxes,
        })
        .collect())
}

/// Binary masks [K, H, W] of `queries` of image `batch_idx`, upsampled to `size` = (H, W)
/// and thresholded at logit > 0.
pub fn masks_of(pred: &Predictions, batch_idx: i64, queries: &Tensor, size: (i64, i64)) -> Tensor {
    tch::no_grad(|| {
        pred.masks
            .select(batch_idx, queries)
            .to_kind(Kind::Float)
            .unsqueeze(1)
            .upsample_bilinear2d([size.0, size.1], false, None, None)
            .squeeze_dim(1)
            .gt(0.0)
    })
}

/// The top `num_select` (query, class) pairs of every image by sigmoid score, with boxes in
/// original pixels; [`postprocess`] without the masks.
pub fn select(
    pred: &Predictions,
    original_sizes: &[(i64, i64)],
    num_select: i64,
) -> Result<Vec<Selection>, ModelError> {
    let (b, q, c) = pred.logits.size3()?;
    if original_sizes.len() as i64 != b {
        return Err(ModelError::InvalidInput(format!(
            "{} original sizes for a batch of {b}",
            original_sizes.len()
        )));
    }
    if num_select < 1 || num_select > q * c {
        return Err(ModelError::InvalidInput(format!(
            "num_select {num_select} must be in 1..={} (queries × logits)",
            q * c
        )));
    }
    tch::no_grad(|| {
        let prob = pred.logits.to_kind(Kind::Float).sigmoid().view([b, q * c]);
        let (scores, index) = prob.topk(num_select, 1, true, true);
        let query = index.divide_scalar_mode(c, "floor");
        let labels = index.remainder(c);
        let bx = pred.boxes.to_kind(Kind::Float);
        let (cx, cy) = (bx.select(-1, 0), bx.select(-1, 1));
        let (hw, hh) = (bx.select(-1, 2) * 0.5, bx.select(-1, 3) * 0.5);
        let xyxy = Tensor::stack(&[&cx - &hw, &cy - &hh, &cx + &hw, &cy + &hh], -1);
        let xyxy = xyxy.gather(
            1,
            &query.unsqueeze(-1).expand([b, num_select, 4], false),
            false,
        );
        let mut out = Vec::with_capacity(b as usize);
        for (i, &(h, w)) in original_sizes.iter().enumerate() {
            let i = i as i64;
            let scale = Tensor::from_slice(&[w as f32, h as f32, w as f32, h as f32])
                .to_device(xyxy.device());
            out.push(Selection {
                scores: scores.get(i),
                labels: labels.get(i),
                boxes: xyxy.get(i) * scale,
                queries: query.get(i),
            });
        }
        Ok(out)
    })
}
