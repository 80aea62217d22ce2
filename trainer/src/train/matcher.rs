//! The Hungarian matcher (the reference's `HungarianMatcher` with masks, spec §5): per image
//! and per query group, the one-to-one assignment of queries to targets minimising
//! 2·focal class + 5·L1 + 2·(−GIoU) + 5·mask BCE + 5·mask Dice, the mask terms on points
//! shared by every prediction and target of the output.
//!
//! Costs are computed with torch (no gradient) batched over outputs, images and groups; the
//! assignments (one per output × image × group) run in parallel on rayon's pool.

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
    match_outputs(&[pred], targets, groups, w)
        .pop()
        .unwrap_or_default()
}

/// Whether every output has the first one's query count, classes and mask grid, so that
/// their tensors stack (true of RF-DETR's outputs: the two-stage proposals are as many as the
/// queries).
pub fn same_shapes(preds: &[&Predictions]) -> bool {
    preds.iter().all(|p| {
        p.logits.size() == preds[0].logits.size() && p.masks.shape() == preds[0].masks.shape()
    })
}

/// Elements of the largest transient [outputs·images, Q, points] tensor one batched cost
/// computation may make (fp32: 256 MiB); more outputs are split into chunks.
const COST_CHUNK_ELEMENTS: i64 = 64 << 20;

/// Cost matrices of several outputs of equal shapes against all targets of the batch at
/// once: [O, B, Q, T] with T the batch's targets concatenated over images (the block of
/// image b is its own targets' columns). The same as [`image_cost`] block by block, in a
/// few dozen kernels instead of a few dozen per image and output.
pub fn batched_cost(
    preds: &[&Predictions],
    targets: &[ImageTargets],
    points: &Tensor,
    w: &CostWeights,
) -> Tensor {
    let o = preds.len() as i64;
    let (b, q, _) = preds[0].logits.size3().unwrap_or((0, 0, 0));
    let labels = Tensor::cat(&targets.iter().map(|t| &t.labels).collect::<Vec<_>>(), 0);
    let tboxes = Tensor::cat(&targets.iter().map(|t| &t.boxes).collect::<Vec<_>>(), 0);
    let t = labels.size()[0];
    let stack = |f: &dyn Fn(&Predictions) -> &Tensor| {
        Tensor::stack(
            &preds
                .iter()
                .map(|p| f(p).to_kind(Kind::Float))
                .collect::<Vec<_>>(),
            0,
        )
    };
    let logits = stack(&|p| &p.logits); // [O, B, Q, C]
    let boxes = stack(&|p| &p.boxes); // [O, B, Q, 4]
    let prob = logits.sigmoid();
    let (alpha, gamma) = (0.25, 2.0);
    let neg = (prob.pow_tensor_scalar(gamma) * (1.0 - alpha)) * (-(-&prob + 1.0 + 1e-8).log());
    let pos = ((-&prob + 1.0).pow_tensor_scalar(gamma) * alpha) * (-(&prob + 1e-8).log());
    let cost_class = pos.index_select(3, &labels) - neg.index_select(3, &labels);
    let cost_bbox = (boxes.unsqueeze(3) - &tboxes)
        .abs()
        .sum_dim_intlist(-1, false, Kind::Float);
    let cost_giou = -generalized_box_iou(
        &cxcywh_to_xyxy(&boxes.view([-1, 4])),
        &cxcywh_to_xyxy(&tboxes),
    )
    .view([o, b, q, t]);
    // Pixel features sampled output by output (each one's fp32 copy is transient), then
    // stacked: [O·B, Cm, P].
    let np = points.size()[1];
    let feats = Tensor::cat(
        &preds
            .iter()
            .map(|p| {
                point_sample(
                    &p.masks.spatial.to_kind(Kind::Float),
                    &points.expand([b, np, 2], false),
                )
            })
            .collect::<Vec<_>>(),
        0,
    );
    let queries = stack(&|p| &p.masks.queries).view([o * b, q, -1]); // [OB, Q, Cm]
    let bias = stack(&|p| &p.masks.bias).view([o, 1, 1, 1]);
    let out = (queries.bmm(&feats).view([o, b, q, np]) + bias).view([o * b * q, np]);
    let tgt_pts = Tensor::cat(
        &targets
            .iter()
            .filter(|t| t.len > 0)
            .map(|t| {
                point_sample(
                    &t.masks.unsqueeze(1),
                    &points.expand([t.len, -1, -1], false),
                )
                .squeeze_dim(1)
            })
            .collect::<Vec<_>>(),
        0,
    ); // [T, P]
    let pos_ce = out.neg().softplus();
    let neg_ce = out.softplus();
    let cost_ce =
        (pos_ce.matmul(&tgt_pts.tr()) + neg_ce.matmul(&(-&tgt_pts + 1.0).tr())) / np as f64;
    let sig = out.sigmoid();
    let numer = sig.matmul(&tgt_pts.tr()) * 2.0;
    let denom = sig.sum_dim_intlist(-1, false, Kind::Float).unsqueeze(1)
        + tgt_pts.sum_dim_intlist(-1, false, Kind::Float).unsqueeze(0);
    let cost_dice = (-((numer + 1.0) / (denom + 1.0)) + 1.0).view([o, b, q, t]);
    let cost_ce = cost_ce.view([o, b, q, t]);
    cost_bbox * w.bbox
        + cost_class * w.class
        + cost_giou * w.giou
        + cost_ce * w.mask_ce
        + cost_dice * w.mask_dice
}

/// Matches every output of a forward pass at once: the cost matrices of all outputs and
/// images are computed batched (in chunks of outputs that bound the memory), travel to the
/// host in one copy (the step's only wait for the GPU), and all (output, image, group)
/// assignments run in parallel. Every output is matched on the same random points.
pub fn match_outputs(
    preds: &[&Predictions],
    targets: &[ImageTargets],
    groups: i64,
    w: &CostWeights,
) -> Vec<Vec<ImageMatch>> {
    let lens: Vec<usize> = targets.iter().map(|t| t.len as usize).collect();
    let total_t: usize = lens.iter().sum();
    let per_output = lens.len();
    let Some(first) = preds.first() else {
        return Vec::new();
    };
    let (b, q, _) = first.logits.size3().unwrap_or((0, 0, 0));
    if total_t == 0 {
        // No target: nothing to match.
        return vec![vec![ImageMatch::default(); per_output]; preds.len()];
    }
    if !same_shapes(preds) {
        // Costs of outputs of different shapes do not stack: one output at a time.
        return preds
            .iter()
            .flat_map(|p| match_outputs(&[*p], targets, groups, w))
            .collect();
    }
    let costs: Vec<f32> = tch::no_grad(|| {
        let [_, _, mh, mw] = first.masks.shape();
        let points = shared_points(matcher_points(mh, mw), first.logits.device());
        let per = (b * q * matcher_points(mh, mw)).max(1);
        let chunk = (COST_CHUNK_ELEMENTS / per).clamp(1, preds.len() as i64) as usize;
        let parts: Vec<Tensor> = preds
            .chunks(chunk)
            .map(|c| batched_cost(c, targets, &points, w).flatten(0, -1))
            .collect();
        Vec::try_from(Tensor::cat(&parts, 0).to_device(tch::Device::Cpu)).unwrap_or_default()
    });
    let (q, t) = (q as usize, total_t);
    let offsets: Vec<usize> = lens
        .iter()
        .scan(0, |acc, &l| {
            let o = *acc;
            *acc += l;
            Some(o)
        })
        .collect();
    let jobs: Vec<(usize, usize)> = (0..preds.len())
        .flat_map(|o| (0..per_output).map(move |b| (o, b)))
        .collect();
    let solved: Vec<ImageMatch> = jobs
        .par_iter()
        .map(|&(o, bi)| {
            let n = lens[bi];
            if n == 0 {
                return ImageMatch::default();
            }
            // Rows of image bi of output o, the columns of its own targets.
            let base = (o * per_output + bi) * q * t;
            let mut block = Vec::with_capacity(q * n);
            for row in 0..q {
                let start = base + row * t + offsets[bi];
                match costs.get(start..start + n) {
                    Some(r) => block.extend(r.iter().map(|&v| f64::from(v))),
                    None => block.extend(std::iter::repeat_n(0.0, n)),
                }
            }
            sanitize(&mut block);
            assign(&[block], &[n], q as i64, groups)
                .pop()
                .unwrap_or_default()
        })
        .collect();
    let mut out: Vec<Vec<ImageMatch>> = vec![Vec::with_capacity(per_output); preds.len()];
    for ((o, _), m) in jobs.into_iter().zip(solved) {
        out[o].push(m);
    }
    out
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
