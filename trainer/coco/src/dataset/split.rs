//! One split of an RF-DETR COCO dataset (`DIR/{train,valid,test}/_annotations.coco.json` with
//! the images beside it), read and checked once so that decoding never meets a bad annotation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::DatasetError;
use super::json::{AnnotationJson, CocoJson, CountsJson, SegmentationJson};
use crate::mask::Rle;

/// The annotation file's name inside each split folder.
pub const ANNOTATIONS_FILE: &str = "_annotations.coco.json";

/// A split of the dataset; its folder name is Roboflow's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train/`: augmented, shuffled.
    Train,
    /// `valid/`: evaluated every epoch (the reference's `test_*` keys).
    Valid,
    /// `test/`: evaluated at the end.
    Test,
}

impl Split {
    /// The folder name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// An instance's mask as the file gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// No segmentation (or an empty list): an all-zero mask, as the reference keeps it.
    None,
    /// Polygons `[x0, y0, x1, y1, ...]` whose union is the mask.
    Polygons(Vec<Vec<f64>>),
    /// A run-length mask (compressed or plain counts in the file).
    Rle(Rle),
}

/// One annotation, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Its id in the file.
    pub id: i64,
    /// The category id, used raw as the label (RF-DETR does not remap ids).
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// The `area` field.
    pub area: f64,
    /// A crowd region: dropped from training targets as the reference does, kept for
    /// evaluation.
    pub iscrowd: bool,
    /// Its mask.
    pub segmentation: Segmentation,
}

/// One image of the split with its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// The image id in the file.
    pub id: i64,
    /// The file name, relative to the split folder.
    pub file_name: String,
    /// Its annotations, in file order.
    pub annotations: Vec<Annotation>,
}

/// A split read from disk: its classes and images, every annotation checked.
#[derive(Debug, Clone)]
pub struct CocoSplit {
    /// Which split.
    pub split: Split,
    /// The split folder (images are relative to it).
    pub dir: PathBuf,
    /// The annotation file, for messages.
    pub annotations_file: PathBuf,
    /// Class names: the categories whose supercategory is not "none", in file order.
    pub classes: Vec<String>,
    /// The images, in file order.
    pub images: Vec<ImageRecord>,
}

impl CocoSplit {
    /// Reads `dataset/<split>/_annotations.coco.json` and checks it: every category has a
    /// supercategory, every non-crowd annotation a class id (1..=N Roboflow style, used raw),
    /// every annotation an `area` and a known image, every RLE the right length.
    pub fn open(dataset: &Path, split: Split) -> Result<CocoSplit, DatasetError> {
        let dir = dataset.join(split.dir_name());
        if !dir.is_dir() {
            return Err(DatasetError::MissingSplit {
                dataset: dataset.to_owned(),
                split: split.dir_name(),
            });
        }
        let path = dir.join(ANNOTATIONS_FILE);
        if !path.is_file() {
            return Err(DatasetError::MissingAnnotations { path });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        let coco: CocoJson = serde_json::from_str(&text).map_err(|e| DatasetError::Json {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
        let classes: Vec<String> = coco
            .categories
            .iter()
            .filter(|c| c.supercategory != "none")
            .map(|c| c.name.clone())
            .collect();
        // Ids are used raw by a head of N + 1 logits, so a class id above N is out of range.
        let num_classes = classes.len() as i64;
        let mut class_ids: Vec<i64> = coco
            .categories
            .iter()
            .filter(|c| c.supercategory != "none" && (0..=num_classes).contains(&c.id))
            .map(|c| c.id)
            .collect();
        class_ids.sort_unstable();
        let mut images: Vec<ImageRecord> = coco
            .images
            .iter()
            .map(|i| ImageRecord {
                id: i.id,
                file_name: i.file_name.clone(),
                annotations: Vec::new(),
            })
            .collect();
        let index: HashMap<i64, usize> =
            images.iter().enumerate().map(|(k, i)| (i.id, k)).collect();
        for ann in coco.annotations {
            let checked = check(ann, &path, &class_ids, num_classes, &coco.images, &index)?;
            images[checked.0].annotations.push(checked.1);
        }
        Ok(CocoSplit {
            split,
            dir,
            annotations_file: path,
            classes,
            images,
        })
    }

    /// Number of classes N (the head has N + 1 logits).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when the split lists no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// One annotation checked, with the index of its image.
fn check(
    ann: AnnotationJson,
    path: &Path,
    class_ids: &[i64],
    num_classes: i64,
    images: &[super::json::ImageJson],
    index: &HashMap<i64, usize>,
) -> Result<(usize, Annotation), DatasetError> {
    let Some(&at) = index.get(&ann.image_id) else {
        return Err(DatasetError::UnknownImage {
            path: path.to_owned(),
            annotation: ann.id,
            image_id: ann.image_id,
        });
    };
    let Some(area) = ann.area else {
        return Err(DatasetError::MissingArea {
            path: path.to_owned(),
            annotation: ann.id,
        });
    };
    let iscrowd = ann.iscrowd != 0;
    if !iscrowd && class_ids.binary_search(&ann.category_id).is_err() {
        return Err(DatasetError::UnknownCategory {
            path: path.to_owned(),
            annotation: ann.id,
            category_id: ann.category_id,
            num_classes: num_classes as usize,
            valid: id_list(class_ids),
        });
    }
    let bad_mask = |message: String| DatasetError::BadMask {
        path: path.to_owned(),
        annotation: ann.id,
        message,
    };
    let segmentation = match ann.segmentation {
        None => Segmentation::None,
        Some(SegmentationJson::Polygons(p)) if p.iter().all(|q| q.len() < 6) => Segmentation::None,
        Some(SegmentationJson::Polygons(p)) => Segmentation::Polygons(p),
        Some(SegmentationJson::Rle { size, counts }) => {
            let [height, width] = size;
            let rle = match counts {
                CountsJson::Compressed(s) => {
                    Rle::from_compressed(&s, height, width).map_err(|e| bad_mask(e.to_string()))?
                }
                CountsJson::Plain(counts) => Rle {
                    height,
                    width,
                    counts,
                },
            };
            rle.validate().map_err(|e| bad_mask(e.to_string()))?;
            let image = &images[at];
            if image.height.is_some_and(|h| h != height) || image.width.is_some_and(|w| w != width)
            {
                return Err(bad_mask(format!(
                    "its size is {height}x{width} but image {} is {}x{}",
                    image.id,
                    image.height.unwrap_or(0),
                    image.width.unwrap_or(0)
                )));
            }
            Segmentation::Rle(rle)
        }
    };
    Ok((
        at,
        Annotation {
            id: ann.id,
            category_id: ann.category_id,
            bbox: ann.bbox,
            area,
            iscrowd,
            segmentation,
        },
    ))
}

/// `1..=5` for contiguous ids, else the list.
fn id_list(ids: &[i64]) -> String {
    match (ids.first(), ids.last()) {
        (None, _) | (_, None) => "none".to_owned(),
        (Some(a), Some(b)) if b - a + 1 == ids.len() as i64 => format!("{a}..={b}"),
        _ => ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}
