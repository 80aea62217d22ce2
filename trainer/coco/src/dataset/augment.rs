//! The augmentation pipelines of RF-DETR-Seg (spec §2; `make_coco_transforms_square_div_64`):
//! random flip, then either a square resize or resize → random crop → square resize, for
//! training; a plain square resize for validation and test.

use super::raw::RawSample;
use super::transform::{hflip, random_size_crop, resize_shorter_side, square_resize};
use crate::synth::rng::Rng;

/// The training pipeline's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainAugment {
    /// Probability of the horizontal flip (0.5).
    pub flip_probability: f64,
    /// Probability of the direct square resize, else resize → crop → square resize (0.5).
    pub direct_probability: f64,
    /// Shorter-side sizes of the intermediate resize ({400, 500, 600}).
    pub resize_sizes: Vec<usize>,
    /// Crop side range (384..=600).
    pub crop_min: usize,
    /// See `crop_min`.
    pub crop_max: usize,
    /// Square sizes drawn from at the end: the largest multi-scale scale, or the resolution.
    pub square_sizes: Vec<usize>,
}

impl TrainAugment {
    /// The reference's training pipeline for a model of `resolution`, `patch` and `windows`:
    /// with multi-scale on, the square resize goes to the largest scale (the per-batch resize
    /// then picks a scale); otherwise to `resolution`.
    pub fn rfdetr(resolution: usize, patch: usize, windows: usize, multi_scale: bool) -> Self {
        let square = if multi_scale {
            multi_scale_scales(resolution, patch, windows, true)
                .last()
                .copied()
                .unwrap_or(resolution)
        } else {
            resolution
        };
        TrainAugment {
            flip_probability: 0.5,
            direct_probability: 0.5,
            resize_sizes: vec![400, 500, 600],
            crop_min: 384,
            crop_max: 600,
            square_sizes: vec![square],
        }
    }
}

/// How a split's samples are transformed.
#[derive(Debug, Clone, PartialEq)]
pub enum Augment {
    /// Random training augmentation.
    Train(TrainAugment),
    /// Validation and test: square resize to the resolution, nothing random.
    Eval {
        /// The model's input side.
        resolution: usize,
    },
}

impl Augment {
    /// Transforms one sample with its own random stream.
    pub(crate) fn apply(&self, s: RawSample, rng: &mut Rng) -> RawSample {
        match self {
            Augment::Eval { resolution } => square_resize(s, *resolution),
            Augment::Train(t) => {
                let s = if rng.chance(t.flip_probability) {
                    hflip(s)
                } else {
                    s
                };
                if rng.chance(t.direct_probability) {
                    let size = pick(&t.square_sizes, rng);
                    square_resize(s, size)
                } else {
                    let s = resize_shorter_side(s, pick(&t.resize_sizes, rng), None);
                    let s = random_size_crop(s, t.crop_min, t.crop_max, rng);
                    let size = pick(&t.square_sizes, rng);
                    square_resize(s, size)
                }
            }
        }
    }
}

/// The per-batch training scales: `(resolution / (patch * windows) + k) * patch * windows` for
/// k in -5..=5 (`expanded`, RF-DETR-Seg) or -3..=4, keeping those of at least two windows of
/// patches.
pub fn multi_scale_scales(
    resolution: usize,
    patch: usize,
    windows: usize,
    expanded: bool,
) -> Vec<usize> {
    let step = (patch * windows).max(1) as i64;
    let base = resolution as i64 / step;
    let offsets: Vec<i64> = if expanded {
        (-5..=5).collect()
    } else {
        (-3..=4).collect()
    };
    offsets
        .into_iter()
        .map(|k| (base + k) * step)
        .filter(|s| *s >= step * 2)
        .map(|s| s as usize)
        .collect()
}

fn pick(sizes: &[usize], rng: &mut Rng) -> usize {
    sizes[rng.int(0, sizes.len().saturating_sub(1) as u32) as usize]
}
