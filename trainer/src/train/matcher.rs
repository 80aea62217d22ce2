//! The Hungarian matcher (the reference's `HungarianMatcher` with masks, spec §5): per image
//! and per query group, the one-to-one assignment of queries to targets minimising
//! 2·focal class + 5·L1 + 2·(−GIoU) + 5·mask BCE + 5·mask Dice, the mask terms on points
//! shared by every prediction and target of the output.
//!
//! Costs are computed with torch (no gradient) per image over all groups at once; the
//! assignments (one per image × group) run in parallel on rayon's pool.

use rayon::prelude::*;
use tch::{Kind, Tensor};

use super::boxes::{cxcywh_to_xyxy, generalized_box_iou};
use super::hungarian::linear_sum_assignment;
use super::points::{matcher_points, point_sample, shared_points};
use super::targets::ImageTargets;
use crate::model::Predictions;

/// Weights of the matching cost terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostWeights {
    /// Focal classification cost.
    pub class: f64,
    /// L1 box distance.
    pub bbox: f64,
    /// Negative generalised IoU.
    pub giou: f64,
    /// Point BCE of the masks.
    pub mask_ce: f64,
    /// Point Dice of the masks.
    pub mask_dice: f64,
}

impl Default for CostWeights {
    /// The reference's seg values (spec §5).
    fn default() -> Self {
        CostWeights {
            class: 2.0,
            bbox: 5.0,
            giou: 2.0,
            mask_ce: 5.0,
            mask_dice: 5.0,
        }
    }
}

/// Matched (query, target) index pairs of one image, over all groups, queries ascending
/// within each group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMatch {
    /// Query indices (into all `groups × num_queries` queries).
    pub queries: Vec<i64>,
    /// Target indices.
    pub targets: Vec<i64>,
}

/// Cost matrix [Q, T] of one image, on the predictions' device.
pub fn image_cost(
    pred: &Predictions,
    b: i64,
    tgt: &ImageTargets,
    points: &Tensor,
    w: &CostWeights,
) -> Tensor {
    let logits = pred.logits.get(b).to_kind(Kind::Float);
    let boxes = pred.boxes.get(b).to_kind(Kind::Float);
    let prob = logits.sigmoid();
    let (alpha, gamma) = (0.25, 2.0);
    let neg = (prob.pow_tensor_scalar(gamma) * (1.0 - alpha)) * (-(-&prob + 1.0 + 1e-8).log());
    let pos = ((-&prob + 1.0).pow_tensor_scalar(gamma) * alpha) * (-(&prob + 1e-8).log());
    let cost_class = pos.index_select(1, &tgt.labels) - neg.index_select(1, &tgt.labels);
    let cost_bbox = (boxes.unsqueeze(1) - tgt.boxes.unsqueeze(0))
        .abs()
        .sum_dim_intlist(-1, false, Kind::Float);
    let cost_giou = -generalized_box_iou(&cxcywh_to_xyxy(&boxes), &cxcywh_to_xyxy(&tgt.boxes));
    // Point logits of every query from the factorised head: bilinear sampling is linear, so
    // sampling the pixel features and then taking the dot product equals sampling the dense
    // logits, without materialising [Q, H, W].
    let spatial = pred.masks.spatial.get(b).unsqueeze(0).to_kind(Kind::Float);
    let feats = point_sample(&spatial, points).squeeze_dim(0); // [C, P]
    let queries = pred.masks.queries.get(b).to_kind(Kind::Float);
    let out = queries.matmul(&feats) + pred.masks.bias.to_kind(Kind::Float); // [Q, P]
    let p = out.size()[1] as f64;
    let t = tgt.len;
    let tgt_pts =
        point_sample(&tgt.masks.unsqueeze(1), &points.expand([t, -1, -1], false)).squeeze_dim(1); // [T, P]
    let pos_ce = out.neg().softplus();
    let neg_ce = out.softplus();
    let cost_ce = (pos_ce.matmul(&tgt_pts.tr()) + neg_ce.matmul(&(-&tgt_pts + 1.0).tr())) / p;
    let sig = out.sigmoid();
    let numer = sig.matmul(&tgt_pts.tr()) * 2.0;
    let denom = sig.sum_dim_intlist(-1, false, Kind::Float).unsqueeze(1)
        + tgt_pts.sum_dim_intlist(-1, false, Kind::Float).unsqueeze(0);
    let cost_dice = -((numer + 1.0) / (denom + 1.0)) + 1.0;
    cost_bbox * w.bbox
        + cost_class * w.class
        + cost_giou * w.giou
        + cost_ce * w.mask_ce
        + cost_dice * w.mask_dice
}

/// Non-finite entries replaced by twice the largest finite one (as the reference does).
fn sanitize(v: &mut [f64]) {
    let max = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max);
    for x in v {
        if !x.is_finite() {
            *x = 2.0 * max;
        }
    }
}

/// Matches one output (`groups` query groups of equal size) to the targets.
pub fn match_output(
    pred: &Predictions,
    targets: &[ImageTargets],
    groups: i64,
    w: &CostWeights,
) -> Vec<ImageMatch> {
    tch::no_grad(|| {
        let q = pred.logits.size()[1];
        let [_, _, mh, mw] = pred.masks.shape();
        let points = shared_points(matcher_points(mh, mw), pred.logits.device());
        // Every image's matrix flattened into one tensor: one device-to-host copy per output.
        let blocks: Vec<Tensor> = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.len > 0)
            .map(|(b, t)| image_cost(pred, b as i64, t, &points, w).flatten(0, -1))
            .collect();
        let all: Vec<f64> = if blocks.is_empty() {
            Vec::new()
        } else {
            Vec::try_from(Tensor::cat(&blocks, 0).to_kind(Kind::Double)).unwrap_or_default()
        };
        let lens: Vec<usize> = targets.iter().map(|t| t.len as usize).collect();
        let mut costs = Vec::with_capacity(lens.len());
        let mut offset = 0;
        for &t in &lens {
            let n = q as usize * t;
            let mut c = all.get(offset..offset + n).unwrap_or(&[]).to_vec();
            if c.len() != n {
                c = vec![0.0; n];
            }
            sanitize(&mut c);
            costs.push(c);
            offset += n;
        }
        assign(&costs, &lens, q, groups)
    })
}

/// The assignments of every (image, group) from the [Q, T] cost matrices (`lens[b]` = T of
/// image b), in parallel.
pub fn assign(costs: &[Vec<f64>], lens: &[usize], q: i64, groups: i64) -> Vec<ImageMatch> {
    let nq = (q / groups.max(1)) as usize;
    let jobs: Vec<(usize, usize)> = (0..costs.len())
        .flat_map(|b| (0..groups as usize).map(move |g| (b, g)))
        .collect();
    let solved: Vec<Vec<(usize, usize)>> = jobs
        .par_iter()
        .map(|&(b, g)| {
            let t = lens[b];
            if t == 0 {
                return Vec::new();
            }
            let block = &costs[b][g * nq * t..(g + 1) * nq * t];
            linear_sum_assignment(block, nq, t)
        })
        .collect();
    let mut out = vec![ImageMatch::default(); costs.len()];
    for ((b, g), pairs) in jobs.into_iter().zip(solved) {
        for (qi, ti) in pairs {
            out[b].queries.push((g * nq + qi) as i64);
            out[b].targets.push(ti as i64);
        }
    }
    out
}
