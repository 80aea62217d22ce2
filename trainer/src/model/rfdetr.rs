//! RF-DETR-Seg assembled (the reference's `LWDETR` with a segmentation head): backbone →
//! projector → two-stage transformer → class / box / mask heads, with group DETR (all
//! `group_detr` query groups while training, the first group at inference).

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use super::backbone::Backbone;
use super::config::ModelConfig;
use super::error::ModelError;
use super::layers::{Linear, Mlp, WeightInit};
use super::projector::Projector;
use super::seg_head::{MaskLogits, SegHead};
use super::transformer::{Transformer, apply_box_delta};

/// Prior probability of the class heads' bias initialisation (focal-loss style).
const PRIOR_PROB: f64 = 0.01;

/// Name of the reference's (1.11) empty keypoint buffer, kept so the variable sets match.
pub const KP_ACTIVE_MASK: &str = "_kp_active_mask";

/// Whether a forward pass trains (all query groups) or infers (one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All `group_detr` groups; group-wise self-attention.
    Train,
    /// The first group only.
    Eval,
}

/// One set of predictions (final layer, an auxiliary layer, or the two-stage proposals).
#[derive(Debug)]
pub struct Predictions {
    /// Class logits (sigmoid, no softmax): [B, Q, num_classes + 1].
    pub logits: Tensor,
    /// Boxes (cx, cy, w, h) normalised to [0, 1]: [B, Q, 4].
    pub boxes: Tensor,
    /// Mask logits at input/4, factorised.
    pub masks: MaskLogits,
}

/// Everything a forward pass returns, as the reference's output dict.
#[derive(Debug)]
pub struct ModelOutput {
    /// Last decoder layer (`pred_logits`, `pred_boxes`, `pred_masks`).
    pub main: Predictions,
    /// Earlier decoder layers, first to last (`aux_outputs`).
    pub aux: Vec<Predictions>,
    /// Two-stage proposals (`enc_outputs`).
    pub enc: Predictions,
}

impl ModelOutput {
    /// Every tensor, in a fixed order (main, aux layers first to last, enc; per set: logits,
    /// boxes, mask pixel features, mask query features, mask bias), for code that handles the
    /// output as a flat list (the CUDA-graph step keeps it in static buffers).
    pub fn tensors(&self) -> Vec<&Tensor> {
        std::iter::once(&self.main)
            .chain(&self.aux)
            .chain(std::iter::once(&self.enc))
            .flat_map(|p| {
                [
                    &p.logits,
                    &p.boxes,
                    &p.masks.spatial,
                    &p.masks.queries,
                    &p.masks.bias,
                ]
            })
            .collect()
    }

    /// The output [`ModelOutput::tensors`] listed, with `aux_layers` auxiliary layers; `None`
    /// when the count does not match.
    pub fn from_tensors(aux_layers: usize, tensors: Vec<Tensor>) -> Option<ModelOutput> {
        if tensors.len() != 5 * (aux_layers + 2) {
            return None;
        }
        let mut it = tensors.into_iter();
        let mut next = || -> Option<Predictions> {
            Some(Predictions {
                logits: it.next()?,
                boxes: it.next()?,
                masks: MaskLogits {
                    spatial: it.next()?,
                    queries: it.next()?,
                    bias: it.next()?,
                },
            })
        };
        let main = next()?;
        let aux = (0..aux_layers)
            .map(|_| next())
            .collect::<Option<Vec<_>>>()?;
        let enc = next()?;
        Some(ModelOutput { main, aux, enc })
    }
}

/// The model. Its variables live in the `VarStore` of the path it was built on, under the
/// reference's names.
#[derive(Debug)]
pub struct RfDetrSeg {
    cfg: ModelConfig,
    backbone: Backbone,
    projector: Projector,
    transformer: Transformer,
    class_embed: Linear,
    bbox_embed: Mlp,
    segmentation_head: SegHead,
    refpoint_embed: Tensor,
    query_feat: Tensor,
}

impl RfDetrSeg {
    /// Builds every variable under `root` (normally `vs.root()`), initialised as the
    /// reference initialises a fresh model.
    pub fn new(root: &Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        let d = cfg.hidden_dim;
        let class_embed = Linear::new(
            &root.sub("class_embed"),
            d,
            cfg.num_logits(),
            WeightInit::TorchDefault,
        );
        tch::no_grad(|| {
            let _ = class_embed
                .bias
                .shallow_clone()
                .fill_(-((1.0 - PRIOR_PROB) / PRIOR_PROB).ln());
        });
        let bbox_embed = Mlp::new(
            &root.sub("bbox_embed"),
            (d, d, 4),
            3,
            &[
                WeightInit::TorchDefault,
                WeightInit::TorchDefault,
                WeightInit::Zeros,
            ],
        );
        let transformer =
            Transformer::new(&root.sub("transformer"), cfg, &bbox_embed, &class_embed);
        let queries = cfg.num_queries * cfg.group_detr;
        let backbone_p = root.sub("backbone").sub(0);
        let model = RfDetrSeg {
            backbone: Backbone::new(&backbone_p.sub("encoder").sub("encoder"), cfg),
            projector: Projector::new(&backbone_p.sub("projector"), cfg),
            transformer,
            class_embed,
            bbox_embed,
            segmentation_head: SegHead::new(&root.sub("segmentation_head"), cfg),
            refpoint_embed: root.sub("refpoint_embed").var(
                "weight",
                &[queries, 4],
                Init::Const(0.0),
            ),
            query_feat: root.sub("query_feat").var(
                "weight",
                &[queries, d],
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            cfg: cfg.clone(),
        };
        let _ = root.add(
            KP_ACTIVE_MASK,
            Tensor::zeros([0, 0], (Kind::Bool, root.device())),
            false,
        );
        Ok(model)
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Runs the model on normalised images [B, 3, H, W] (H, W multiples of patch × windows).
    pub fn forward(&self, images: &Tensor, mode: Mode) -> Result<ModelOutput, ModelError> {
        let size = images.size();
        let (kind, device) = (self.query_feat.kind(), self.query_feat.device());
        if images.kind() != kind || images.device() != device {
            return Err(ModelError::InvalidInput(format!(
                "images are {:?} on {:?}, the model's weights {kind:?} on {device:?}",
                images.kind(),
                images.device()
            )));
        }
        let feats = self.backbone.forward(images)?;
        let src = self.projector.forward(&feats);
        let groups = match mode {
            Mode::Train => self.cfg.group_detr,
            Mode::Eval => 1,
        };
        let n = self.cfg.num_queries * groups;
        let t = self.transformer.forward(
            &src,
            &self.refpoint_embed.narrow(0, 0, n),
            &self.query_feat.narrow(0, 0, n),
            groups,
        )?;
        let image_hw = (size[2], size[3]);
        let logits = self.class_embed.forward(&t.hs);
        let boxes = apply_box_delta(&self.bbox_embed.forward(&t.hs), &t.reference.unsqueeze(0));
        let mut masks = self.segmentation_head.forward(&src, &t.hs, image_hw);
        let layers = t.hs.size()[0];
        let mut per_layer: Vec<Predictions> = (0..layers)
            .rev()
            .map(|l| Predictions {
                logits: logits.get(l),
                boxes: boxes.get(l),
                masks: masks.pop().expect("one mask set per decoder layer"),
            })
            .collect();
        per_layer.reverse();
        let main = per_layer.pop().expect("at least one decoder layer");
        let chunks = t.hs_enc.chunk(groups, 1);
        let enc_logits: Vec<Tensor> = chunks
            .iter()
            .zip(&self.transformer.enc_out_class_embed)
            .map(|(h, head)| head.forward(h))
            .collect();
        let enc = Predictions {
            logits: Tensor::cat(&enc_logits, 1),
            boxes: t.boxes_enc,
            masks: self
                .segmentation_head
                .forward_encoder(&src, &t.hs_enc, image_hw),
        };
        Ok(ModelOutput {
            main,
            aux: per_layer,
            enc,
        })
    }
}
