//! Per-epoch evaluation on the validation split (the reference's `evaluate`): losses of the
//! single-group eval outputs, post-processing to the top `num_select` detections per image,
//! and COCO bbox and segm evaluation (flow-coco's pycocotools-equal evaluator, RF-DETR's
//! summary with 500 max detections).

use flow_coco::dataset::Loader;
use flow_coco::eval::{Evaluation, Feed, IouType, Params, Summarize, evaluate};
use flow_coco::format::{AnnotationFile, Detection, RleJson, Segmentation};
use flow_coco::mask::Rle;
use tch::{Device, Kind, Tensor};

use super::loss::Criterion;
use super::meter::Meter;
use super::targets::StepInput;
use crate::model::postprocess::{Selection, masks_of, select};
use crate::model::{Mode, RfDetrSeg};

/// Detections kept per image during training evaluation (the reference's `num_select` 300).
pub const EVAL_NUM_SELECT: i64 = 300;
/// `eval_max_dets`.
pub const EVAL_MAX_DETS: usize = 500;

/// One evaluation's results.
#[derive(Debug, Clone)]
pub struct EvalResult {
    /// Epoch means of the weighted losses (`loss`, `loss_ce`, …) and the unweighted ones
    /// (`…_unscaled`), plus `class_error` and `cardinality_error…`.
    pub stats: Vec<(String, f64)>,
    /// COCO bbox numbers.
    pub bbox: [f64; 12],
    /// COCO segm numbers.
    pub masks: [f64; 12],
    /// RF-DETR's `results_json` of the bbox evaluation (per-class and overall AP, P, R, F1).
    pub results_json: serde_json::Value,
}

/// Evaluation errors.
#[derive(Debug, thiserror::Error)]
pub enum EvalStepError {
    /// Loading a batch failed.
    #[error(transparent)]
    Data(#[from] flow_coco::dataset::DatasetError),
    /// The model refused the input.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// The evaluator failed.
    #[error(transparent)]
    Coco(#[from] flow_coco::eval::EvalError),
}

/// Evaluates `model` on every batch of `loader` against the annotation file `gt`.
pub fn evaluate_model(
    model: &RfDetrSeg,
    loader: &Loader,
    gt: &AnnotationFile,
    criterion: &Criterion,
    device: Device,
) -> Result<EvalResult, EvalStepError> {
    let mut meter = Meter::default();
    let mut detections = Vec::new();
    for batch in loader.epoch(0) {
        let batch = batch?;
        let input = StepInput::from_batch(&batch, 0, batch.len(), device);
        tch::no_grad(|| -> Result<(), EvalStepError> {
            let out = model.forward(&input.images, Mode::Eval)?;
            let losses = criterion.forward(&out, &input.targets, 1);
            record_losses(&mut meter, &losses);
            let sizes: Vec<(i64, i64)> = batch
                .targets
                .iter()
                .map(|t| (t.orig_size[0] as i64, t.orig_size[1] as i64))
                .collect();
            let (_, q, c) = out
                .main
                .logits
                .size3()
                .map_err(crate::model::ModelError::from)?;
            let selected = select(&out.main, &sizes, EVAL_NUM_SELECT.min(q * c))?;
            for (i, (t, s)) in batch.targets.iter().zip(selected).enumerate() {
                detections.extend(to_coco(&out.main, i as i64, t.image_id, &s, sizes[i]));
            }
            Ok(())
        })?;
    }
    let (bbox, masks) = rayon::join(
        || coco_eval(gt, &detections, IouType::Bbox),
        || coco_eval(gt, &detections, IouType::Segm),
    );
    let (bbox, masks) = (bbox?, masks?);
    Ok(EvalResult {
        stats: meter.means(),
        results_json: super::results_json::results_json(gt, &bbox),
        bbox: bbox.summary.stats,
        masks: masks.summary.stats,
    })
}

/// Adds a step's losses to `meter` under the reference's names: `loss` (weighted sum),
/// `class_error`, each weighted term, each `…_unscaled` term and the logged-only numbers, as
/// one device tensor (no wait for the GPU).
pub fn record_losses(meter: &mut Meter, losses: &super::loss::StepLosses) {
    let mut keys: Vec<String> = vec!["loss".to_owned()];
    let mut values: Vec<Tensor> = vec![losses.total.detach().to_kind(Kind::Float)];
    for (k, v) in &losses.logged {
        if k == "class_error" {
            keys.push(k.clone());
            values.push(v.to_kind(Kind::Float));
        }
    }
    for ((k, _, _), w) in losses.terms.iter().zip(&losses.weighted) {
        keys.push(k.clone());
        values.push(w.detach().to_kind(Kind::Float));
    }
    for (k, v, _) in &losses.terms {
        keys.push(format!("{k}_unscaled"));
        values.push(v.detach().to_kind(Kind::Float));
    }
    for (k, v) in &losses.logged {
        keys.push(format!("{k}_unscaled"));
        values.push(v.to_kind(Kind::Float));
    }
    let device = losses.total.device();
    let values: Vec<Tensor> = values.into_iter().map(|v| v.to_device(device)).collect();
    meter.add_tensor(&keys, &Tensor::stack(&values, 0));
}

fn coco_eval(
    gt: &AnnotationFile,
    detections: &[Detection],
    iou: IouType,
) -> Result<Evaluation, flow_coco::eval::EvalError> {
    let params = Params::new(iou, EVAL_MAX_DETS, Summarize::Rfdetr, Feed::Rfdetr);
    evaluate(gt, detections, &params)
}

/// Masks upsampled to the original size at a time: bounds the memory of evaluating large
/// images (the reference's OOMs of spec §6 come from upsampling all 300 at once).
const MASK_CHUNK: i64 = 16;

/// COCO results entries of image `b`'s selected detections (box and compressed-RLE mask
/// each), masks made `MASK_CHUNK` at a time.
fn to_coco(
    pred: &crate::model::Predictions,
    b: i64,
    image_id: i64,
    s: &Selection,
    size: (i64, i64),
) -> Vec<Detection> {
    let scores: Vec<f64> = Vec::try_from(s.scores.to_kind(Kind::Double)).unwrap_or_default();
    let labels: Vec<i64> = Vec::try_from(s.labels.to_kind(Kind::Int64)).unwrap_or_default();
    let boxes: Vec<f64> =
        Vec::try_from(s.boxes.to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default();
    let (h, w) = size;
    let plane = (h * w) as usize;
    let k = scores.len() as i64;
    let mut rles = Vec::with_capacity(scores.len());
    let mut start = 0;
    while start < k {
        let n = MASK_CHUNK.min(k - start);
        let masks = masks_of(pred, b, &s.queries.narrow(0, start, n), size);
        // Column-major bytes, as COCO's RLE expects.
        let bytes: Vec<u8> = Vec::try_from(
            masks
                .to_kind(Kind::Uint8)
                .transpose(1, 2)
                .contiguous()
                .flatten(0, -1),
        )
        .unwrap_or_default();
        for i in 0..n as usize {
            let m = bytes.get(i * plane..(i + 1) * plane).unwrap_or(&[]);
            rles.push(Rle::encode(m, h as u32, w as u32));
        }
        start += n;
    }
    scores
        .iter()
        .zip(rles)
        .enumerate()
        .map(|(i, (&score, rle))| {
            let b = &boxes[i * 4..i * 4 + 4];
            Detection {
                image_id,
                category_id: labels[i],
                score,
                bbox: Some(vec![b[0], b[1], b[2] - b[0], b[3] - b[1]]),
                segmentation: Some(Segmentation::Rle(RleJson::from_rle(&rle))),
            }
        })
        .collect()
}
