//! The transformer decoder (`transformer.decoder.*`): post-norm layers of self-attention
//! (within each query group while training), single-level deformable cross-attention and a
//! ReLU FFN. With lite reference-point refinement every layer uses the initial reference
//! boxes, whose sine embedding gives the query positions through `ref_point_head`.

use std::f64::consts::PI;

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::deform_attn::DeformAttn;
use super::layers::{LayerNorm, Linear, Mlp, WeightInit};

/// nn.LayerNorm's default eps.
const LN_EPS: f64 = 1e-5;

/// `nn.MultiheadAttention` (batch first): packed `in_proj_weight`/`in_proj_bias`, `out_proj`.
#[derive(Debug)]
struct MultiheadAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Linear,
    heads: i64,
}

impl MultiheadAttention {
    fn new(p: &Path, dim: i64, heads: i64) -> Self {
        let bound = (6.0 / (dim + 3 * dim) as f64).sqrt();
        MultiheadAttention {
            in_proj_weight: p.var(
                "in_proj_weight",
                &[3 * dim, dim],
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            ),
            in_proj_bias: p.var("in_proj_bias", &[3 * dim], Init::Const(0.0)),
            out_proj: Linear::new(&p.sub("out_proj"), dim, dim, WeightInit::XavierZeroBias),
            heads,
        }
    }

    /// `q`, `k`, `v`: [N, T, C].
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let (n, t, c) = q.size3().expect("[N, T, C]");
        let w = self.in_proj_weight.chunk(3, 0);
        let bias = self.in_proj_bias.chunk(3, 0);
        let heads = |x: &Tensor, i: usize| {
            x.linear(&w[i], Some(&bias[i]))
                .view([n, -1, self.heads, c / self.heads])
                .transpose(1, 2)
        };
        let out = Tensor::scaled_dot_product_attention::<Tensor>(
            &heads(q, 0),
            &heads(k, 1),
            &heads(v, 2),
            None,
            0.0,
            false,
            None,
            false,
        );
        self.out_proj
            .forward(&out.transpose(1, 2).reshape([n, t, c]))
    }
}

/// One decoder layer (`layers.{i}.*`).
#[derive(Debug)]
struct DecoderLayer {
    self_attn: MultiheadAttention,
    norm1: LayerNorm,
    cross_attn: DeformAttn,
    linear1: Linear,
    linear2: Linear,
    norm2: LayerNorm,
    norm3: LayerNorm,
}

/// What every layer of one decoder pass shares.
#[derive(Debug)]
pub struct DecoderInput<'a> {
    /// Projector map flattened: [B, H·W, C].
    pub memory: &'a Tensor,
    /// Its grid (H, W).
    pub hw: (i64, i64),
    /// Reference boxes (cx, cy, w, h) in [0, 1]: [B, Q, 4].
    pub reference: &'a Tensor,
    /// Query groups attending separately (group DETR); 1 at inference.
    pub groups: i64,
}

impl DecoderLayer {
    fn new(p: &Path, cfg: &ModelConfig) -> Self {
        let d = cfg.hidden_dim;
        DecoderLayer {
            self_attn: MultiheadAttention::new(&p.sub("self_attn"), d, cfg.sa_heads),
            norm1: LayerNorm::new(&p.sub("norm1"), d, LN_EPS),
            cross_attn: DeformAttn::new(&p.sub("cross_attn"), d, cfg.ca_heads, cfg.dec_n_points),
            linear1: Linear::new(
                &p.sub("linear1"),
                d,
                cfg.dim_feedforward,
                WeightInit::XavierDefaultBias,
            ),
            linear2: Linear::new(
                &p.sub("linear2"),
                cfg.dim_feedforward,
                d,
                WeightInit::XavierDefaultBias,
            ),
            norm2: LayerNorm::new(&p.sub("norm2"), d, LN_EPS),
            norm3: LayerNorm::new(&p.sub("norm3"), d, LN_EPS),
        }
    }

    fn forward(&self, tgt: &Tensor, query_pos: &Tensor, input: &DecoderInput<'_>) -> Tensor {
        let (b, q, c) = tgt.size3().expect("[B, Q, C]");
        let g = input.groups;
        // [B, Q, C] -> [G·B, Q/G, C] so that each group attends only to itself.
        let fold = |x: &Tensor| {
            if g > 1 {
                x.view([b, g, q / g, c])
                    .transpose(0, 1)
                    .reshape([g * b, q / g, c])
            } else {
                x.shallow_clone()
            }
        };
        let qk = fold(&(tgt + query_pos));
        let mut sa = self.self_attn.forward(&qk, &qk, &fold(tgt));
        if g > 1 {
            sa = sa.view([g, b, q / g, c]).transpose(0, 1).reshape([b, q, c]);
        }
        let tgt = self.norm1.forward(&(tgt + sa));
        let ca =
            self.cross_attn
                .forward(&(&tgt + query_pos), input.reference, input.memory, input.hw);
        let tgt = self.norm2.forward(&(tgt + ca));
        let ffn = self.linear2.forward(&self.linear1.forward(&tgt).relu());
        self.norm3.forward(&(tgt + ffn))
    }
}

/// The decoder; `forward` returns every layer's normalised output.
#[derive(Debug)]
pub struct Decoder {
    layers: Vec<DecoderLayer>,
    norm: LayerNorm,
    ref_point_head: Mlp,
    dim: i64,
}

/// DAB-DETR's sine embedding of boxes: `dim` features per coordinate, concatenated in the
/// order (y, x, w, h) as the reference's `gen_sineembed_for_position`.
pub fn sine_embed(boxes: &Tensor, dim: i64) -> Tensor {
    let opts = (Kind::Float, boxes.device());
    let i = Tensor::arange(dim, opts);
    let dim_t = Tensor::from(10000.0f64)
        .to_kind(Kind::Float)
        .pow(&((i.floor_divide_scalar(2)) * (2.0 / dim as f64)));
    let embed = |k: i64| {
        let x = boxes.select(-1, k).to_kind(Kind::Float) * (2.0 * PI);
        let x = x.unsqueeze(-1) / &dim_t; // [.., dim]
        let sin = x.slice(-1, 0, None, 2).sin();
        let cos = x.slice(-1, 1, None, 2).cos();
        Tensor::stack(&[sin, cos], -1).flatten(-2, -1)
    };
    Tensor::cat(&[embed(1), embed(0), embed(2), embed(3)], -1).to_kind(boxes.kind())
}

impl Decoder {
    /// Builds `p.layers.{i}`, `p.norm` and `p.ref_point_head`; `p` = `transformer.decoder`.
    pub fn new(p: &Path, cfg: &ModelConfig) -> Self {
        let d = cfg.hidden_dim;
        let lp = p.sub("layers");
        let layers: Vec<DecoderLayer> = (0..cfg.dec_layers)
            .map(|i| DecoderLayer::new(&lp.sub(i), cfg))
            .collect();
        // The reference clones one layer and then re-initialises only the matrices, so every
        // layer starts with the same FFN biases.
        if let Some((first, rest)) = layers.split_first() {
            tch::no_grad(|| {
                for l in rest {
                    l.linear1.bias.shallow_clone().copy_(&first.linear1.bias);
                    l.linear2.bias.shallow_clone().copy_(&first.linear2.bias);
                }
            });
        }
        Decoder {
            layers,
            norm: LayerNorm::new(&p.sub("norm"), d, LN_EPS),
            ref_point_head: Mlp::new(
                &p.sub("ref_point_head"),
                (2 * d, d, d),
                2,
                &[WeightInit::XavierDefaultBias],
            ),
            dim: d,
        }
    }

    /// `tgt` [B, Q, C] query features; returns [L, B, Q, C], each layer's output after the
    /// final norm (the reference's `return_intermediate`).
    pub fn forward(&self, tgt: &Tensor, input: &DecoderInput<'_>) -> Tensor {
        let query_pos = self
            .ref_point_head
            .forward(&sine_embed(input.reference, self.dim / 2));
        let mut out = tgt.shallow_clone();
        let mut hs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            out = layer.forward(&out, &query_pos, input);
            hs.push(self.norm.forward(&out));
        }
        Tensor::stack(&hs, 0)
    }
}
