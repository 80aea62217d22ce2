//! Helpers shared by the trainer's integration tests (each test file includes this module).

use flow_trainer::train::targets::ImageTargets;
use tch::Tensor;

/// Targets for a batch of `images` images of the tiny model's 96×120 input: one object of
/// class 1 each, a 12×12 square mask at 1/4 resolution; image i's box centre moves right by
/// `shift` × i, so that images differ when asked to.
pub fn square_targets(images: usize, shift: f32) -> Vec<ImageTargets> {
    let mut m = vec![0.0f32; 24 * 30];
    for y in 6..18 {
        for x in 8..20 {
            m[y * 30 + x] = 1.0;
        }
    }
    (0..images)
        .map(|i| ImageTargets {
            labels: Tensor::from_slice(&[1i64]),
            boxes: Tensor::from_slice(&[0.45f32 + shift * i as f32, 0.5, 0.4, 0.5]).view([1, 4]),
            masks: Tensor::from_slice(&m).view([1, 24, 30]),
            len: 1,
        })
        .collect()
}
