//! One synthetic image end to end: layout, painting, encoding and its annotations.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use super::config::{ImageFormat, SynthConfig};
use super::error::SynthError;
use super::paint::{flatten, paint};
use super::rng::Rng;
use super::scene::layout;
use super::shapes::ShapeClass;
use crate::mask::Rle;

/// One instance's annotation, before ids are given.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub(crate) class: ShapeClass,
    /// `[x, y, width, height]` of the visible mask, in pixels.
    pub(crate) bbox: [f64; 4],
    /// Pixels of the visible mask.
    pub(crate) area: f64,
    /// The visible parts as COCO polygons (more than one where occlusion split the shape).
    pub(crate) polygons: Vec<Vec<f64>>,
}

/// The image `index` of the dataset (its random stream is its index) and its encoded bytes.
pub(crate) fn generate(
    config: &SynthConfig,
    index: u64,
    path: &Path,
) -> Result<(Vec<u8>, Vec<Instance>), SynthError> {
    let mut rng = Rng::for_image(config.seed, index);
    let shapes = layout(config, &mut rng);
    let image = paint(&shapes, config.size, &mut rng);
    let instances = shapes
        .iter()
        .filter_map(|shape| {
            let polygons: Vec<Vec<f64>> = shape
                .visible
                .iter()
                .map(|part| flatten(part).into_iter().map(round2).collect::<Vec<f64>>())
                .filter(|p| p.len() >= 6)
                .collect();
            let mask = Rle::from_polygons(&polygons, config.size, config.size);
            if mask.area() == 0 {
                return None;
            }
            Some(Instance {
                class: shape.class,
                bbox: mask.to_bbox(),
                area: mask.area() as f64,
                polygons,
            })
        })
        .collect();
    let mut bytes = Vec::new();
    let (w, h) = image.dimensions();
    let result = match config.format {
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 92)
            .write_image(image.as_raw(), w, h, ExtendedColorType::Rgb8),
        ImageFormat::Png => PngEncoder::new(Cursor::new(&mut bytes)).write_image(
            image.as_raw(),
            w,
            h,
            ExtendedColorType::Rgb8,
        ),
    };
    result.map_err(|source| SynthError::Encode {
        path: path.to_owned(),
        source,
    })?;
    Ok((bytes, instances))
}

/// Coordinates to 1/100 pixel: short JSON, and the masks are computed from what is written.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
