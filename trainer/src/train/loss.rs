//! The training criterion (the reference's `SetCriterion` for RF-DETR-Seg, spec §5): for each
//! output (final layer, every auxiliary layer, the two-stage proposals) its own Hungarian
//! matching, then IA-BCE classification, L1 and GIoU box losses and point-sampled mask BCE +
//! Dice, all summed over matches and divided by the number of target boxes × query groups.
//!
//! Built so that a step waits for the GPU once: every output's matching shares one copy of the
//! cost matrices to the host, the match indices of all outputs go back in one upload, and the
//! logged numbers (class and cardinality errors, every term) stay tensors on the device.

use tch::{Kind, Reduction, Tensor};

use super::boxes::{cxcywh_to_xyxy, paired_iou_giou};
use super::matcher::{CostWeights, ImageMatch, match_outputs, same_shapes};
use super::points::{loss_points, point_sample, uncertain_points};
use super::targets::ImageTargets;
use super::targets::upload_i64;
use crate::model::{ModelOutput, Predictions};

/// The five weighted loss kinds, in the reference's log order.
pub const LOSS_KINDS: [&str; 5] = [
    "loss_ce",
    "loss_bbox",
    "loss_giou",
    "loss_mask_ce",
    "loss_mask_dice",
];

/// Loss coefficients (the reference's `*_loss_coef`, seg defaults of 1.4.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossWeights {
    /// IA-BCE classification.
    pub ce: f64,
    /// L1 boxes.
    pub bbox: f64,
    /// 1 − GIoU.
    pub giou: f64,
    /// Point BCE of masks.
    pub mask_ce: f64,
    /// Point Dice of masks.
    pub mask_dice: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            ce: 5.0,
            bbox: 5.0,
            giou: 2.0,
            mask_ce: 5.0,
            mask_dice: 5.0,
        }
    }
}

impl LossWeights {
    /// The coefficient of `kind` (one of [`LOSS_KINDS`]).
    pub fn of(&self, kind: &str) -> f64 {
        match kind {
            "loss_ce" => self.ce,
            "loss_bbox" => self.bbox,
            "loss_giou" => self.giou,
            "loss_mask_ce" => self.mask_ce,
            _ => self.mask_dice,
        }
    }
}

/// Unweighted losses of one output.
#[derive(Debug)]
pub struct OutputLosses {
    /// `loss_ce`, `loss_bbox`, `loss_giou`, `loss_mask_ce`, `loss_mask_dice`, in that order.
    pub terms: [Tensor; 5],
    /// Cardinality error (logged only): mean |predicted objects − targets| per image (0-d).
    pub cardinality_error: Tensor,
    /// Class error (logged only, for the final layer): 100 − top-1 accuracy on the matched
    /// queries, in percent (0-d); computed for the first output of a batched computation.
    pub class_error: Option<Tensor>,
}

/// All losses of one forward pass.
#[derive(Debug)]
pub struct StepLosses {
    /// Σ weight · term: what is back-propagated.
    pub total: Tensor,
    /// (key, unweighted value tensor, weight) for every term: `loss_ce`, …, `loss_ce_0`, …,
    /// `loss_ce_enc`, ….
    pub terms: Vec<(String, Tensor, f64)>,
    /// The weighted terms (weight × term), in the order of `terms`.
    pub weighted: Vec<Tensor>,
    /// (key, 0-d tensor) of the logged-only numbers: `class_error`, `cardinality_error{S}`.
    pub logged: Vec<(String, Tensor)>,
}

/// The criterion.
#[derive(Debug, Clone, Copy, Default)]
pub struct Criterion {
    /// Loss coefficients.
    pub weights: LossWeights,
    /// Matching cost coefficients.
    pub costs: CostWeights,
}

impl Criterion {
    /// Losses of every output of `out` against `targets`, with `groups` query groups (all
    /// of them while training, 1 in evaluation).
    pub fn forward(&self, out: &ModelOutput, targets: &[ImageTargets], groups: i64) -> StepLosses {
        let objects: i64 = targets.iter().map(|t| t.len).sum();
        let num_boxes = ((objects * groups) as f64).max(1.0);
        let mut suffixes: Vec<String> = vec![String::new()];
        let mut preds: Vec<&Predictions> = vec![&out.main];
        for (i, aux) in out.aux.iter().enumerate() {
            suffixes.push(format!("_{i}"));
            preds.push(aux);
        }
        suffixes.push("_enc".to_owned());
        preds.push(&out.enc);
        let matches = match_outputs(&preds, targets, groups, &self.costs);
        let per_output: Vec<OutputLosses> = if same_shapes(&preds) {
            batched_losses(&preds, targets, &matches, num_boxes)
        } else {
            preds
                .iter()
                .zip(&matches)
                .flat_map(|(p, m)| {
                    batched_losses(&[*p], targets, std::slice::from_ref(m), num_boxes)
                })
                .collect()
        };
        let mut total: Option<Tensor> = None;
        let mut terms = Vec::new();
        let mut weighted_terms = Vec::new();
        let mut logged = Vec::new();
        for (suffix, l) in suffixes.into_iter().zip(per_output) {
            if let Some(class_error) = l.class_error.filter(|_| suffix.is_empty()) {
                logged.push(("class_error".to_owned(), class_error));
            }
            logged.push((format!("cardinality_error{suffix}"), l.cardinality_error));
            for (kind, t) in LOSS_KINDS.iter().zip(l.terms) {
                let w = self.weights.of(kind);
                let weighted = &t * w;
                total = Some(match total {
                    Some(acc) => acc + &weighted,
                    None => weighted.shallow_clone(),
                });
                weighted_terms.push(weighted);
                terms.push((format!("{kind}{suffix}"), t, w));
            }
        }
        let device = out.main.logits.device();
        StepLosses {
            total: total.unwrap_or_else(|| Tensor::zeros([], (Kind::Float, device))),
            terms,
            weighted: weighted_terms,
            logged,
        }
    }
}

/// The matches of all outputs as host index vectors, in (output, image, query) order, plus
/// the permutation to (image, output) order that the per-image target masks need.
struct MatchLayout {
    /// Index into the stacked [O·B·Q] queries.
    flat_q: Vec<i64>,
    /// Index into the batch's concatenated targets.
    tgt: Vec<i64>,
    /// Output of each match.
    out_id: Vec<i64>,
    /// Image of each match.
    image: Vec<i64>,
    /// Query b·Q + q within its output.
    local_q: Vec<i64>,
    /// Matches per output.
    per_output: Vec<i64>,
    /// Positions of the matches in (image, output) order.
    by_image: Vec<i64>,
    /// Image-local target index of each match, in (image, output) order.
    local_t_by_image: Vec<i64>,
    /// Matches per image.
    per_image: Vec<i64>,
}

impl MatchLayout {
    fn new(matches: &[Vec<ImageMatch>], targets: &[ImageTargets], b: i64, q: i64) -> Self {
        let offsets: Vec<i64> = targets
            .iter()
            .scan(0i64, |acc, t| {
                let o = *acc;
                *acc += t.len;
                Some(o)
            })
            .collect();
        let mut l = MatchLayout {
            flat_q: Vec::new(),
            tgt: Vec::new(),
            out_id: Vec::new(),
            image: Vec::new(),
            local_q: Vec::new(),
            per_output: Vec::new(),
            by_image: Vec::new(),
            local_t_by_image: Vec::new(),
            per_image: vec![0; targets.len()],
        };
        let mut local_t = Vec::new();
        for (o, m) in matches.iter().enumerate() {
            let before = l.flat_q.len();
            for (bi, im) in m.iter().enumerate() {
                for (&qi, &ti) in im.queries.iter().zip(&im.targets) {
                    l.flat_q.push(o as i64 * b * q + bi as i64 * q + qi);
                    l.local_q.push(bi as i64 * q + qi);
                    l.tgt.push(offsets[bi] + ti);
                    l.out_id.push(o as i64);
                    l.image.push(bi as i64);
                    local_t.push(ti);
                }
            }
            l.per_output.push((l.flat_q.len() - before) as i64);
        }
        let mut order: Vec<usize> = (0..l.flat_q.len()).collect();
        order.sort_by_key(|&k| (l.image[k], l.out_id[k]));
        for k in order {
            l.by_image.push(k as i64);
            l.local_t_by_image.push(local_t[k]);
            l.per_image[l.image[k] as usize] += 1;
        }
        l
    }
}

/// The five terms, class error and cardinality error of every output in `preds` (equal
/// shapes) given their matches, computed over all outputs at once and split per output by
/// segment sums.
fn batched_losses(
    preds: &[&Predictions],
    targets: &[ImageTargets],
    matches: &[Vec<ImageMatch>],
    num_boxes: f64,
) -> Vec<OutputLosses> {
    let no = preds.len() as i64;
    let (b, q, c) = preds[0].logits.size3().unwrap_or((0, 0, 0));
    let device = preds[0].logits.device();
    let layout = MatchLayout::new(matches, targets, b, q);
    let k = layout.flat_q.len() as i64;
    // One upload for every index of the step.
    let lens: Vec<i64> = targets.iter().map(|t| t.len).collect();
    let mut data = lens.clone();
    for part in [
        &layout.flat_q,
        &layout.tgt,
        &layout.out_id,
        &layout.image,
        &layout.local_q,
        &layout.by_image,
        &layout.local_t_by_image,
    ] {
        data.extend_from_slice(part);
    }
    let all = upload_i64(&data, device);
    let nb = lens.len() as i64;
    let part = |i: i64| all.narrow(0, nb + i * k, k);
    let (flat_q, tgt_idx, out_id, image, local_q, by_image, local_t) = (
        part(0),
        part(1),
        part(2),
        part(3),
        part(4),
        part(5),
        part(6),
    );
    let lens = all.narrow(0, 0, nb).to_kind(Kind::Float);

    let logits = Tensor::stack(
        &preds
            .iter()
            .map(|p| p.logits.to_kind(Kind::Float))
            .collect::<Vec<_>>(),
        0,
    ); // [O, B, Q, C]
    let cardinality = tch::no_grad(|| {
        let pred = logits
            .argmax(-1, false)
            .ne(c - 1)
            .sum_dim_intlist(2, false, Kind::Float); // [O, B]
        (pred - lens.unsqueeze(0))
            .abs()
            .mean_dim(1, false, Kind::Float) // [O]
    });
    let per_out_sum = |values: &Tensor| -> Tensor {
        Tensor::zeros([no], (Kind::Float, device)).index_add(0, &out_id, values)
    };
    let (loss_ce, loss_bbox, loss_giou, class_error, mask_ce, mask_dice);
    if k == 0 {
        // No object: only the negatives' classification term.
        let prob = logits.sigmoid();
        loss_ce = (prob.square() * (&logits - logits.log_sigmoid()))
            .view([no, -1])
            .sum_dim_intlist(1, false, Kind::Float)
            / num_boxes;
        let zero = logits.sum(Kind::Float) * 0.0;
        let mask_zero = preds
            .iter()
            .map(|p| p.masks.queries.sum(Kind::Float) * 0.0)
            .fold(zero.shallow_clone(), |a, z| a + z);
        let zeros = || mask_zero.expand([no], false) + 0.0;
        loss_bbox = zeros();
        loss_giou = zeros();
        mask_ce = zeros();
        mask_dice = zeros();
        class_error = zero + 100.0;
    } else {
        let labels_all = Tensor::cat(&targets.iter().map(|t| &t.labels).collect::<Vec<_>>(), 0);
        let boxes_all = Tensor::cat(&targets.iter().map(|t| &t.boxes).collect::<Vec<_>>(), 0);
        let tgt_labels = labels_all.index_select(0, &tgt_idx);
        let tgt_boxes = boxes_all.index_select(0, &tgt_idx);
        let src_boxes = Tensor::stack(
            &preds
                .iter()
                .map(|p| p.boxes.to_kind(Kind::Float))
                .collect::<Vec<_>>(),
            0,
        )
        .view([no * b * q, 4])
        .index_select(0, &flat_q);
        let (iou, _) = tch::no_grad(|| {
            paired_iou_giou(
                &cxcywh_to_xyxy(&src_boxes.detach()),
                &cxcywh_to_xyxy(&tgt_boxes),
            )
        });
        loss_ce = ia_bce_terms(&logits, &flat_q, &tgt_labels, &iou) / num_boxes;
        let (_, giou) = paired_iou_giou(&cxcywh_to_xyxy(&src_boxes), &cxcywh_to_xyxy(&tgt_boxes));
        loss_bbox = per_out_sum(&(&src_boxes - &tgt_boxes).abs().sum_dim_intlist(
            -1,
            false,
            Kind::Float,
        )) / num_boxes;
        loss_giou = per_out_sum(&(-giou + 1.0)) / num_boxes;
        let k0 = layout.per_output[0];
        class_error = tch::no_grad(|| {
            if k0 == 0 {
                return logits.sum(Kind::Float) * 0.0 + 100.0;
            }
            let matched = logits
                .view([no * b * q, c])
                .index_select(0, &flat_q.narrow(0, 0, k0));
            let correct = matched
                .argmax(-1, false)
                .eq_tensor(&tgt_labels.narrow(0, 0, k0))
                .to_kind(Kind::Float);
            -(correct.mean(Kind::Float) * 100.0) + 100.0
        });
        let (ce, dice) = batched_mask_losses(
            preds, targets, &layout, &local_q, &image, &by_image, &local_t, &out_id, num_boxes,
        );
        mask_ce = ce;
        mask_dice = dice;
    }
    (0..no)
        .map(|o| OutputLosses {
            terms: [
                loss_ce.get(o),
                loss_bbox.get(o),
                loss_giou.get(o),
                mask_ce.get(o),
                mask_dice.get(o),
            ],
            cardinality_error: cardinality.get(o),
            class_error: (o == 0).then(|| class_error.shallow_clone()),
        })
        .collect()
}

/// IA-BCE of every output at once: `logits` [O, B, Q, C], `flat_q` indexes the stacked
/// [O·B·Q] queries; returns the per-output sums [O] (not yet divided by the box count).
fn ia_bce_terms(logits: &Tensor, flat_q: &Tensor, labels: &Tensor, iou: &Tensor) -> Tensor {
    let no = logits.size()[0];
    let loss = ia_bce_elements(logits, flat_q, labels, iou);
    loss.view([no, -1]).sum_dim_intlist(1, false, Kind::Float)
}

/// Point BCE and Dice of the matched masks of every output (spec §5: uncertainty-sampled
/// points, 3× oversampling, 75% most uncertain; Dice with +1 smoothing), per output [O].
/// Each output's matched mask logits come from one product of its pixel features with its
/// matched query features; targets are sampled image by image.
#[allow(clippy::too_many_arguments)]
fn batched_mask_losses(
    preds: &[&Predictions],
    targets: &[ImageTargets],
    layout: &MatchLayout,
    local_q: &Tensor,
    image: &Tensor,
    by_image: &Tensor,
    local_t: &Tensor,
    out_id: &Tensor,
    num_boxes: f64,
) -> (Tensor, Tensor) {
    let no = preds.len() as i64;
    let device = preds[0].logits.device();
    let [bsz, q, h, w] = preds[0].masks.shape();
    let mut src = Vec::with_capacity(preds.len());
    let mut offset = 0i64;
    for (p, &n) in preds.iter().zip(&layout.per_output) {
        if n == 0 {
            continue;
        }
        let lq = local_q.narrow(0, offset, n);
        let img = image.narrow(0, offset, n);
        offset += n;
        // The product runs in the pixel features' own dtype (bf16 under amp, as the
        // reference's criterion does under autocast): an fp32 copy of [B, Cm, H, W] per output
        // would be kept for the backward pass; only the matched masks become fp32.
        let spatial = &p.masks.spatial; // [B, Cm, H, W]
        let cm = spatial.size()[1];
        let qf = p
            .masks
            .queries
            .to_kind(spatial.kind())
            .view([bsz * q, cm])
            .index_select(0, &lq); // [n, Cm]
        // Every image's pixels against the matched queries, then each match's own image.
        let all = spatial
            .reshape([bsz, cm, h * w])
            .transpose(1, 2)
            .matmul(&qf.tr()); // [B, HW, n]
        let own = all
            .permute([2, 0, 1])
            .gather(1, &img.view([n, 1, 1]).expand([n, 1, h * w], false), false)
            .view([n, 1, h, w])
            .to_kind(Kind::Float);
        src.push(own + p.masks.bias.to_kind(Kind::Float));
    }
    let src = Tensor::cat(&src, 0); // [K, 1, H, W] in (output, image) order
    let p = loss_points(h, w);
    let coords = tch::no_grad(|| uncertain_points(&src.detach(), p)); // [K, P, 2]
    // Targets image by image, in (image, output) order.
    let coords_by_image = coords.index_select(0, by_image);
    let mut labels = Vec::with_capacity(targets.len());
    let mut at = 0i64;
    for (t, &n) in targets.iter().zip(&layout.per_image) {
        if n == 0 {
            continue;
        }
        let c = coords_by_image.narrow(0, at, n);
        let ti = local_t.narrow(0, at, n);
        at += n;
        labels.push(tch::no_grad(|| {
            point_sample(&t.masks.index_select(0, &ti).unsqueeze(1), &c).squeeze_dim(1)
        }));
    }
    let labels = Tensor::cat(&labels, 0); // [K, P], (image, output) order
    let logits = point_sample(&src, &coords)
        .squeeze_dim(1)
        .index_select(0, by_image); // [K, P], (image, output) order
    let outs = out_id.index_select(0, by_image);
    let (ce, dice) = point_mask_elements(&logits, &labels);
    let sum = |v: &Tensor| Tensor::zeros([no], (Kind::Float, device)).index_add(0, &outs, v);
    (sum(&ce) / num_boxes, sum(&dice) / num_boxes)
}

/// IA-BCE (spec §5): positives get a soft BCE target t = max(p^0.25 · IoU^0.75, 0.01)
/// (detached), negatives the weight p² on −log(1 − p) (not detached, as in the reference).
/// `flat_q` indexes queries of the flattened [B·Q] axis, `labels` their target classes.
pub fn ia_bce(
    logits: &Tensor,
    flat_q: &Tensor,
    labels: &Tensor,
    iou: &Tensor,
    num_boxes: f64,
) -> Tensor {
    ia_bce_elements(logits, flat_q, labels, iou).sum(Kind::Float) / num_boxes
}

/// IA-BCE per logit (flattened), before summing: see [`ia_bce`].
fn ia_bce_elements(logits: &Tensor, flat_q: &Tensor, labels: &Tensor, iou: &Tensor) -> Tensor {
    let alpha = 0.25;
    let gamma = 2.0;
    let c = *logits.size().last().unwrap_or(&1);
    let x = logits.reshape([-1]);
    let prob = x.sigmoid();
    let pos_idx = flat_q * c + labels;
    let t = tch::no_grad(|| {
        (prob.index_select(0, &pos_idx).pow_tensor_scalar(alpha)
            * iou.clamp_min(0.0).pow_tensor_scalar(1.0 - alpha))
        .clamp_min(0.01)
    });
    let pos_w = x
        .zeros_like()
        .index_put(&[Some(pos_idx.shallow_clone())], &t, false);
    let is_pos = x
        .zeros_like()
        .index_put(&[Some(pos_idx)], &t.ones_like(), false);
    let neg_w = prob.pow_tensor_scalar(gamma) * (-&is_pos + 1.0) + (-&pos_w + 1.0) * &is_pos;
    &neg_w * &x - x.log_sigmoid() * (&pos_w + &neg_w)
}

/// BCE (mean over points, summed over masks) and Dice (+1 smoothing, summed over masks) of
/// point logits [K, P] against point labels [K, P] in [0, 1], both divided by `num_boxes`.
pub fn point_mask_losses(logits: &Tensor, labels: &Tensor, num_boxes: f64) -> (Tensor, Tensor) {
    let (ce, dice) = point_mask_elements(logits, labels);
    (
        ce.sum(Kind::Float) / num_boxes,
        dice.sum(Kind::Float) / num_boxes,
    )
}

/// Per mask [K]: the BCE averaged over its points and its Dice loss.
fn point_mask_elements(logits: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
    let ce = logits
        .binary_cross_entropy_with_logits::<Tensor>(labels, None, None, Reduction::None)
        .mean_dim(1, false, Kind::Float);
    let p = logits.sigmoid();
    let numer = (&p * labels).sum_dim_intlist(1, false, Kind::Float) * 2.0;
    let denom =
        p.sum_dim_intlist(1, false, Kind::Float) + labels.sum_dim_intlist(1, false, Kind::Float);
    let dice = -((numer + 1.0) / (denom + 1.0)) + 1.0;
    (ce, dice)
}
