//! The transformer (`transformer.*`): two-stage query selection per group on the projector's
//! memory, then the decoder. There is no encoder. Boxes are bbox-reparametrised: a delta
//! (δx, δy, δw, δh) on a box (x, y, w, h) gives (δxy·wh + xy, exp(δwh)·wh), all in [0, 1]
//! image coordinates (no sigmoid).

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::decoder::{Decoder, DecoderInput};
use super::error::ModelError;
use super::layers::{LayerNorm, Linear, Mlp, WeightInit};

/// Width/height of every grid proposal (level 0).
const PROPOSAL_WH: f64 = 0.05;

/// Applies a reparametrised box delta to boxes: both [.., 4], broadcastable.
pub fn apply_box_delta(delta: &Tensor, boxes: &Tensor) -> Tensor {
    let xy = boxes.narrow(-1, 0, 2);
    let wh = boxes.narrow(-1, 2, 2);
    let cxcy = delta.narrow(-1, 0, 2) * &wh + xy;
    let size = delta.narrow(-1, 2, 2).exp() * wh;
    Tensor::cat(&[cxcy, size], -1)
}

/// Per-group two-stage heads and the decoder.
#[derive(Debug)]
pub struct Transformer {
    /// The decoder.
    pub decoder: Decoder,
    enc_output: Vec<Linear>,
    enc_output_norm: Vec<LayerNorm>,
    /// Two-stage box heads, one per group (copies of the model's `bbox_embed` at init).
    pub enc_out_bbox_embed: Vec<Mlp>,
    /// Two-stage class heads, one per group (copies of the model's `class_embed` at init).
    pub enc_out_class_embed: Vec<Linear>,
    num_queries: i64,
}

/// What the transformer hands to the heads.
#[derive(Debug)]
pub struct TransformerOutput {
    /// Decoder outputs of every layer: [L, B, Q, C].
    pub hs: Tensor,
    /// The reference boxes every layer used: [B, Q, 4].
    pub reference: Tensor,
    /// Selected (normalised) memory features of the two-stage proposals: [B, G·nq, C].
    pub hs_enc: Tensor,
    /// Their boxes (gradient flows to the two-stage heads): [B, G·nq, 4].
    pub boxes_enc: Tensor,
}

/// Grid proposals (x, y, 0.05, 0.05) at cell centres, zeroed where not all of them lie in
/// (0.01, 0.99), and that validity mask: ([H·W, 4], [H·W, 1]).
fn grid_proposals(h: i64, w: i64, device: tch::Device) -> (Tensor, Tensor) {
    let opts = (Kind::Float, device);
    let ys = (Tensor::arange(h, opts) + 0.5) / h as f64;
    let xs = (Tensor::arange(w, opts) + 0.5) / w as f64;
    let gy = ys.view([h, 1]).expand([h, w], false);
    let gx = xs.view([1, w]).expand([h, w], false);
    let wh = Tensor::full([h, w, 2], PROPOSAL_WH, opts);
    let p = Tensor::cat(&[gx.unsqueeze(-1), gy.unsqueeze(-1), wh], -1).view([h * w, 4]);
    let valid = p.gt(0.01).logical_and(&p.lt(0.99)).all_dims(-1, true);
    (p.masked_fill(&valid.logical_not(), 0.0), valid)
}

impl Transformer {
    /// Builds `p.decoder`, `p.enc_output.{g}`, `p.enc_output_norm.{g}`,
    /// `p.enc_out_bbox_embed.{g}` and `p.enc_out_class_embed.{g}`; the two-stage heads start
    /// as copies of `bbox_embed` / `class_embed`, as the reference's deep copies do.
    pub fn new(p: &Path, cfg: &ModelConfig, bbox_embed: &Mlp, class_embed: &Linear) -> Self {
        let d = cfg.hidden_dim;
        let groups = 0..cfg.group_detr;
        let enc_output = groups
            .clone()
            .map(|g| {
                Linear::new(
                    &p.sub("enc_output").sub(g),
                    d,
                    d,
                    WeightInit::XavierDefaultBias,
                )
            })
            .collect();
        let enc_output_norm = groups
            .clone()
            .map(|g| LayerNorm::new(&p.sub("enc_output_norm").sub(g), d, 1e-5))
            .collect();
        let enc_out_bbox_embed = groups
            .clone()
            .map(|g| {
                let m = Mlp::new(
                    &p.sub("enc_out_bbox_embed").sub(g),
                    (d, d, 4),
                    3,
                    &[WeightInit::TorchDefault],
                );
                m.copy_from(bbox_embed);
                m
            })
            .collect();
        let enc_out_class_embed = groups
            .map(|g| {
                let l = Linear::new(
                    &p.sub("enc_out_class_embed").sub(g),
                    d,
                    cfg.num_logits(),
                    WeightInit::TorchDefault,
                );
                l.copy_from(class_embed);
                l
            })
            .collect();
        Transformer {
            decoder: Decoder::new(&p.sub("decoder"), cfg),
            enc_output,
            enc_output_norm,
            enc_out_bbox_embed,
            enc_out_class_embed,
            num_queries: cfg.num_queries,
        }
    }

    /// `src` [B, C, H, W] projector map; `refpoint_embed` [G·nq, 4] and `query_feat`
    /// [G·nq, C] the learned queries of the `groups` groups in use.
    pub fn forward(
        &self,
        src: &Tensor,
        refpoint_embed: &Tensor,
        query_feat: &Tensor,
        groups: i64,
    ) -> Result<TransformerOutput, ModelError> {
        let (b, _c, h, w) = src.size4()?;
        if h * w < self.num_queries {
            return Err(ModelError::InvalidInput(format!(
                "the {h}x{w} feature grid has fewer cells than the {} queries per group; use a larger image",
                self.num_queries
            )));
        }
        let memory = src.flatten(2, 3).transpose(1, 2); // [B, HW, C]
        let (proposals, valid) = grid_proposals(h, w, src.device());
        let proposals = proposals.to_kind(memory.kind()).unsqueeze(0); // [1, HW, 4]
        let output_memory = memory.masked_fill(&valid.logical_not().unsqueeze(0), 0.0);
        let d = memory.size()[2];
        let (mut refs, mut feats, mut boxes) = (vec![], vec![], vec![]);
        for g in 0..groups as usize {
            let om = self.enc_output_norm[g].forward(&self.enc_output[g].forward(&output_memory));
            let logits = self.enc_out_class_embed[g].forward(&om);
            let coords = apply_box_delta(&self.enc_out_bbox_embed[g].forward(&om), &proposals);
            let (_, top) = logits
                .amax([-1], false)
                .topk(self.num_queries, 1, true, true);
            let sel_boxes = coords.gather(
                1,
                &top.unsqueeze(-1).expand([b, self.num_queries, 4], false),
                false,
            );
            let sel_feats = om.gather(
                1,
                &top.unsqueeze(-1).expand([b, self.num_queries, d], false),
                false,
            );
            refs.push(sel_boxes.detach());
            boxes.push(sel_boxes);
            feats.push(sel_feats);
        }
        let ref_ts = Tensor::cat(&refs, 1);
        let tgt = query_feat.unsqueeze(0).repeat([b, 1, 1]);
        let refpoints = refpoint_embed.unsqueeze(0).repeat([b, 1, 1]);
        // Learned refpoints are deltas on the selected proposals.
        let reference = apply_box_delta(&refpoints, &ref_ts);
        let hs = self.decoder.forward(
            &tgt,
            &DecoderInput {
                memory: &memory,
                hw: (h, w),
                reference: &reference,
                groups,
            },
        );
        Ok(TransformerOutput {
            hs,
            reference,
            hs_enc: Tensor::cat(&feats, 1),
            boxes_enc: Tensor::cat(&boxes, 1),
        })
    }
}
