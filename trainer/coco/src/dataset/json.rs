//! The parts of `_annotations.coco.json` the loader reads; unknown fields (info, licenses,
//! Roboflow's extras) are ignored as pycocotools ignores them.

use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct CocoJson {
    #[serde(default)]
    pub(crate) images: Vec<ImageJson>,
    #[serde(default)]
    pub(crate) annotations: Vec<AnnotationJson>,
    pub(crate) categories: Vec<CategoryJson>,
}

#[derive(Deserialize)]
pub(crate) struct ImageJson {
    pub(crate) id: i64,
    pub(crate) file_name: String,
    #[serde(default)]
    pub(crate) height: Option<u32>,
    #[serde(default)]
    pub(crate) width: Option<u32>,
}

#[derive(Deserialize)]
pub(crate) struct CategoryJson {
    pub(crate) id: i64,
    pub(crate) name: String,
    /// Required: RF-DETR reads it for every category.
    pub(crate) supercategory: String,
}

#[derive(Deserialize)]
pub(crate) struct AnnotationJson {
    #[serde(default)]
    pub(crate) id: i64,
    pub(crate) image_id: i64,
    pub(crate) category_id: i64,
    pub(crate) bbox: [f64; 4],
    #[serde(default)]
    pub(crate) area: Option<f64>,
    #[serde(default)]
    pub(crate) iscrowd: u8,
    #[serde(default)]
    pub(crate) segmentation: Option<SegmentationJson>,
}

/// A COCO segmentation: polygons, or an RLE with compressed or plain counts.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum SegmentationJson {
    Polygons(Vec<Vec<f64>>),
    Rle { size: [u32; 2], counts: CountsJson },
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum CountsJson {
    Compressed(String),
    Plain(Vec<u32>),
}
