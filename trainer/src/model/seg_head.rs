//! The segmentation head (`segmentation_head.*`): the projector map resized to input/4 runs
//! through one depthwise block per decoder layer (cumulatively); each layer's queries go
//! through a shared MLP block; a mask logit is the dot product of a pixel feature and a query
//! feature plus a scalar bias.
//!
//! The head returns its two factors ([`MaskLogits`]) rather than the dense product: training
//! needs only the matched queries' masks (the reference's `sparse_forward`), inference only
//! the selected ones, and [`MaskLogits::dense`] gives the full [B, Q, H/4, W/4] when wanted.

use tch::Tensor;
use tch::nn::{Init, Path};

use super::config::ModelConfig;
use super::layers::{Conv2d, ConvSpec, LayerNorm, Linear, WeightInit};

/// Both factors in one dtype (fp32 when they differ): under CUDA autocast the einsum's inner
/// `bmm` refuses a bf16 and an fp32 operand (autocast does not cover `einsum`), and the two
/// factors come from layers autocast treats differently (convolutions vs LayerNorm).
fn same_kind(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    if a.kind() == b.kind() {
        (a.shallow_clone(), b.shallow_clone())
    } else {
        (a.to_kind(tch::Kind::Float), b.to_kind(tch::Kind::Float))
    }
}

/// Mask logits of one output, factorised: `logit[b, q, y, x] = Σ_c spatial[b, c, y, x] ·
/// queries[b, q, c] + bias`.
#[derive(Debug)]
pub struct MaskLogits {
    /// Pixel features: [B, C, H/4, W/4].
    pub spatial: Tensor,
    /// Query features: [B, Q, C].
    pub queries: Tensor,
    /// Scalar bias: [1].
    pub bias: Tensor,
}

impl MaskLogits {
    /// All mask logits: [B, Q, H/4, W/4].
    pub fn dense(&self) -> Tensor {
        let (spatial, queries) = same_kind(&self.spatial, &self.queries);
        Tensor::einsum("bchw,bnc->bnhw", &[&spatial, &queries], None::<i64>) + &self.bias
    }

    /// The logits of the queries `query_idx` of image `batch_idx`: [K, H/4, W/4].
    pub fn select(&self, batch_idx: i64, query_idx: &Tensor) -> Tensor {
        let q = self.queries.get(batch_idx).index_select(0, query_idx); // [K, C]
        let (spatial, q) = same_kind(&self.spatial.get(batch_idx), &q);
        Tensor::einsum("chw,kc->khw", &[&spatial, &q], None::<i64>) + &self.bias
    }

    /// The mask logits' shape [B, Q, H/4, W/4] without computing them.
    pub fn shape(&self) -> [i64; 4] {
        let s = self.spatial.size();
        let q = self.queries.size();
        [q[0], q[1], s[2], s[3]]
    }
}

/// Simplified ConvNeXt block: depthwise 3×3 → LayerNorm → Linear → GELU, residual.
#[derive(Debug)]
struct DepthwiseBlock {
    dwconv: Conv2d,
    norm: LayerNorm,
    pwconv1: Linear,
}

impl DepthwiseBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.dwconv.forward(x).permute([0, 2, 3, 1]);
        let y = self.pwconv1.forward(&self.norm.forward(&y)).gelu("none");
        y.permute([0, 3, 1, 2]) + x
    }
}

/// LayerNorm → Linear(C, 4C) → GELU → Linear(4C, C), residual (`query_features_block`).
#[derive(Debug)]
struct MlpBlock {
    norm_in: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl MlpBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2
            .forward(&self.fc1.forward(&self.norm_in.forward(x)).gelu("none"))
            + x
    }
}

/// The head.
#[derive(Debug)]
pub struct SegHead {
    blocks: Vec<DepthwiseBlock>,
    spatial_features_proj: Conv2d,
    query_features_block: MlpBlock,
    query_features_proj: Linear,
    bias: Tensor,
    downsample: i64,
}

impl SegHead {
    /// Builds `p.blocks.{i}`, `p.spatial_features_proj`, `p.query_features_block`,
    /// `p.query_features_proj` and `p.bias`; `p` = `segmentation_head`.
    pub fn new(p: &Path, cfg: &ModelConfig) -> Self {
        let d = cfg.hidden_dim;
        let bp = p.sub("blocks");
        let blocks = (0..cfg.dec_layers)
            .map(|i| {
                let q = bp.sub(i);
                DepthwiseBlock {
                    dwconv: Conv2d::new(
                        &q.sub("dwconv"),
                        ConvSpec {
                            in_dim: d,
                            out_dim: d,
                            kernel: 3,
                            stride: 1,
                            padding: 1,
                            groups: d,
                            bias: true,
                        },
                        WeightInit::TorchDefault,
                    ),
                    norm: LayerNorm::new(&q.sub("norm"), d, 1e-6),
                    pwconv1: Linear::new(&q.sub("pwconv1"), d, d, WeightInit::TorchDefault),
                }
            })
            .collect();
        let qb = p.sub("query_features_block");
        SegHead {
            blocks,
            spatial_features_proj: Conv2d::new(
                &p.sub("spatial_features_proj"),
                ConvSpec {
                    in_dim: d,
                    out_dim: d,
                    kernel: 1,
                    stride: 1,
                    padding: 0,
                    groups: 1,
                    bias: true,
                },
                WeightInit::TorchDefault,
            ),
            query_features_block: MlpBlock {
                norm_in: LayerNorm::new(&qb.sub("norm_in"), d, 1e-5),
                fc1: Linear::new(&qb.sub("layers").sub(0), d, 4 * d, WeightInit::TorchDefault),
                fc2: Linear::new(&qb.sub("layers").sub(2), 4 * d, d, WeightInit::TorchDefault),
            },
            query_features_proj: Linear::new(
                &p.sub("query_features_proj"),
                d,
                d,
                WeightInit::TorchDefault,
            ),
            bias: p.var("bias", &[1], Init::Const(0.0)),
            downsample: cfg.mask_downsample_ratio,
        }
    }

    fn resize(&self, features: &Tensor, image_hw: (i64, i64)) -> Tensor {
        let size = [image_hw.0 / self.downsample, image_hw.1 / self.downsample];
        features.upsample_bilinear2d(size, false, None, None)
    }

    /// Mask logits for every decoder layer: `features` [B, C, h, w] the projector map,
    /// `hs` [L, B, Q, C] the decoder outputs, `image_hw` the input size.
    pub fn forward(&self, features: &Tensor, hs: &Tensor, image_hw: (i64, i64)) -> Vec<MaskLogits> {
        let mut spatial = self.resize(features, image_hw);
        let layers = hs.size()[0];
        self.blocks
            .iter()
            .zip(0..layers)
            .map(|(block, l)| {
                spatial = block.forward(&spatial);
                MaskLogits {
                    spatial: self.spatial_features_proj.forward(&spatial),
                    queries: self
                        .query_features_proj
                        .forward(&self.query_features_block.forward(&hs.get(l))),
                    bias: self.bias.shallow_clone(),
                }
            })
            .collect()
    }

    /// Mask logits of the two-stage proposals: the blocks and the pixel projection are
    /// skipped, as in the reference (`skip_blocks=True`).
    pub fn forward_encoder(
        &self,
        features: &Tensor,
        queries: &Tensor,
        image_hw: (i64, i64),
    ) -> MaskLogits {
        MaskLogits {
            spatial: self.resize(features, image_hw),
            queries: self
                .query_features_proj
                .forward(&self.query_features_block.forward(queries)),
            bias: self.bias.shallow_clone(),
        }
    }
}
