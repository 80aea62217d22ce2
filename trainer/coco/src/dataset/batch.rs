//! A batch: images padded to a common size (as the reference's `NestedTensor`), their targets,
//! and the per-batch multi-scale resize.

use super::bitmap::{Bitmap, nearest};
use super::sample::Sample;

/// The targets of one image of a batch.
#[derive(Debug, Clone)]
pub struct Target {
    /// Boxes `[cx, cy, w, h]` normalised by the image's own (unpadded) size.
    pub boxes: Vec<[f32; 4]>,
    /// Category ids, raw.
    pub labels: Vec<i64>,
    /// Instance masks at the sample's size before any per-batch resize (the reference
    /// samples them at normalised points, so their resolution need not match).
    pub masks: Vec<Bitmap>,
    /// Areas in pixels of the transformed image.
    pub areas: Vec<f32>,
    /// The image id in the annotation file.
    pub image_id: i64,
    /// `[height, width]` of the image as stored.
    pub orig_size: [usize; 2],
    /// `[height, width]` of the transformed image, before padding.
    pub size: [usize; 2],
}

/// Images and targets of one step.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `len * 3 * height * width` floats: normalised images, zero-padded at the bottom and
    /// right to the largest one.
    pub images: Vec<f32>,
    /// Rows of every image of the batch.
    pub height: usize,
    /// Columns of every image of the batch.
    pub width: usize,
    /// `len * height * width` bytes, 1 where a pixel is padding.
    pub padding: Vec<u8>,
    /// One per image.
    pub targets: Vec<Target>,
}

impl Batch {
    /// Stacks samples, padding them to the largest height and width.
    pub fn collate(samples: Vec<Sample>) -> Batch {
        let height = samples.iter().map(|s| s.height).max().unwrap_or(0);
        let width = samples.iter().map(|s| s.width).max().unwrap_or(0);
        let plane = height * width;
        let mut images = vec![0f32; samples.len() * 3 * plane];
        let mut padding = vec![1u8; samples.len() * plane];
        let mut targets = Vec::with_capacity(samples.len());
        for (b, s) in samples.into_iter().enumerate() {
            for c in 0..3 {
                for y in 0..s.height {
                    let src = c * s.height * s.width + y * s.width;
                    let dst = (b * 3 + c) * plane + y * width;
                    images[dst..dst + s.width].copy_from_slice(&s.image[src..src + s.width]);
                }
            }
            for y in 0..s.height {
                let dst = b * plane + y * width;
                padding[dst..dst + s.width].fill(0);
            }
            targets.push(Target {
                boxes: s.boxes,
                labels: s.labels,
                masks: s.masks,
                areas: s.areas,
                image_id: s.image_id,
                orig_size: s.orig_size,
                size: [s.height, s.width],
            });
        }
        Batch {
            images,
            height,
            width,
            padding,
            targets,
        }
    }

    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True for a batch of no image.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The per-batch multi-scale step: images resized to `size` x `size` bilinearly (torch's
    /// `interpolate(mode="bilinear", align_corners=False)`), the padding mask by nearest
    /// neighbour. Boxes are normalised and stay valid; masks are left as they are.
    pub fn resize(&mut self, size: usize) {
        if (self.height, self.width) == (size, size) {
            return;
        }
        let (h, w) = (self.height, self.width);
        let ys: Vec<(usize, usize, f32)> = (0..size).map(|o| linear(o, h, size)).collect();
        let xs: Vec<(usize, usize, f32)> = (0..size).map(|o| linear(o, w, size)).collect();
        let planes = self.images.len() / (h * w).max(1);
        let mut images = Vec::with_capacity(planes * size * size);
        for p in 0..planes {
            let src = &self.images[p * h * w..(p + 1) * h * w];
            for &(y0, y1, fy) in &ys {
                for &(x0, x1, fx) in &xs {
                    let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
                    let bottom = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
                    images.push(top * (1.0 - fy) + bottom * fy);
                }
            }
        }
        let mut padding = Vec::with_capacity(self.len() * size * size);
        for b in 0..self.len() {
            for y in 0..size {
                let row = b * h * w + nearest(y, h, size) * w;
                padding.extend((0..size).map(|x| self.padding[row + nearest(x, w, size)]));
            }
        }
        self.images = images;
        self.padding = padding;
        self.height = size;
        self.width = size;
    }
}

/// The two source indices and the weight of the second for output index `o` of a bilinear
/// resize from `input` to `output` samples with half-pixel centres.
fn linear(o: usize, input: usize, output: usize) -> (usize, usize, f32) {
    let scale = input as f32 / output as f32;
    let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(input - 1);
    let i1 = (i0 + 1).min(input - 1);
    (i0, i1, src - i0 as f32)
}
