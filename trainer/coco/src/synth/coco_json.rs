//! The `_annotations.coco.json` the generator writes, field for field as a Roboflow COCO export
//! (info, licenses, categories with the id-0 super-category, images, annotations).

use serde::Serialize;

use super::shapes::ShapeClass;

/// The name of the super-category (id 0, supercategory "none"): RF-DETR counts only the
/// categories under it as classes.
pub const SUPER_CATEGORY: &str = "shapes";

#[derive(Serialize)]
pub(crate) struct CocoFile {
    pub(crate) info: Info,
    pub(crate) licenses: Vec<License>,
    pub(crate) categories: Vec<Category>,
    pub(crate) images: Vec<ImageEntry>,
    pub(crate) annotations: Vec<AnnotationEntry>,
}

#[derive(Serialize)]
pub(crate) struct Info {
    pub(crate) year: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) contributor: String,
    pub(crate) url: String,
    pub(crate) date_created: String,
}

#[derive(Serialize)]
pub(crate) struct License {
    pub(crate) id: u32,
    pub(crate) url: String,
    pub(crate) name: String,
}

#[derive(Serialize)]
pub(crate) struct Category {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) supercategory: String,
}

#[derive(Serialize)]
pub(crate) struct ImageEntry {
    pub(crate) id: u64,
    pub(crate) license: u32,
    pub(crate) file_name: String,
    pub(crate) height: u32,
    pub(crate) width: u32,
    pub(crate) date_captured: String,
}

#[derive(Serialize)]
pub(crate) struct AnnotationEntry {
    pub(crate) id: u64,
    pub(crate) image_id: u64,
    pub(crate) category_id: u32,
    pub(crate) bbox: [f64; 4],
    pub(crate) area: f64,
    pub(crate) segmentation: Vec<Vec<f64>>,
    pub(crate) iscrowd: u8,
}

/// A fixed timestamp: a date of generation would break byte-identical output.
pub(crate) const EPOCH: &str = "1970-01-01T00:00:00+00:00";

/// The categories: the super-category at id 0, then one per shape class.
pub(crate) fn categories() -> Vec<Category> {
    let mut categories = vec![Category {
        id: 0,
        name: SUPER_CATEGORY.to_owned(),
        supercategory: "none".to_owned(),
    }];
    categories.extend(ShapeClass::ALL.iter().map(|class| Category {
        id: class.category_id(),
        name: class.name().to_owned(),
        supercategory: SUPER_CATEGORY.to_owned(),
    }));
    categories
}
