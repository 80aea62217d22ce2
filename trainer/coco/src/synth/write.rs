//! Writing the whole dataset: the three splits, generated in parallel into a temporary
//! directory beside the destination and renamed into place, so that a dataset directory is
//! either complete or absent.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::coco_json::{AnnotationEntry, CocoFile, EPOCH, ImageEntry, Info, License, categories};
use super::config::SynthConfig;
use super::error::SynthError;
use super::generate::{Instance, generate};
use super::shapes::ShapeClass;

/// The split folders, in the order images are assigned to them.
pub const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// The annotation file's name inside each split folder.
pub const ANNOTATIONS_FILE: &str = "_annotations.coco.json";

/// What was written, for the command's summary and for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// The dataset directory.
    pub out: PathBuf,
    /// Per split (train, valid, test): name, images, annotations.
    pub splits: Vec<SplitSummary>,
    /// Instances per class, in category-id order.
    pub per_class: Vec<(&'static str, usize)>,
    /// Instances per COCO area range: small (< 32²), medium (< 96²), large.
    pub per_area: [usize; 3],
    /// Instances whose visible region is split in several polygons by occlusion.
    pub multi_part: usize,
    /// Images with no instance.
    pub empty_images: usize,
}

/// One split of [`SynthSummary`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSummary {
    /// "train", "valid" or "test".
    pub name: &'static str,
    /// Images in it.
    pub images: usize,
    /// Annotations in it.
    pub annotations: usize,
}

/// Writes the dataset of `config` to `out`. A non-empty `out` is refused unless `force`, in
/// which case it is replaced only once the new dataset is complete.
pub fn write_dataset(
    config: &SynthConfig,
    out: &Path,
    force: bool,
) -> Result<SynthSummary, SynthError> {
    config.validate()?;
    let occupied = match fs::read_dir(out) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => true,
        Err(e) => return Err(SynthError::io("read", out, e)),
    };
    if occupied && !force {
        return Err(SynthError::NotEmpty {
            path: out.to_owned(),
        });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| SynthError::io("create", &parent, e))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".to_owned());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.synth-"))
        .tempdir_in(&parent)
        .map_err(|e| SynthError::io("create a temporary directory in", &parent, e))?;
    let mut summary = write_splits(config, staging.path())?;
    let staged = staging.keep();
    if occupied {
        let removed = if out.is_dir() {
            fs::remove_dir_all(out)
        } else {
            fs::remove_file(out)
        };
        if let Err(e) = removed {
            let _ = fs::remove_dir_all(&staged);
            return Err(SynthError::io("remove", out, e));
        }
    }
    if let Err(e) = fs::rename(&staged, out) {
        let _ = fs::remove_dir_all(&staged);
        return Err(SynthError::io(
            &format!("rename {} to", staged.display()),
            out,
            e,
        ));
    }
    summary.out = out.to_owned();
    Ok(summary)
}

/// Generates every image (in parallel, each from its own random stream) and writes the three
/// split folders under `root`.
fn write_splits(config: &SynthConfig, root: &Path) -> Result<SynthSummary, SynthError> {
    let sizes = config.split_sizes();
    let mut summary = SynthSummary {
        out: root.to_owned(),
        splits: Vec::new(),
        per_class: ShapeClass::ALL.iter().map(|c| (c.name(), 0)).collect(),
        per_area: [0; 3],
        multi_part: 0,
        empty_images: 0,
    };
    let mut first = 0u64;
    for (split, count) in SPLITS.into_iter().zip(sizes) {
        let dir = root.join(split);
        fs::create_dir_all(&dir).map_err(|e| SynthError::io("create", &dir, e))?;
        let ext = config.format.extension();
        let generated: Vec<(String, Vec<Instance>)> = (first..first + count as u64)
            .into_par_iter()
            .map(|index| {
                let file_name = format!("synth_{index:06}.{ext}");
                let path = dir.join(&file_name);
                let (bytes, instances) = generate(config, index, &path)?;
                fs::write(&path, bytes).map_err(|e| SynthError::io("write", &path, e))?;
                Ok((file_name, instances))
            })
            .collect::<Result<_, SynthError>>()?;
        first += count as u64;
        let file = coco_file(config, &generated, &mut summary);
        summary.splits.push(SplitSummary {
            name: split,
            images: file.images.len(),
            annotations: file.annotations.len(),
        });
        let path = dir.join(ANNOTATIONS_FILE);
        let json =
            serde_json::to_vec(&file).map_err(|e| SynthError::io("serialise", &path, e.into()))?;
        fs::write(&path, json).map_err(|e| SynthError::io("write", &path, e))?;
    }
    Ok(summary)
}

/// The annotation file of one split, ids 0-based in image order (as Roboflow numbers them).
fn coco_file(
    config: &SynthConfig,
    generated: &[(String, Vec<Instance>)],
    summary: &mut SynthSummary,
) -> CocoFile {
    let mut images = Vec::with_capacity(generated.len());
    let mut annotations = Vec::new();
    for (image_id, (file_name, instances)) in generated.iter().enumerate() {
        images.push(ImageEntry {
            id: image_id as u64,
            license: 1,
            file_name: file_name.clone(),
            height: config.size,
            width: config.size,
            date_captured: EPOCH.to_owned(),
        });
        if instances.is_empty() {
            summary.empty_images += 1;
        }
        for instance in instances {
            let class = instance.class.category_id() as usize - 1;
            summary.per_class[class].1 += 1;
            let range = if instance.area < 32.0 * 32.0 {
                0
            } else if instance.area < 96.0 * 96.0 {
                1
            } else {
                2
            };
            summary.per_area[range] += 1;
            if instance.polygons.len() > 1 {
                summary.multi_part += 1;
            }
            annotations.push(AnnotationEntry {
                id: annotations.len() as u64,
                image_id: image_id as u64,
                category_id: instance.class.category_id(),
                bbox: instance.bbox,
                area: instance.area,
                segmentation: instance.polygons.clone(),
                iscrowd: 0,
            });
        }
    }
    CocoFile {
        info: Info {
            year: String::new(),
            version: "1".to_owned(),
            description: format!(
                "flow synthetic shapes: seed {}, {} px, {} images",
                config.seed, config.size, config.images
            ),
            contributor: "flow-train synth".to_owned(),
            url: String::new(),
            date_created: EPOCH.to_owned(),
        },
        licenses: vec![License {
            id: 1,
            url: String::new(),
            name: "CC0 1.0".to_owned(),
        }],
        categories: categories(),
        images,
        annotations,
    }
}
