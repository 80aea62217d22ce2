//! One image decoded with its training targets in pixels, before augmentation: what the
//! reference's `ConvertCoco` produces (crowd regions dropped, boxes clamped to the image,
//! degenerate boxes removed, masks rasterised at the image's size).

use image::RgbImage;

use super::bitmap::Bitmap;
use super::error::DatasetError;
use super::split::{CocoSplit, Segmentation};
use crate::mask::Rle;

/// An image and its targets in pixel units; the augmentations transform it as a whole.
#[derive(Debug, Clone)]
pub struct RawSample {
    /// The RGB image.
    pub image: RgbImage,
    /// The image id in the annotation file (for evaluation).
    pub image_id: i64,
    /// `[height, width]` of the image as stored (predictions are scaled back to it).
    pub orig_size: [usize; 2],
    /// Boxes `[x0, y0, x1, y1]` in pixels.
    pub boxes: Vec<[f32; 4]>,
    /// Category ids, raw.
    pub labels: Vec<i64>,
    /// The `area` of each instance, scaled with the image.
    pub areas: Vec<f32>,
    /// One mask per instance, at the image's size.
    pub masks: Vec<Bitmap>,
}

impl RawSample {
    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.image.height() as usize
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.image.width() as usize
    }

    /// Keeps the instances where `keep` is true.
    pub(crate) fn retain(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        self.boxes.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.labels.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.areas.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.masks.retain(|_| *k.next().unwrap_or(&false));
    }
}

impl CocoSplit {
    /// Decodes image `index` and builds its targets.
    pub fn load(&self, index: usize) -> Result<RawSample, DatasetError> {
        let record = &self.images[index];
        let path = self.dir.join(&record.file_name);
        let bytes = std::fs::read(&path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        let image = image::load_from_memory(&bytes)
            .map_err(|e| DatasetError::Image {
                path: path.clone(),
                message: e.to_string(),
            })?
            .to_rgb8();
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut sample = RawSample {
            image,
            image_id: record.id,
            orig_size: [h, w],
            boxes: Vec::new(),
            labels: Vec::new(),
            areas: Vec::new(),
            masks: Vec::new(),
        };
        for ann in record.annotations.iter().filter(|a| !a.iscrowd) {
            let [x, y, bw, bh] = ann.bbox;
            let x0 = (x as f32).clamp(0.0, w as f32);
            let y0 = (y as f32).clamp(0.0, h as f32);
            let x1 = ((x + bw) as f32).clamp(0.0, w as f32);
            let y1 = ((y + bh) as f32).clamp(0.0, h as f32);
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            let mask = match &ann.segmentation {
                Segmentation::None => Bitmap::empty(h, w),
                Segmentation::Polygons(p) => {
                    Bitmap::from_rle(&Rle::from_polygons(p, h as u32, w as u32))
                }
                Segmentation::Rle(rle) => {
                    if (rle.height as usize, rle.width as usize) != (h, w) {
                        return Err(DatasetError::BadMask {
                            path: self.annotations_file.clone(),
                            annotation: ann.id,
                            message: format!(
                                "its size is {}x{} but {} is {h}x{w}",
                                rle.height,
                                rle.width,
                                path.display()
                            ),
                        });
                    }
                    Bitmap::from_rle(rle)
                }
            };
            sample.boxes.push([x0, y0, x1, y1]);
            sample.labels.push(ann.category_id);
            sample.areas.push(ann.area as f32);
            sample.masks.push(mask);
        }
        Ok(sample)
    }
}
