//! The synthetic dataset: byte-identical for a seed, different for another, in the RF-DETR
//! layout, with instances of every class and area range, occlusion and multi-part polygons.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use flow_coco::synth::{ImageFormat, SPLITS, SynthConfig, SynthError, write_dataset};

fn config(images: usize, seed: u64) -> SynthConfig {
    SynthConfig {
        images,
        seed,
        size: 96,
        ..SynthConfig::default()
    }
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for split in fs::read_dir(dir).unwrap() {
        let split = split.unwrap().path();
        for file in fs::read_dir(&split).unwrap() {
            let file = file.unwrap().path();
            let key = file
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(key, fs::read(&file).unwrap());
        }
    }
    files
}

fn annotations(dir: &Path, split: &str) -> serde_json::Value {
    let text = fs::read_to_string(dir.join(split).join("_annotations.coco.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_differs() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [ImageFormat::Jpeg, ImageFormat::Png] {
        let cfg = SynthConfig {
            format,
            ..config(24, 7)
        };
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        write_dataset(&cfg, &a, true).unwrap();
        write_dataset(&cfg, &b, true).unwrap();
        write_dataset(
            &SynthConfig {
                seed: 8,
                ..cfg.clone()
            },
            &c,
            true,
        )
        .unwrap();
        let (ta, tb, tc) = (tree(&a), tree(&b), tree(&c));
        assert_eq!(ta.len(), 24 + 3, "24 images and 3 annotation files");
        assert!(ta == tb, "same seed, same bytes ({format:?})");
        assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
        let differing = ta.iter().filter(|(k, v)| tc[*k] != **v).count();
        assert_eq!(
            differing,
            ta.len(),
            "another seed changes every file ({format:?})"
        );
    }
}

#[test]
fn output_does_not_depend_on_the_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(12, 21);
    let (one, many) = (tmp.path().join("one"), tmp.path().join("many"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| write_dataset(&cfg, &one, false)).unwrap();
    write_dataset(&cfg, &many, false).unwrap();
    assert!(tree(&one) == tree(&many));
}

#[test]
fn layout_and_categories_follow_roboflow() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("data");
    let summary = write_dataset(&config(40, 1), &out, false).unwrap();
    let counts: Vec<usize> = summary.splits.iter().map(|s| s.images).collect();
    assert_eq!(counts, vec![28, 8, 4]);
    for split in SPLITS {
        let json = annotations(&out, split);
        let categories = json["categories"].as_array().unwrap();
        assert_eq!(categories[0]["id"], 0);
        assert_eq!(categories[0]["supercategory"], "none");
        let names: Vec<&str> = categories[1..]
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["circle", "ellipse", "triangle", "rectangle", "star"]
        );
        for (i, c) in categories.iter().enumerate().skip(1) {
            assert_eq!(c["id"], i);
            assert_eq!(c["supercategory"], "shapes");
        }
        for image in json["images"].as_array().unwrap() {
            let file = out.join(split).join(image["file_name"].as_str().unwrap());
            assert!(file.is_file(), "{} beside its annotations", file.display());
            assert_eq!(image["width"], 96);
        }
        for ann in json["annotations"].as_array().unwrap() {
            assert_eq!(ann["iscrowd"], 0);
            assert!(ann["area"].as_f64().unwrap() > 0.0);
            let id = ann["category_id"].as_u64().unwrap();
            assert!((1..=5).contains(&id));
            for polygon in ann["segmentation"].as_array().unwrap() {
                let n = polygon.as_array().unwrap().len();
                assert!(n >= 6 && n % 2 == 0, "a polygon has 3+ points");
            }
        }
    }
}

#[test]
fn instances_cover_classes_area_ranges_occlusion_and_empty_images() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        size: 160,
        ..config(200, 3)
    };
    let summary = write_dataset(&cfg, &tmp.path().join("d"), false).unwrap();
    for (name, count) in &summary.per_class {
        assert!(*count > 20, "{name}: {count} instances");
    }
    let [small, medium, large] = summary.per_area;
    assert!(
        small > 50 && medium > 50 && large > 10,
        "{:?}",
        summary.per_area
    );
    assert!(
        summary.multi_part > 5,
        "occlusion splits some shapes: {}",
        summary.multi_part
    );
    assert!(summary.empty_images > 0, "some images have no instance");
}

#[test]
fn occluded_instances_keep_only_their_visible_part() {
    // Instances of one image never share a pixel: each annotation is what stays visible.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    write_dataset(&config(30, 11), &out, false).unwrap();
    let json = annotations(&out, "train");
    let mut by_image: BTreeMap<u64, Vec<flow_coco::mask::Rle>> = BTreeMap::new();
    let mut overlapping_boxes = 0;
    for ann in json["annotations"].as_array().unwrap() {
        let polygons: Vec<Vec<f64>> = serde_json::from_value(ann["segmentation"].clone()).unwrap();
        let rle = flow_coco::mask::Rle::from_polygons(&polygons, 96, 96);
        assert_eq!(rle.area() as f64, ann["area"].as_f64().unwrap());
        by_image
            .entry(ann["image_id"].as_u64().unwrap())
            .or_default()
            .push(rle);
    }
    for masks in by_image.values() {
        let decoded: Vec<Vec<u8>> = masks.iter().map(|m| m.decode()).collect();
        for (i, a) in decoded.iter().enumerate() {
            for (j, b) in decoded.iter().enumerate().skip(i + 1) {
                let shared = a
                    .iter()
                    .zip(b)
                    .filter(|(x, y)| **x == 1 && **y == 1)
                    .count();
                // Shared boundaries of two rasterised polygons may touch on a few pixels.
                assert!(shared <= 8, "instances {i} and {j} share {shared} pixels");
                let (ba, bb) = (masks[i].to_bbox(), masks[j].to_bbox());
                if ba[0] < bb[0] + bb[2]
                    && bb[0] < ba[0] + ba[2]
                    && ba[1] < bb[1] + bb[3]
                    && bb[1] < ba[1] + ba[3]
                {
                    overlapping_boxes += 1;
                }
            }
        }
    }
    assert!(
        overlapping_boxes > 5,
        "shapes overlap: {overlapping_boxes} overlapping box pairs"
    );
}

#[test]
fn refuses_a_non_empty_directory_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = write_dataset(&config(5, 0), &out, false).unwrap_err();
    assert!(matches!(err, SynthError::NotEmpty { .. }));
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    write_dataset(&config(5, 0), &out, true).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("test/_annotations.coco.json").is_file());
    // No temporary directory is left beside it.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("d")]);
}

#[test]
fn an_empty_existing_directory_is_filled() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(&config(3, 0), tmp.path(), false).unwrap();
    assert!(tmp.path().join("valid/_annotations.coco.json").is_file());
}

#[test]
fn invalid_parameters_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    let cases = [
        (
            SynthConfig {
                images: 2,
                ..config(3, 0)
            },
            "--images",
        ),
        (
            SynthConfig {
                size: 8,
                ..config(3, 0)
            },
            "--size",
        ),
        (
            SynthConfig {
                valid_fraction: 0.6,
                test_fraction: 0.5,
                ..config(3, 0)
            },
            "leave no training images",
        ),
        (
            SynthConfig {
                min_objects: 5,
                max_objects: 2,
                ..config(3, 0)
            },
            "--min-objects",
        ),
    ];
    for (cfg, expected) in cases {
        let err = write_dataset(&cfg, &out, false).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!out.exists());
    }
}
