//! The COCO loader: the RF-DETR layout, polygon / RLE / crowd / empty annotations, every
//! bad-dataset error, augmentations that keep masks and boxes together, and the batch loader.

use std::fs;
use std::path::Path;

use flow_coco::dataset::{
    Augment, Batch, Bitmap, CocoSplit, DatasetError, IMAGENET_MEAN, IMAGENET_STD, Loader,
    LoaderConfig, RawSample, Sample, Split, TrainAugment, crop, hflip, multi_scale_scales, resize,
    resize_shorter_side, square_resize,
};
use flow_coco::mask::Rle;
use flow_coco::synth::{SynthConfig, write_dataset};
use serde_json::{Value, json};

/// A synthetic dataset of `images` 96-pixel images under `dir`.
fn synthetic(dir: &Path, images: usize) {
    let config = SynthConfig {
        images,
        seed: 5,
        size: 96,
        ..SynthConfig::default()
    };
    write_dataset(&config, dir, false).unwrap();
}

/// Writes `split/` with a `w` x `h` grey PNG per image name and the given annotation JSON.
fn handmade(root: &Path, split: &str, images: &[(&str, u32, u32)], coco: &Value) {
    let dir = root.join(split);
    fs::create_dir_all(&dir).unwrap();
    for (name, w, h) in images {
        image::RgbImage::from_pixel(*w, *h, image::Rgb([128, 64, 32]))
            .save(dir.join(name))
            .unwrap();
    }
    fs::write(dir.join("_annotations.coco.json"), coco.to_string()).unwrap();
}

fn categories() -> Value {
    json!([
        {"id": 0, "name": "things", "supercategory": "none"},
        {"id": 1, "name": "a", "supercategory": "things"},
        {"id": 2, "name": "b", "supercategory": "things"}
    ])
}

/// The mask's tight box as `[x0, y0, x1, y1]` floats.
fn mask_box(m: &Bitmap) -> Option<[f32; 4]> {
    m.bbox().map(|b| b.map(|v| v as f32))
}

/// Asserts each instance's mask box equals its box within one pixel.
fn assert_consistent(s: &RawSample, what: &str) {
    for (i, (b, m)) in s.boxes.iter().zip(&s.masks).enumerate() {
        assert_eq!(
            (m.height, m.width),
            (s.height(), s.width()),
            "{what}: mask size"
        );
        let mb = mask_box(m).unwrap_or_else(|| panic!("{what}: instance {i} lost its mask"));
        for k in 0..4 {
            assert!(
                (mb[k] - b[k]).abs() <= 1.0,
                "{what}: instance {i}: mask box {mb:?}, box {b:?}"
            );
        }
    }
}

/// Asserts each instance's mask box lies inside its box grown by one pixel: downscaling a
/// mask by nearest neighbour (as the reference does) can skip a one-pixel tip, so the mask
/// box may shrink, never grow.
fn assert_inside(s: &RawSample, what: &str) {
    for (i, (b, m)) in s.boxes.iter().zip(&s.masks).enumerate() {
        let Some(mb) = mask_box(m) else { continue };
        assert!(
            mb[0] >= b[0] - 1.0
                && mb[1] >= b[1] - 1.0
                && mb[2] <= b[2] + 1.0
                && mb[3] <= b[3] + 1.0,
            "{what}: instance {i}: mask box {mb:?} outside box {b:?}"
        );
    }
}

#[test]
fn synthetic_dataset_loads_with_mask_boxes_equal_to_annotation_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic(tmp.path(), 30);
    let mut instances = 0;
    for split in [Split::Train, Split::Valid, Split::Test] {
        let coco = CocoSplit::open(tmp.path(), split).unwrap();
        assert_eq!(
            coco.classes,
            ["circle", "ellipse", "triangle", "rectangle", "star"]
        );
        assert_eq!(coco.num_classes(), 5);
        for (index, record) in coco.images.iter().enumerate() {
            let raw = coco.load(index).unwrap();
            assert_eq!(raw.orig_size, [96, 96]);
            assert_eq!(raw.masks.len(), record.annotations.len());
            for (ann, mask) in record.annotations.iter().zip(&raw.masks) {
                let [x0, y0, x1, y1] = mask.bbox().unwrap();
                let [x, y, w, h] = ann.bbox;
                assert_eq!([x0, y0, x1 - x0, y1 - y0].map(|v| v as f64), [x, y, w, h]);
                assert_eq!(mask.area() as f64, ann.area);
                assert!((1..=5).contains(&ann.category_id));
                instances += 1;
            }
        }
    }
    assert!(instances > 40, "{instances} instances");
}

#[test]
fn polygon_rle_crowd_and_empty_images() {
    let tmp = tempfile::tempdir().unwrap();
    // A 3x2 block at x 4..7, y 2..4 of a 10-wide, 8-high image, as compressed RLE.
    let mut block = vec![0u8; 8 * 10];
    for x in 4..7 {
        for y in 2..4 {
            block[x * 8 + y] = 1; // column-major
        }
    }
    let rle = Rle::encode(&block, 8, 10);
    let plain_crowd = Rle::encode(&[1u8; 80], 8, 10);
    let coco = json!({
        "images": [
            {"id": 7, "file_name": "a.png", "height": 8, "width": 10},
            {"id": 9, "file_name": "empty.png", "height": 8, "width": 10}
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 1, 3, 3], "area": 9,
             "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [4, 2, 3, 2], "area": 6,
             "segmentation": {"size": [8, 10], "counts": rle.to_compressed()}, "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 8], "area": 80,
             "segmentation": {"size": [8, 10], "counts": plain_crowd.counts}, "iscrowd": 1},
            {"id": 4, "image_id": 7, "category_id": 2, "bbox": [8, 6, 2, 2], "area": 4,
             "segmentation": [], "iscrowd": 0},
            {"id": 5, "image_id": 7, "category_id": 2, "bbox": [3, 3, 0, 2], "area": 0,
             "segmentation": [], "iscrowd": 0}
        ],
        "categories": categories()
    });
    handmade(
        tmp.path(),
        "valid",
        &[("a.png", 10, 8), ("empty.png", 10, 8)],
        &coco,
    );
    let split = CocoSplit::open(tmp.path(), Split::Valid).unwrap();
    assert_eq!(split.classes, ["a", "b"]);
    assert!(
        split.images[0].annotations[2].iscrowd,
        "crowd regions stay for evaluation"
    );

    let raw = split.load(0).unwrap();
    assert_eq!(raw.image_id, 7);
    // The crowd region (id 3) and the zero-width box (id 5) are dropped, as the reference does.
    assert_eq!(raw.labels, [1, 2, 2]);
    assert_eq!(
        raw.boxes,
        [
            [1.0, 1.0, 4.0, 4.0],
            [4.0, 2.0, 7.0, 4.0],
            [8.0, 6.0, 10.0, 8.0]
        ]
    );
    assert_eq!(raw.areas, [9.0, 6.0, 4.0]);
    assert_eq!(
        raw.masks[0].area(),
        9,
        "pycocotools rasterises the 3x3 square to 9 pixels"
    );
    assert_eq!(raw.masks[0].bbox(), Some([1, 1, 4, 4]));
    assert_eq!(
        raw.masks[1].bbox(),
        Some([4, 2, 7, 4]),
        "RLE decoded row-major"
    );
    assert_eq!(raw.masks[1].area(), 6);
    assert_eq!(raw.masks[2].area(), 0, "no segmentation: an empty mask");

    let empty = split.load(1).unwrap();
    assert!(empty.boxes.is_empty() && empty.labels.is_empty() && empty.masks.is_empty());
    let sample = Sample::from_raw(square_resize(empty, 16));
    assert_eq!(
        (sample.height, sample.width, sample.image.len()),
        (16, 16, 3 * 256)
    );
}

/// Writes a valid one-image dataset whose JSON is `coco`, opens `split`, returns the error.
fn open_error(coco: &Value, setup: impl FnOnce(&Path)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    handmade(tmp.path(), "train", &[("a.png", 10, 8)], coco);
    setup(tmp.path());
    let split = CocoSplit::open(tmp.path(), Split::Train);
    let err: DatasetError = match split {
        Err(e) => e,
        Ok(split) => split.load(0).unwrap_err(),
    };
    err.to_string()
}

fn one_annotation(ann: Value) -> Value {
    json!({
        "images": [{"id": 0, "file_name": "a.png", "height": 8, "width": 10}],
        "annotations": [ann],
        "categories": categories()
    })
}

#[test]
fn every_bad_dataset_error_names_the_file_and_the_fix() {
    let good = one_annotation(json!({"id": 0, "image_id": 0, "category_id": 1,
        "bbox": [1, 1, 3, 3], "area": 9, "segmentation": [[1, 1, 4, 1, 4, 4]], "iscrowd": 0}));

    let tmp = tempfile::tempdir().unwrap();
    handmade(tmp.path(), "train", &[("a.png", 10, 8)], &good);
    let err = CocoSplit::open(tmp.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no `test/` folder") && err.contains("train/, valid/ and test/"),
        "{err}"
    );

    let err = open_error(&good, |root| {
        fs::remove_file(root.join("train/_annotations.coco.json")).unwrap()
    });
    assert!(
        err.contains("train/_annotations.coco.json is missing"),
        "{err}"
    );

    let err = open_error(&good, |root| {
        fs::write(
            root.join("train/_annotations.coco.json"),
            "{\n  \"images\": [\n    {\"id\": 0,,}\n",
        )
        .unwrap()
    });
    assert!(
        err.contains("_annotations.coco.json:3:14:"),
        "file, line and column: {err}"
    );

    let err = open_error(&good, |root| {
        fs::write(root.join("train/a.png"), b"not a png").unwrap()
    });
    assert!(
        err.contains("cannot decode image") && err.contains("train/a.png"),
        "{err}"
    );

    let err = open_error(
        &one_annotation(
            json!({"id": 4, "image_id": 0, "category_id": 3, "bbox": [1, 1, 3, 3],
            "area": 9, "segmentation": [], "iscrowd": 0}),
        ),
        |_| {},
    );
    assert!(
        err.contains("annotation 4 has category_id 3") && err.contains("2 classes (ids 1..=2)"),
        "{err}"
    );

    let err = open_error(
        &one_annotation(
            json!({"id": 6, "image_id": 0, "category_id": 1, "bbox": [1, 1, 3, 3],
            "segmentation": [], "iscrowd": 0}),
        ),
        |_| {},
    );
    assert!(err.contains("annotation 6 has no `area`"), "{err}");

    let err = open_error(
        &one_annotation(
            json!({"id": 8, "image_id": 0, "category_id": 1, "bbox": [1, 1, 3, 3],
            "area": 9, "segmentation": {"size": [8, 10], "counts": [3, 4]}, "iscrowd": 0}),
        ),
        |_| {},
    );
    assert!(
        err.contains("annotation 8 has a bad RLE segmentation"),
        "{err}"
    );

    let err = open_error(
        &one_annotation(
            json!({"id": 2, "image_id": 5, "category_id": 1, "bbox": [1, 1, 3, 3],
            "area": 9, "segmentation": [], "iscrowd": 0}),
        ),
        |_| {},
    );
    assert!(err.contains("annotation 2 refers to image_id 5"), "{err}");

    // The parallel loader hands a decoding error to its consumer, then stops.
    let tmp = tempfile::tempdir().unwrap();
    handmade(tmp.path(), "valid", &[("a.png", 10, 8)], &good);
    fs::write(tmp.path().join("valid/a.png"), b"broken").unwrap();
    let split = CocoSplit::open(tmp.path(), Split::Valid).unwrap();
    let loader = Loader::new(
        split,
        Augment::Eval { resolution: 16 },
        LoaderConfig::eval(4),
    );
    let mut batches = loader.epoch(0);
    let err = batches.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("valid/a.png"), "{err}");
    assert!(batches.next().is_none());

    let mut no_super = good.clone();
    no_super["categories"][1]
        .as_object_mut()
        .unwrap()
        .remove("supercategory");
    let err = open_error(&no_super, |_| {});
    assert!(err.contains("missing field `supercategory`"), "{err}");
}

/// The synthetic training images, decoded.
fn raw_samples(dir: &Path) -> Vec<RawSample> {
    let split = CocoSplit::open(dir, Split::Train).unwrap();
    (0..split.len()).map(|i| split.load(i).unwrap()).collect()
}

#[test]
fn flip_resize_and_square_resize_keep_masks_on_their_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic(tmp.path(), 30);
    let samples = raw_samples(tmp.path());
    assert!(samples.iter().map(|s| s.boxes.len()).sum::<usize>() > 30);
    for s in samples {
        assert_consistent(&s, "loaded");
        let flipped = hflip(s.clone());
        assert_consistent(&flipped, "hflip");
        assert_eq!(
            hflip(flipped).image,
            s.image,
            "flipping twice is the identity"
        );
        assert_consistent(&resize_shorter_side(s.clone(), 200, None), "resize up");
        assert_consistent(&resize(s.clone(), 131, 205), "resize up, aspect changed");
        assert_inside(&resize(s.clone(), 57, 73), "resize down, aspect changed");
        let square = square_resize(s.clone(), 168);
        assert_eq!((square.height(), square.width()), (168, 168));
        assert_consistent(&square, "square resize");
    }
}

#[test]
fn crop_clips_boxes_and_masks_together() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic(tmp.path(), 30);
    let mut cut = 0;
    for s in raw_samples(tmp.path()) {
        let (top, left, h, w) = (20, 13, 50, 61);
        let cropped = crop(s.clone(), top, left, h, w);
        assert_eq!((cropped.height(), cropped.width()), (h, w));
        let mut kept = s.boxes.iter().zip(&s.masks).filter(|(b, _)| {
            b[2] > left as f32
                && b[0] < (left + w) as f32
                && b[3] > top as f32
                && b[1] < (top + h) as f32
        });
        for (b, m) in cropped.boxes.iter().zip(&cropped.masks) {
            let (ob, om) = kept
                .next()
                .expect("the kept instances are those the window meets");
            let inside = ob[0] >= left as f32
                && ob[1] >= top as f32
                && ob[2] <= (left + w) as f32
                && ob[3] <= (top + h) as f32;
            let Some(mb) = mask_box(m) else {
                // The window meets the box but not the shape (a corner): the reference keeps it.
                assert!(!inside);
                continue;
            };
            if inside {
                assert_eq!(mb, *b, "an instance inside the window keeps its exact box");
                assert_eq!(m.area(), om.area());
            } else {
                // A cut instance: its box is the old box clipped to the window (as the
                // reference), so the cut mask lies inside it.
                cut += 1;
                assert!(
                    mb[0] >= b[0] && mb[1] >= b[1] && mb[2] <= b[2] && mb[3] <= b[3],
                    "{mb:?} in {b:?}"
                );
            }
        }
        assert!(kept.next().is_none());
    }
    assert!(cut > 3, "some instances are cut by the window: {cut}");
}

#[test]
fn training_pipeline_and_multi_scale_keep_targets_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic(tmp.path(), 40);
    assert_eq!(
        multi_scale_scales(312, 12, 1, true),
        (252..=372).step_by(12).collect::<Vec<_>>()
    );
    assert_eq!(multi_scale_scales(384, 12, 2, true).first(), Some(&264));
    let mut augment = TrainAugment::rfdetr(96, 12, 1, true);
    // Keep the crop in reach of small synthetic images, so both branches run.
    augment.resize_sizes = vec![100, 120];
    augment.crop_min = 60;
    augment.crop_max = 100;
    let square = *augment.square_sizes.last().unwrap();
    assert_eq!(
        square, 156,
        "the largest scale of a 96 px model with patch 12"
    );
    let split = CocoSplit::open(tmp.path(), Split::Train).unwrap();
    let mut config = LoaderConfig::train(4, 3);
    config.multi_scale = multi_scale_scales(96, 12, 1, true);
    let loader = Loader::new(split, Augment::Train(augment), config.clone());
    let mut sizes = std::collections::BTreeSet::new();
    for epoch in 0..2 {
        for batch in loader.epoch(epoch) {
            let batch = batch.unwrap();
            assert!(config.multi_scale.contains(&batch.height));
            assert_eq!(batch.width, batch.height);
            sizes.insert(batch.height);
            assert_eq!(
                batch.images.len(),
                batch.len() * 3 * batch.height * batch.height
            );
            for t in &batch.targets {
                assert_eq!(t.size, [square, square]);
                for (b, m) in t.boxes.iter().zip(&t.masks) {
                    // Normalised boxes hold at every scale. The mask's normalised box lies
                    // inside the box (crops cut shapes), within one pixel of each resize the
                    // sample went through: the crop's (60 px or more) and the square one's.
                    let Some(mb) = mask_box(m) else { continue };
                    let (w, h) = (m.width as f32, m.height as f32);
                    let px = 1.0 / 60.0 + 1.0 / w;
                    let bx = [
                        b[0] - b[2] / 2.0,
                        b[1] - b[3] / 2.0,
                        b[0] + b[2] / 2.0,
                        b[1] + b[3] / 2.0,
                    ];
                    let nb = [mb[0] / w, mb[1] / h, mb[2] / w, mb[3] / h];
                    assert!(
                        nb[0] >= bx[0] - px && nb[1] >= bx[1] - px,
                        "{nb:?} in {bx:?}"
                    );
                    assert!(
                        nb[2] <= bx[2] + px && nb[3] <= bx[3] + px,
                        "{nb:?} in {bx:?}"
                    );
                }
            }
        }
    }
    assert!(sizes.len() > 2, "batches come at several scales: {sizes:?}");
}

#[test]
fn loader_is_deterministic_per_epoch_and_covers_the_split() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic(tmp.path(), 40);
    let split = CocoSplit::open(tmp.path(), Split::Train).unwrap();
    let n = split.len();
    let train = Loader::new(
        split.clone(),
        Augment::Train(TrainAugment::rfdetr(64, 16, 1, false)),
        LoaderConfig::train(3, 9),
    );
    let collect = |epoch| -> Vec<Batch> { train.epoch(epoch).map(Result::unwrap).collect() };
    let (a, b, c) = (collect(0), collect(0), collect(1));
    assert_eq!(a.len(), n / 3, "last incomplete batch dropped");
    assert_eq!(a.len(), train.batches_per_epoch());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.images, y.images, "same epoch, same pixels");
        assert_eq!(
            x.targets.iter().map(|t| t.image_id).collect::<Vec<_>>(),
            y.targets.iter().map(|t| t.image_id).collect::<Vec<_>>()
        );
    }
    assert!(
        a.iter().zip(&c).any(|(x, y)| x.images != y.images),
        "another epoch differs"
    );
    let mut order = train.order(0);
    order.sort_unstable();
    order.dedup();
    assert_eq!(order.len(), n / 3 * 3, "a shuffle without repeats");

    // Evaluation: file order, every image, the last batch kept, square resize only.
    let eval = Loader::new(
        split.clone(),
        Augment::Eval { resolution: 64 },
        LoaderConfig::eval(8),
    );
    let batches: Vec<Batch> = eval.epoch(0).map(Result::unwrap).collect();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.targets.iter().map(|t| t.image_id))
        .collect();
    assert_eq!(ids, split.images.iter().map(|i| i.id).collect::<Vec<_>>());
    assert!(batches.iter().all(|b| b.padding.iter().all(|p| *p == 0)));

    // A set smaller than 5 batches is drawn with replacement up to 5 batches.
    let small = Loader::new(
        split,
        Augment::Eval { resolution: 32 },
        LoaderConfig::train(16, 1),
    );
    assert_eq!(small.order(0).len(), 80);
}

#[test]
fn normalisation_and_collate_follow_the_reference() {
    let mut image = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 128]));
    image.put_pixel(3, 1, image::Rgb([0, 255, 0]));
    let mut mask = Bitmap::empty(2, 4);
    mask.data[1] = 1;
    let raw = RawSample {
        image,
        image_id: 3,
        orig_size: [2, 4],
        boxes: vec![[1.0, 0.0, 3.0, 2.0]],
        labels: vec![2],
        areas: vec![4.0],
        masks: vec![mask],
    };
    let s = Sample::from_raw(raw);
    let expect = |v: f32, c: usize| (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    assert_eq!(s.image[0], expect(255.0, 0));
    assert_eq!(s.image[8], expect(0.0, 1), "channel-major");
    assert_eq!(s.image[8 + 7], expect(255.0, 1));
    assert_eq!(
        s.boxes,
        [[0.5, 0.5, 0.5, 1.0]],
        "cx, cy, w, h over width and height"
    );

    let mut small = s.clone();
    small.height = 1;
    small.image = vec![1.0; 3 * 4];
    let batch = Batch::collate(vec![s, small]);
    assert_eq!((batch.height, batch.width, batch.len()), (2, 4, 2));
    assert_eq!(
        &batch.padding[8..],
        &[0, 0, 0, 0, 1, 1, 1, 1],
        "the short image is padded below"
    );
    assert_eq!(batch.images[24 + 4], 0.0, "padding pixels are zero");
    let mut resized = batch.clone();
    resized.resize(8);
    assert_eq!(resized.images.len(), 2 * 3 * 64);
    assert_eq!(resized.padding.len(), 2 * 64);
    assert_eq!(resized.targets[0].boxes, batch.targets[0].boxes);
}
