//! The training criterion (the reference's `SetCriterion` for RF-DETR-Seg, spec §5): for each
//! output (final layer, every auxiliary layer, the two-stage proposals) its own Hungarian
//! matching, then IA-BCE classification, L1 and GIoU box losses and point-sampled mask BCE +
//! Dice, all summed over matches and divided by the number of target boxes × query groups.

use tch::{Kind, Reduction, Tensor};

use super::boxes::{cxcywh_to_xyxy, paired_iou_giou};
use super::matcher::{CostWeights, ImageMatch, match_output};
use super::points::{loss_points, point_sample, uncertain_points};
use super::targets::ImageTargets;
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
    /// Cardinality error (logged only): mean |predicted objects − targets| per image.
    pub cardinality_error: f64,
    /// Class error (logged only): 100 − top-1 accuracy on the matched queries, in percent.
    pub class_error: f64,
}

/// All losses of one forward pass.
#[derive(Debug)]
pub struct StepLosses {
    /// Σ weight · term: what is back-propagated.
    pub total: Tensor,
    /// (key, unweighted value tensor, weight) for every term: `loss_ce`, …, `loss_ce_0`, …,
    /// `loss_ce_enc`, ….
    pub terms: Vec<(String, Tensor, f64)>,
    /// (key, value) of the logged-only numbers: `class_error`, `cardinality_error{S}`.
    pub logged: Vec<(String, f64)>,
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
        let mut outputs: Vec<(String, &Predictions)> = vec![(String::new(), &out.main)];
        for (i, aux) in out.aux.iter().enumerate() {
            outputs.push((format!("_{i}"), aux));
        }
        outputs.push(("_enc".to_owned(), &out.enc));
        let mut total: Option<Tensor> = None;
        let mut terms = Vec::new();
        let mut logged = Vec::new();
        for (suffix, pred) in outputs {
            let matches = match_output(pred, targets, groups, &self.costs);
            let l = output_losses(pred, targets, &matches, num_boxes);
            if suffix.is_empty() {
                logged.push(("class_error".to_owned(), l.class_error));
            }
            logged.push((format!("cardinality_error{suffix}"), l.cardinality_error));
            for (kind, t) in LOSS_KINDS.iter().zip(l.terms) {
                let w = self.weights.of(kind);
                let weighted = &t * w;
                total = Some(match total {
                    Some(acc) => acc + weighted,
                    None => weighted,
                });
                terms.push((format!("{kind}{suffix}"), t, w));
            }
        }
        StepLosses {
            total: total.unwrap_or_else(|| Tensor::zeros([], (Kind::Float, tch::Device::Cpu))),
            terms,
            logged,
        }
    }
}

/// Losses of one output given its matching; `num_boxes` is the normaliser.
pub fn output_losses(
    pred: &Predictions,
    targets: &[ImageTargets],
    matches: &[ImageMatch],
    num_boxes: f64,
) -> OutputLosses {
    let device = pred.logits.device();
    let (bsz, q, c) = pred.logits.size3().unwrap_or((0, 0, 0));
    let mut flat_q = Vec::new();
    let mut tgt_labels = Vec::new();
    let mut tgt_boxes = Vec::new();
    for (b, (m, t)) in matches.iter().zip(targets).enumerate() {
        if m.queries.is_empty() {
            continue;
        }
        let idx = Tensor::from_slice(&m.targets).to_device(device);
        flat_q.extend(m.queries.iter().map(|&qi| b as i64 * q + qi));
        tgt_labels.push(t.labels.index_select(0, &idx));
        tgt_boxes.push(t.boxes.index_select(0, &idx));
    }
    let k = flat_q.len() as i64;
    let logits = pred.logits.to_kind(Kind::Float);
    let prob = logits.sigmoid();
    let zero = || logits.sum(Kind::Float) * 0.0;
    let cardinality_error = cardinality(&logits, targets);
    if k == 0 {
        // No object: only the negatives' classification term.
        let loss_ce =
            (prob.square() * (&logits - logits.log_sigmoid())).sum(Kind::Float) / num_boxes;
        let mask_zero = pred.masks.queries.sum(Kind::Float) * 0.0;
        return OutputLosses {
            terms: [
                loss_ce,
                zero(),
                zero(),
                mask_zero.shallow_clone(),
                mask_zero,
            ],
            cardinality_error,
            class_error: 100.0,
        };
    }
    let flat_q = Tensor::from_slice(&flat_q).to_device(device);
    let tgt_labels = Tensor::cat(&tgt_labels, 0);
    let tgt_boxes = Tensor::cat(&tgt_boxes, 0);
    let src_boxes = pred
        .boxes
        .to_kind(Kind::Float)
        .view([bsz * q, 4])
        .index_select(0, &flat_q);
    let (iou, _) = tch::no_grad(|| {
        paired_iou_giou(
            &cxcywh_to_xyxy(&src_boxes.detach()),
            &cxcywh_to_xyxy(&tgt_boxes),
        )
    });
    let loss_ce = ia_bce(&logits, &flat_q, &tgt_labels, &iou, num_boxes);
    let (_, giou) = paired_iou_giou(&cxcywh_to_xyxy(&src_boxes), &cxcywh_to_xyxy(&tgt_boxes));
    let loss_bbox = (&src_boxes - &tgt_boxes).abs().sum(Kind::Float) / num_boxes;
    let loss_giou = (-giou + 1.0).sum(Kind::Float) / num_boxes;
    let class_error = tch::no_grad(|| {
        let matched = logits.view([bsz * q, c]).index_select(0, &flat_q);
        let correct = matched
            .argmax(-1, false)
            .eq_tensor(&tgt_labels)
            .to_kind(Kind::Float);
        100.0 - 100.0 * correct.mean(Kind::Float).double_value(&[])
    });
    let (mask_ce, mask_dice) = mask_losses(pred, targets, matches, num_boxes);
    OutputLosses {
        terms: [loss_ce, loss_bbox, loss_giou, mask_ce, mask_dice],
        cardinality_error,
        class_error,
    }
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
    let (alpha, gamma) = (0.25, 2.0);
    let c = *logits.size().last().unwrap_or(&1);
    let x = logits.view([-1]);
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
    let loss = &neg_w * &x - x.log_sigmoid() * (&pos_w + &neg_w);
    loss.sum(Kind::Float) / num_boxes
}

/// Point BCE and Dice of the matched masks (spec §5: uncertainty-sampled points, 3×
/// oversampling, 75% most uncertain; Dice with +1 smoothing).
fn mask_losses(
    pred: &Predictions,
    targets: &[ImageTargets],
    matches: &[ImageMatch],
    num_boxes: f64,
) -> (Tensor, Tensor) {
    let device = pred.logits.device();
    let mut src = Vec::new();
    let mut tgt = Vec::new();
    for (b, (m, t)) in matches.iter().zip(targets).enumerate() {
        if m.queries.is_empty() {
            continue;
        }
        let qi = Tensor::from_slice(&m.queries).to_device(device);
        let ti = Tensor::from_slice(&m.targets).to_device(device);
        src.push(pred.masks.select(b as i64, &qi).to_kind(Kind::Float));
        tgt.push(t.masks.index_select(0, &ti));
    }
    let src = Tensor::cat(&src, 0).unsqueeze(1); // [K, 1, H, W]
    let [_, _, h, w] = pred.masks.shape();
    let p = loss_points(h, w);
    let coords = tch::no_grad(|| uncertain_points(&src.detach(), p)); // [K, P, 2]
    let mut labels = Vec::new();
    let mut offset = 0;
    for t in &tgt {
        let n = t.size()[0];
        let c = coords.narrow(0, offset, n);
        labels.push(tch::no_grad(|| {
            point_sample(&t.unsqueeze(1), &c).squeeze_dim(1)
        }));
        offset += n;
    }
    let labels = Tensor::cat(&labels, 0); // [K, P]
    let logits = point_sample(&src, &coords).squeeze_dim(1); // [K, P]
    point_mask_losses(&logits, &labels, num_boxes)
}

/// BCE (mean over points, summed over masks) and Dice (+1 smoothing, summed over masks) of
/// point logits [K, P] against point labels [K, P] in [0, 1], both divided by `num_boxes`.
pub fn point_mask_losses(logits: &Tensor, labels: &Tensor, num_boxes: f64) -> (Tensor, Tensor) {
    let ce = logits
        .binary_cross_entropy_with_logits::<Tensor>(labels, None, None, Reduction::None)
        .mean_dim(1, false, Kind::Float)
        .sum(Kind::Float)
        / num_boxes;
    let p = logits.sigmoid();
    let numer = (&p * labels).sum_dim_intlist(1, false, Kind::Float) * 2.0;
    let denom =
        p.sum_dim_intlist(1, false, Kind::Float) + labels.sum_dim_intlist(1, false, Kind::Float);
    let dice = (-((numer + 1.0) / (denom + 1.0)) + 1.0).sum(Kind::Float) / num_boxes;
    (ce, dice)
}

/// Mean over images of |queries whose top logit is not the last ("no object") slot − targets|.
fn cardinality(logits: &Tensor, targets: &[ImageTargets]) -> f64 {
    tch::no_grad(|| {
        let c = *logits.size().last().unwrap_or(&1);
        let pred = logits
            .argmax(-1, false)
            .ne(c - 1)
            .sum_dim_intlist(1, false, Kind::Float);
        let lens: Vec<f32> = targets.iter().map(|t| t.len as f32).collect();
        let lens = Tensor::from_slice(&lens).to_device(logits.device());
        (pred - lens).abs().mean(Kind::Float).double_value(&[])
    })
}
