//! Single-level multi-scale deformable attention (`MSDeformAttn` with `n_levels = 1`), on
//! libtorch's `grid_sampler` as the reference's pure-PyTorch path: each query samples
//! `n_points` locations per head around its reference box and mixes them with softmaxed
//! weights.

use std::f64::consts::PI;

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::layers::{Linear, WeightInit};

/// `cross_attn.*` of a decoder layer.
#[derive(Debug)]
pub struct DeformAttn {
    sampling_offsets: Linear,
    attention_weights: Linear,
    value_proj: Linear,
    output_proj: Linear,
    heads: i64,
    points: i64,
}

impl DeformAttn {
    /// Builds `p.{sampling_offsets,attention_weights,value_proj,output_proj}`, initialised
    /// as the reference: zero offset weights with a bias fanning the points out on a circle,
    /// zero attention weights (uniform mixing), Xavier projections.
    pub fn new(p: &Path, dim: i64, heads: i64, points: i64) -> Self {
        let levels = 1;
        let sampling_offsets = Linear::new(
            &p.sub("sampling_offsets"),
            dim,
            heads * levels * points * 2,
            WeightInit::Zeros,
        );
        tch::no_grad(|| {
            let thetas =
                Tensor::arange(heads, (Kind::Float, p.device())) * (2.0 * PI / heads as f64);
            let grid = Tensor::stack(&[thetas.cos(), thetas.sin()], -1);
            let grid = &grid / grid.abs().amax([-1], true);
            let scale = Tensor::arange_start(1, points + 1, (Kind::Float, p.device()))
                .view([1, 1, points, 1]);
            let grid = grid.view([heads, 1, 1, 2]).repeat([1, levels, points, 1]) * scale;
            sampling_offsets
                .bias
                .shallow_clone()
                .copy_(&grid.view([-1]));
        });
        DeformAttn {
            sampling_offsets,
            attention_weights: Linear::new(
                &p.sub("attention_weights"),
                dim,
                heads * levels * points,
                WeightInit::Zeros,
            ),
            value_proj: Linear::new(&p.sub("value_proj"), dim, dim, WeightInit::XavierZeroBias),
            output_proj: Linear::new(&p.sub("output_proj"), dim, dim, WeightInit::XavierZeroBias),
            heads,
            points,
        }
    }

    /// `query` [B, Q, C]; `reference` [B, Q, 4] boxes (cx, cy, w, h) in [0, 1];
    /// `value` [B, H·W, C] with `(h, w)` its grid. Returns [B, Q, C].
    pub fn forward(
        &self,
        query: &Tensor,
        reference: &Tensor,
        value: &Tensor,
        hw: (i64, i64),
    ) -> Tensor {
        let (b, q, c) = query.size3().expect("query is [B, Q, C]");
        let (nh, np) = (self.heads, self.points);
        let hd = c / nh;
        let (h, w) = hw;
        let v = self.value_proj.forward(value); // [B, HW, C]
        let offsets = self.sampling_offsets.forward(query).view([b, q, nh, np, 2]);
        let weights = self
            .attention_weights
            .forward(query)
            .view([b, q, nh, np])
            .softmax(-1, Kind::Float);
        let centre = reference.narrow(-1, 0, 2).view([b, q, 1, 1, 2]);
        let size = reference.narrow(-1, 2, 2).view([b, q, 1, 1, 2]);
        let locations = centre + offsets / np as f64 * size * 0.5; // [B, Q, nh, np, 2]
        let grid = (locations * 2.0 - 1.0)
            .permute([0, 2, 1, 3, 4])
            .reshape([b * nh, q, np, 2]);
        let v = v.transpose(1, 2).reshape([b * nh, hd, h, w]);
        // mode 0 = bilinear, padding 0 = zeros, align_corners = false (as F.grid_sample).
        let sampled = v.grid_sampler(&grid.to_kind(v.kind()), 0, 0, false); // [B·nh, hd, Q, np]
        let weights = weights
            .permute([0, 2, 1, 3])
            .reshape([b * nh, 1, q, np])
            .to_kind(sampled.kind());
        let out = (sampled * weights)
            .sum_dim_intlist([-1i64].as_slice(), false, None)
            .view([b, c, q])
            .transpose(1, 2);
        self.output_proj.forward(&out)
    }
}
