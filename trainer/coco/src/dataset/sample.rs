//! A training sample in the form the model takes: a normalised CHW float image and targets
//! with boxes as normalised (cx, cy, w, h), as the reference's `Normalize` leaves them.

use super::bitmap::Bitmap;
use super::raw::RawSample;

/// ImageNet mean of the RGB channels (the reference's normalisation).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation of the RGB channels.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One image ready for the model, with its targets.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `3 * height * width` floats, channel-major: `(pixel / 255 - mean) / std`.
    pub image: Vec<f32>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Boxes `[cx, cy, w, h]` divided by the image width and height.
    pub boxes: Vec<[f32; 4]>,
    /// Category ids, raw.
    pub labels: Vec<i64>,
    /// Instance masks at `height` x `width`.
    pub masks: Vec<Bitmap>,
    /// Areas in pixels of this (transformed) image.
    pub areas: Vec<f32>,
    /// The image id in the annotation file.
    pub image_id: i64,
    /// `[height, width]` of the image as stored.
    pub orig_size: [usize; 2],
}

impl Sample {
    /// Normalises a transformed sample.
    pub fn from_raw(raw: RawSample) -> Sample {
        let (h, w) = (raw.height(), raw.width());
        let mut image = vec![0f32; 3 * h * w];
        for (i, px) in raw.image.pixels().enumerate() {
            for c in 0..3 {
                image[c * h * w + i] =
                    (f32::from(px.0[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
        let (wf, hf) = (w as f32, h as f32);
        let boxes = raw
            .boxes
            .iter()
            .map(|b| {
                [
                    (b[0] + b[2]) / 2.0 / wf,
                    (b[1] + b[3]) / 2.0 / hf,
                    (b[2] - b[0]) / wf,
                    (b[3] - b[1]) / hf,
                ]
            })
            .collect();
        Sample {
            image,
            height: h,
            width: w,
            boxes,
            labels: raw.labels,
            masks: raw.masks,
            areas: raw.areas,
            image_id: raw.image_id,
            orig_size: raw.orig_size,
        }
    }
}
