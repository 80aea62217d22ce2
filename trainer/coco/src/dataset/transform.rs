//! The geometric transforms of the reference (`datasets/transforms.py`) applied to an image and
//! its boxes and masks together, so that targets always describe the pixels they sit on.

use image::imageops::{self, FilterType};

use super::raw::RawSample;
use crate::synth::rng::Rng;

/// Mirrors the sample left to right.
pub fn hflip(mut s: RawSample) -> RawSample {
    let w = s.width() as f32;
    s.image = imageops::flip_horizontal(&s.image);
    for b in &mut s.boxes {
        *b = [w - b[2], b[1], w - b[0], b[3]];
    }
    for m in &mut s.masks {
        *m = m.hflip();
    }
    s
}

/// Resizes to `height` x `width`: the image with a bilinear (triangle) filter, the boxes and
/// areas by the ratios, the masks by nearest neighbour.
pub fn resize(mut s: RawSample, height: usize, width: usize) -> RawSample {
    let (h, w) = (s.height(), s.width());
    if (h, w) == (height, width) {
        return s;
    }
    let (rw, rh) = (width as f32 / w as f32, height as f32 / h as f32);
    s.image = imageops::resize(&s.image, width as u32, height as u32, FilterType::Triangle);
    for b in &mut s.boxes {
        *b = [b[0] * rw, b[1] * rh, b[2] * rw, b[3] * rh];
    }
    for a in &mut s.areas {
        *a *= rw * rh;
    }
    for m in &mut s.masks {
        *m = m.resize_nearest(height, width);
    }
    s
}

/// The reference's `RandomResize` step for one drawn `size`: the shorter side becomes `size`
/// (the longer one capped at `max_size` when given), keeping the aspect ratio.
pub fn resize_shorter_side(s: RawSample, size: usize, max_size: Option<usize>) -> RawSample {
    let (h, w) = (s.height() as f64, s.width() as f64);
    let mut size = size as f64;
    if let Some(max) = max_size {
        let (lo, hi) = (h.min(w), h.max(w));
        if hi / lo * size > max as f64 {
            size = (max as f64 * lo / hi).round();
        }
    }
    let (oh, ow) = if (w <= h && w == size) || (h <= w && h == size) {
        (h, w)
    } else if w < h {
        (size * h / w, size)
    } else {
        (size, size * w / h)
    };
    resize(s, oh as usize, ow as usize)
}

/// Resizes to a `size` x `size` square, ignoring the aspect ratio (`SquareResize`).
pub fn square_resize(s: RawSample, size: usize) -> RawSample {
    resize(s, size, size)
}

/// Cuts the `height` x `width` window at `(top, left)`: boxes are shifted and clipped to it,
/// instances whose box vanishes are dropped, areas become the clipped box areas (as the
/// reference's `crop` does).
pub fn crop(mut s: RawSample, top: usize, left: usize, height: usize, width: usize) -> RawSample {
    s.image = imageops::crop_imm(
        &s.image,
        left as u32,
        top as u32,
        width as u32,
        height as u32,
    )
    .to_image();
    let (l, t, wf, hf) = (left as f32, top as f32, width as f32, height as f32);
    for (b, a) in s.boxes.iter_mut().zip(&mut s.areas) {
        *b = [
            (b[0] - l).clamp(0.0, wf),
            (b[1] - t).clamp(0.0, hf),
            (b[2] - l).clamp(0.0, wf),
            (b[3] - t).clamp(0.0, hf),
        ];
        *a = (b[2] - b[0]) * (b[3] - b[1]);
    }
    for m in &mut s.masks {
        *m = m.crop(top, left, height, width);
    }
    let keep: Vec<bool> = s.boxes.iter().map(|b| b[2] > b[0] && b[3] > b[1]).collect();
    s.retain(&keep);
    s
}

/// The reference's `RandomSizeCrop(min, max)`: a window of random width and height in
/// `[min, min(side, max)]` at a random position (a side shorter than `min` is kept whole).
pub(crate) fn random_size_crop(s: RawSample, min: usize, max: usize, rng: &mut Rng) -> RawSample {
    let (h, w) = (s.height(), s.width());
    let cw = rng.int(min.min(w) as u32, w.min(max) as u32) as usize;
    let ch = rng.int(min.min(h) as u32, h.min(max) as u32) as usize;
    let top = rng.int(0, (h - ch) as u32) as usize;
    let left = rng.int(0, (w - cw) as u32) as usize;
    crop(s, top, left, ch, cw)
}
