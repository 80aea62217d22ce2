//! Point sampling of masks (the reference's PointRend helpers in `models/segmentation.py`):
//! mask losses and mask matching costs are computed at sampled points instead of every pixel.

use tch::{Device, Kind, Tensor};

/// Bilinear values of `input` [N, C, H, W] at normalised points `coords` [N, P, 2] ((x, y) in
/// [0, 1], pixel centres at (i + 0.5) / size): [N, C, P]. `grid_sample` with
/// `align_corners = false` and zero padding, as the reference's `point_sample`.
pub fn point_sample(input: &Tensor, coords: &Tensor) -> Tensor {
    let grid = (coords * 2.0 - 1.0).unsqueeze(2); // [N, P, 1, 2]
    input.grid_sampler(&grid, 0, 0, false).squeeze_dim(3)
}

/// The PointRend training points of mask logits `logits` [N, 1, H, W]: `3 · num_points`
/// uniform candidates, the `0.75 · num_points` most uncertain of them (smallest |logit|), and
/// the rest uniform. [N, num_points, 2]. Random numbers come from torch's generator.
pub fn uncertain_points(logits: &Tensor, num_points: i64) -> Tensor {
    let n = logits.size()[0];
    let device = logits.device();
    let oversample = 3;
    let sampled = num_points * oversample;
    let candidates = Tensor::rand([n, sampled, 2], (Kind::Float, device));
    let values = point_sample(logits, &candidates); // [N, 1, S]
    let uncertainty = -values.abs().squeeze_dim(1); // [N, S]
    let num_uncertain = (0.75 * num_points as f64) as i64;
    let num_random = num_points - num_uncertain;
    let (_, idx) = uncertainty.topk(num_uncertain, 1, true, false);
    let picked = candidates.gather(
        1,
        &idx.unsqueeze(-1).expand([n, num_uncertain, 2], false),
        false,
    );
    if num_random > 0 {
        let random = Tensor::rand([n, num_random, 2], (Kind::Float, device));
        Tensor::cat(&[picked, random], 1)
    } else {
        picked
    }
}

/// Points per mask of the losses and of the matcher's shared points, from the mask grid
/// `h × w` (spec §5: max(H, H·W/16) for the loss, H·W/16 for the matcher).
pub fn loss_points(h: i64, w: i64) -> i64 {
    h.max(h * w / 16)
}

/// The matcher's shared points per output: H·W/16 (at least one).
pub fn matcher_points(h: i64, w: i64) -> i64 {
    (h * w / 16).max(1)
}

/// Uniform points [1, P, 2] shared by every prediction and target of a matching.
pub fn shared_points(p: i64, device: Device) -> Tensor {
    Tensor::rand([1, p, 2], (Kind::Float, device))
}
