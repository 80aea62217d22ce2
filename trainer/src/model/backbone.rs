//! The windowed DINOv2-style ViT encoder (`backbone.0.encoder.encoder.*`): patch embedding
//! with a bicubic-interpolated learned positional grid, `num_windows²` windows each with its
//! own CLS copy, global attention at the layers named by `out_feature_indexes`, and the
//! LayerNormed hidden states of those stages as stride-`patch` feature maps.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::error::ModelError;
use super::layers::{Conv2d, ConvSpec, LayerNorm, Linear, WeightInit};

/// DINOv2's initializer_range: trunc-normal std of every backbone weight.
const INIT_STD: f64 = 0.02;
/// DINOv2's layer_norm_eps.
const LN_EPS: f64 = 1e-6;

/// `embeddings.*`: CLS token, (unused) mask token, positional grid and patch projection.
#[derive(Debug)]
struct Embeddings {
    cls_token: Tensor,
    /// Kept for name parity: the reference has it (trainable, counted) but never uses it
    /// outside masked-image pretraining.
    _mask_token: Tensor,
    position_embeddings: Tensor,
    projection: Conv2d,
}

/// One pre-norm ViT block (`encoder.layer.{i}.*`).
#[derive(Debug)]
struct VitLayer {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    layer_scale1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_scale2: Tensor,
    heads: i64,
}

/// The encoder; `forward` returns one NCHW map per output stage.
#[derive(Debug)]
pub struct Backbone {
    embeddings: Embeddings,
    layers: Vec<VitLayer>,
    layernorm: LayerNorm,
    cfg: ModelConfig,
}

impl VitLayer {
    fn new(p: &Path, width: i64, heads: i64, mlp_ratio: i64) -> Self {
        let init = WeightInit::Normal(INIT_STD);
        let att = p.sub("attention");
        let hidden = width * mlp_ratio;
        VitLayer {
            norm1: LayerNorm::new(&p.sub("norm1"), width, LN_EPS),
            query: Linear::new(&att.sub("attention").sub("query"), width, width, init),
            key: Linear::new(&att.sub("attention").sub("key"), width, width, init),
            value: Linear::new(&att.sub("attention").sub("value"), width, width, init),
            dense: Linear::new(&att.sub("output").sub("dense"), width, width, init),
            layer_scale1: p
                .sub("layer_scale1")
                .var("lambda1", &[width], Init::Const(1.0)),
            norm2: LayerNorm::new(&p.sub("norm2"), width, LN_EPS),
            fc1: Linear::new(&p.sub("mlp").sub("fc1"), width, hidden, init),
            fc2: Linear::new(&p.sub("mlp").sub("fc2"), hidden, width, init),
            layer_scale2: p
                .sub("layer_scale2")
                .var("lambda1", &[width], Init::Const(1.0)),
            heads,
        }
    }

    fn attention(&self, x: &Tensor) -> Tensor {
        let (b, t, c) = x.size3().expect("tokens are [B, T, C]");
        let split = |lin: &Linear| {
            lin.forward(x)
                .view([b, t, self.heads, c / self.heads])
                .permute([0, 2, 1, 3])
        };
        let (q, k, v) = (split(&self.query), split(&self.key), split(&self.value));
        let out = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, false, None, false,
        );
        self.dense
            .forward(&out.permute([0, 2, 1, 3]).reshape([b, t, c]))
    }

    /// `x` is [B·windows, T, C]; a global layer lets all windows of an image attend to each
    /// other by folding them into one sequence.
    fn forward(&self, x: &Tensor, global: bool, windows: i64) -> Tensor {
        let (bw, t, c) = x.size3().expect("tokens are [B, T, C]");
        let mut h = self.norm1.forward(x);
        if global {
            h = h.reshape([bw / windows, windows * t, c]);
        }
        let mut a = self.attention(&h);
        if global {
            a = a.reshape([bw, t, c]);
        }
        let x = x + a * &self.layer_scale1;
        let m = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&x)).gelu("none"));
        &x + m * &self.layer_scale2
    }
}

impl Backbone {
    /// Builds `p.embeddings`, `p.encoder.layer.{i}` and `p.layernorm`
    /// (`p` = `backbone.0.encoder.encoder`).
    pub fn new(p: &Path, cfg: &ModelConfig) -> Self {
        let w = cfg.vit_width;
        let e = p.sub("embeddings");
        let grid = cfg.positional_encoding_size;
        let normal = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let embeddings = Embeddings {
            cls_token: e.var("cls_token", &[1, 1, w], normal),
            _mask_token: e.var("mask_token", &[1, w], Init::Const(0.0)),
            position_embeddings: e.var("position_embeddings", &[1, grid * grid + 1, w], normal),
            projection: Conv2d::new(
                &e.sub("patch_embeddings").sub("projection"),
                ConvSpec {
                    in_dim: 3,
                    out_dim: w,
                    kernel: cfg.patch_size,
                    stride: cfg.patch_size,
                    padding: 0,
                    groups: 1,
                    bias: true,
                },
                WeightInit::Normal(INIT_STD),
            ),
        };
        let lp = p.sub("encoder").sub("layer");
        let layers = (0..cfg.vit_layers)
            .map(|i| VitLayer::new(&lp.sub(i), w, cfg.vit_heads, cfg.vit_mlp_ratio))
            .collect();
        Backbone {
            embeddings,
            layers,
            layernorm: LayerNorm::new(&p.sub("layernorm"), w, LN_EPS),
            cfg: cfg.clone(),
        }
    }

    /// The positional grid for an `h`×`w` token grid: the stored one when it fits (square),
    /// else bicubic-resized with antialiasing as the reference does (`antialias=True`, which
    /// uses PIL's cubic kernel a = -0.5).
    fn positions(&self, h: i64, w: i64) -> Tensor {
        let pos = &self.embeddings.position_embeddings;
        let n = pos.size()[1] - 1;
        if n == h * w && h == w {
            return pos.shallow_clone();
        }
        let s = self.cfg.positional_encoding_size;
        let c = self.cfg.vit_width;
        let cls = pos.narrow(1, 0, 1);
        let grid = pos
            .narrow(1, 1, n)
            .reshape([1, s, s, c])
            .permute([0, 3, 1, 2]);
        let grid = grid
            .to_kind(Kind::Float)
            .internal_upsample_bicubic2d_aa([h, w], false, None, None)
            .to_kind(pos.kind());
        Tensor::cat(&[cls, grid.permute([0, 2, 3, 1]).reshape([1, h * w, c])], 1)
    }

    /// Maps [B, 3, H, W] images to one [B, vit_width, H/patch, W/patch] map per output stage.
    pub fn forward(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        let size = images.size();
        let block = self.cfg.block_size();
        if size.len() != 4
            || size[1] != 3
            || size[2] % block != 0
            || size[3] % block != 0
            || size[2] == 0
            || size[3] == 0
        {
            return Err(ModelError::InvalidInput(format!(
                "images must be [B, 3, H, W] with H and W positive multiples of {block} (patch × windows), got {size:?}"
            )));
        }
        let (b, ps, nw) = (size[0], self.cfg.patch_size, self.cfg.num_windows);
        let (h, w) = (size[2] / ps, size[3] / ps);
        let c = self.cfg.vit_width;
        let patches = self
            .embeddings
            .projection
            .forward(images)
            .flatten(2, 3)
            .transpose(1, 2);
        let cls = self.embeddings.cls_token.expand([b, 1, c], false);
        let mut x = Tensor::cat(&[cls, patches], 1) + self.positions(h, w);
        let (hw, ww) = (h / nw, w / nw);
        if nw > 1 {
            let cls = x.narrow(1, 0, 1);
            let pix = x
                .narrow(1, 1, h * w)
                .reshape([b * nw, hw, nw, ww, c])
                .permute([0, 2, 1, 3, 4])
                .reshape([b * nw * nw, hw * ww, c]);
            x = Tensor::cat(&[cls.repeat([nw * nw, 1, 1]), pix], 1);
        }
        let last = *self.cfg.out_feature_indexes.last().unwrap_or(&0);
        let mut states = Vec::with_capacity(self.cfg.out_feature_indexes.len());
        if self.cfg.out_feature_indexes.contains(&0) {
            states.push(x.shallow_clone());
        }
        for (i, layer) in self.layers.iter().enumerate().take(last as usize) {
            let i = i as i64;
            x = layer.forward(&x, !self.cfg.is_windowed_layer(i), nw * nw);
            if self.cfg.out_feature_indexes.contains(&(i + 1)) {
                states.push(x.shallow_clone());
            }
        }
        Ok(states
            .iter()
            .map(|s| {
                let s = self.layernorm.forward(s);
                let t = s.size()[1];
                let tokens = s.narrow(1, 1, t - 1);
                let grid = if nw > 1 {
                    tokens
                        .reshape([b * nw, nw, hw, ww, c])
                        .permute([0, 2, 1, 3, 4])
                        .reshape([b, h, w, c])
                } else {
                    tokens.reshape([b, h, w, c])
                };
                grid.permute([0, 3, 1, 2]).contiguous()
            })
            .collect())
    }
}
