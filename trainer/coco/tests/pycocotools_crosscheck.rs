//! flow-coco's evaluator against pycocotools itself, on cases generated here.
//!
//! Each case is written to a temp dir as a COCO annotation file and a results file whose
//! detections carry both a box and an RLE mask. `pycocotools_eval.py` (run with the venv's
//! python from `scripts/coco/install`) computes pycocotools' twelve numbers for
//!
//! - bbox and segm at max detections 100 with the stock summarize,
//! - bbox and segm at max detections 500 with RF-DETR's summarize,
//!
//! with the detections fed as RF-DETR feeds them (bbox evaluation sees only boxes, segm only
//! masks), and segm at 100 with the results file unchanged (box areas decide size ranges).
//! Every number must be equal within 1e-4.
//!
//! Without the venv the tests print why they skip, unless `FLOW_REQUIRE_PYCOCOTOOLS=1`, which
//! makes them fail (CI sets it after running scripts/coco/install).

use std::path::{Path, PathBuf};
use std::process::Command;

use flow_coco::eval::{Feed, IouType, Params, Summarize, evaluate};
use flow_coco::format::{
    Annotation, AnnotationFile, Category, Detection, Image, RleCounts, RleJson, Segmentation,
};
use flow_coco::mask::Rle;

const TOLERANCE: f64 = 1e-4;

/// The configurations compared for every case: (iou type, max dets, summarize, feed).
const CONFIGS: [(IouType, usize, Summarize, Feed); 5] = [
    (IouType::Bbox, 100, Summarize::Stock, Feed::Rfdetr),
    (IouType::Segm, 100, Summarize::Stock, Feed::Rfdetr),
    (IouType::Bbox, 500, Summarize::Rfdetr, Feed::Rfdetr),
    (IouType::Segm, 500, Summarize::Rfdetr, Feed::Rfdetr),
    (IouType::Segm, 100, Summarize::Stock, Feed::AsLoaded),
];

fn config_arg((iou, max_dets, summarize, feed): (IouType, usize, Summarize, Feed)) -> String {
    let summarize = match summarize {
        Summarize::Stock => "stock",
        Summarize::Rfdetr => "rfdetr",
    };
    let feed = match feed {
        Feed::Rfdetr => "rfdetr",
        Feed::AsLoaded => "as-loaded",
    };
    format!("{}:{max_dets}:{summarize}:{feed}", iou.name())
}

// ---------------------------------------------------------------------------------------------
// The oracle.

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, or `None` (with the reason printed) when the tests should skip.
fn python() -> Option<PathBuf> {
    let env = repo_root().join("scripts/coco/env");
    let found = Command::new("bash")
        .arg(&env)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.exists());
    if found.is_none() {
        let why = "the pycocotools venv is missing: run scripts/coco/install";
        if std::env::var("FLOW_REQUIRE_PYCOCOTOOLS").as_deref() == Ok("1") {
            panic!("FLOW_REQUIRE_PYCOCOTOOLS=1 but {why}");
        }
        eprintln!("skipping the pycocotools cross-check: {why}");
    }
    found
}

fn oracle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pycocotools_eval.py")
}

fn run_oracle(python: &Path, args: &[String]) -> String {
    let out = Command::new(python)
        .arg(oracle_script())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pycocotools_eval.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Writes the case, runs both evaluators for every configuration and compares the numbers.
fn crosscheck(name: &str, gt: &AnnotationFile, dets: &[Detection]) {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let gt_path = dir.path().join("gt.json");
    let dt_path = dir.path().join("results.json");
    std::fs::write(&gt_path, serde_json::to_vec(gt).expect("gt json")).expect("write gt");
    std::fs::write(&dt_path, serde_json::to_vec(dets).expect("dt json")).expect("write dt");
    let mut args = vec!["eval".to_owned(), path_arg(&gt_path), path_arg(&dt_path)];
    args.extend(CONFIGS.iter().map(|&c| config_arg(c)));
    let expected: Vec<Vec<f64>> =
        serde_json::from_str(&run_oracle(&python, &args)).expect("oracle json");
    for (config, want) in CONFIGS.iter().zip(&expected) {
        let (iou, max_dets, summarize, feed) = *config;
        let params = Params::new(iou, max_dets, summarize, feed);
        let got = evaluate(gt, dets, &params)
            .expect("flow-coco evaluates the case")
            .summary;
        for (n, (g, w)) in got.stats.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= TOLERANCE,
                "case {name}, {}: stats[{n}] ({}) is {g}, pycocotools says {w}\n\
                 flow-coco:   {:?}\npycocotools: {want:?}",
                config_arg(*config),
                got.names()[n],
                got.stats
            );
        }
    }
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Case generation.

/// SplitMix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in lo..hi.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.float(0.0, 1.0) < p
    }
}

/// A case under construction.
struct Case {
    gt: AnnotationFile,
    dets: Vec<Detection>,
    next_ann_id: i64,
}

impl Case {
    /// `images` images of `w` × `h` and categories 1..=`categories`.
    fn new(images: usize, w: u32, h: u32, categories: i64) -> Case {
        let gt = AnnotationFile {
            images: (0..images)
                .map(|i| Image {
                    id: i as i64 + 1,
                    width: w,
                    height: h,
                    file_name: format!("{i}.jpg"),
                })
                .collect(),
            categories: (1..=categories)
                .map(|id| Category {
                    id,
                    name: format!("c{id}"),
                    supercategory: Some("shapes".to_owned()),
                })
                .collect(),
            annotations: Vec::new(),
        };
        Case {
            gt,
            dets: Vec::new(),
            next_ann_id: 1,
        }
    }

    fn size(&self, image_id: i64) -> (u32, u32) {
        let im = self
            .gt
            .images
            .iter()
            .find(|i| i.id == image_id)
            .expect("image exists");
        (im.height, im.width)
    }

    /// Adds a polygon ground-truth object; returns its polygons.
    fn gt(&mut self, image_id: i64, cat: i64, polys: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
        let (h, w) = self.size(image_id);
        let rle = Rle::from_polygons(&polys, h, w);
        let id = self.next_ann_id;
        self.next_ann_id += 1;
        self.gt.annotations.push(Annotation {
            id,
            image_id,
            category_id: cat,
            bbox: Some(extent(&polys).to_vec()),
            area: Some(rle.area() as f64),
            iscrowd: 0,
            segmentation: Some(Segmentation::Polygons(polys.clone())),
        });
        polys
    }

    /// Adds a crowd region (uncompressed RLE, as COCO stores crowds) covering a box.
    fn crowd(&mut self, image_id: i64, cat: i64, b: [f64; 4]) {
        let (h, w) = self.size(image_id);
        let rle = Rle::from_polygons(&[rect(b)], h, w);
        let id = self.next_ann_id;
        self.next_ann_id += 1;
        self.gt.annotations.push(Annotation {
            id,
            image_id,
            category_id: cat,
            bbox: Some(b.to_vec()),
            area: Some(rle.area() as f64),
            iscrowd: 1,
            segmentation: Some(Segmentation::Rle(RleJson {
                size: [h, w],
                counts: RleCounts::Runs(rle.counts),
            })),
        });
    }

    /// Adds a detection whose mask is `polys` rasterised and whose box is their extent.
    fn det(&mut self, image_id: i64, cat: i64, score: f64, polys: &[Vec<f64>]) {
        let (h, w) = self.size(image_id);
        let rle = Rle::from_polygons(polys, h, w);
        self.dets.push(Detection {
            image_id,
            category_id: cat,
            score,
            bbox: Some(extent(polys).to_vec()),
            segmentation: Some(Segmentation::Rle(RleJson::from_rle(&rle))),
        });
    }

    fn check(&self, name: &str) {
        crosscheck(name, &self.gt, &self.dets);
    }
}

/// The polygon of a box.
fn rect(b: [f64; 4]) -> Vec<f64> {
    let (x1, y1, x2, y2) = (b[0], b[1], b[0] + b[2], b[1] + b[3]);
    vec![x1, y1, x2, y1, x2, y2, x1, y2]
}

/// The box spanned by polygons, as COCO exports write `bbox`.
fn extent(polys: &[Vec<f64>]) -> [f64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in polys {
        for xy in p.chunks_exact(2) {
            x0 = x0.min(xy[0]);
            x1 = x1.max(xy[0]);
            y0 = y0.min(xy[1]);
            y1 = y1.max(xy[1]);
        }
    }
    [x0, y0, x1 - x0, y1 - y0]
}

/// A star-shaped blob of `n` vertices around (cx, cy) with radius about `r`.
fn blob(rng: &mut Rng, cx: f64, cy: f64, r: f64, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let a = std::f64::consts::TAU * (i as f64 + rng.float(-0.3, 0.3)) / n as f64;
        let rr = r * rng.float(0.65, 1.0);
        out.push(cx + rr * a.cos());
        out.push(cy + rr * a.sin());
    }
    out
}

/// `polys` moved by (dx, dy) and scaled by `s` about their first vertex.
fn jitter(polys: &[Vec<f64>], dx: f64, dy: f64, s: f64) -> Vec<Vec<f64>> {
    polys
        .iter()
        .map(|p| {
            let (ox, oy) = (p[0], p[1]);
            p.chunks_exact(2)
                .flat_map(|xy| [ox + (xy[0] - ox) * s + dx, oy + (xy[1] - oy) * s + dy])
                .collect()
        })
        .collect()
}

/// A random blob of radius in `r` somewhere inside a `w` × `h` image.
fn random_blob(rng: &mut Rng, w: u32, h: u32, r: (f64, f64)) -> Vec<Vec<f64>> {
    let r = rng.float(r.0, r.1);
    let cx = rng.float(r.min(w as f64 / 2.0), (w as f64 - r).max(w as f64 / 2.0));
    let cy = rng.float(r.min(h as f64 / 2.0), (h as f64 - r).max(h as f64 / 2.0));
    let n = rng.int(3, 12);
    vec![blob(rng, cx, cy, r, n)]
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// Detections equal to the ground truth score 1.0 everywhere defined.
#[test]
fn perfect_predictions() {
    let mut rng = Rng(1);
    let mut case = Case::new(6, 160, 120, 3);
    for img in 1..=6 {
        for _ in 0..rng.int(1, 6) {
            let cat = rng.int(1, 4) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, 160, 120, (4.0, 40.0)));
            let score = rng.float(0.1, 1.0);
            case.det(img, cat, score, &polys);
        }
    }
    case.check("perfect");
}

/// Half of the objects are never detected, the rest with varying overlap.
#[test]
fn missing_predictions() {
    let mut rng = Rng(2);
    let mut case = Case::new(8, 200, 150, 2);
    for img in 1..=8 {
        for _ in 0..rng.int(2, 7) {
            let cat = rng.int(1, 3) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, 200, 150, (5.0, 50.0)));
            if rng.chance(0.5) {
                let moved = jitter(
                    &polys,
                    rng.float(-4.0, 4.0),
                    rng.float(-4.0, 4.0),
                    rng.float(0.8, 1.2),
                );
                case.det(img, cat, rng.float(0.0, 1.0), &moved);
            }
        }
    }
    case.check("missing");
}

/// Images without ground truth: some with false positives, some with nothing at all.
#[test]
fn images_without_ground_truth() {
    let mut rng = Rng(3);
    let mut case = Case::new(10, 128, 128, 2);
    for img in 1..=10 {
        if img % 2 == 0 {
            let polys = case.gt(img, 1, random_blob(&mut rng, 128, 128, (6.0, 30.0)));
            case.det(
                img,
                1,
                rng.float(0.2, 0.9),
                &jitter(&polys, 1.0, -1.0, 1.05),
            );
        } else if img % 3 == 0 {
            for _ in 0..3 {
                let fp = random_blob(&mut rng, 128, 128, (4.0, 30.0));
                case.det(img, rng.int(1, 3) as i64, rng.float(0.0, 1.0), &fp);
            }
        }
    }
    case.check("no-gt-images");
}

/// Crowd regions: detections inside them are ignored, several may hit one, and they never
/// count as positives.
#[test]
fn crowd_regions() {
    let mut rng = Rng(4);
    let mut case = Case::new(5, 200, 200, 2);
    for img in 1..=5 {
        case.crowd(img, 1, [20.0, 20.0, 90.0, 80.0]);
        for _ in 0..3 {
            let cy = rng.float(40.0, 160.0);
            let polys = case.gt(img, 1, vec![blob(&mut rng, 150.0, cy, 15.0, 7)]);
            case.det(img, 1, rng.float(0.3, 1.0), &jitter(&polys, 2.0, 1.0, 1.0));
        }
        for _ in 0..rng.int(2, 6) {
            let (cx, cy, r) = (
                rng.float(35.0, 95.0),
                rng.float(35.0, 85.0),
                rng.float(5.0, 20.0),
            );
            let inside = vec![blob(&mut rng, cx, cy, r, 6)];
            case.det(img, 1, rng.float(0.0, 1.0), &inside);
        }
        // A crowd of the other category with nothing else of it in the image.
        case.crowd(img, 2, [120.0, 0.0, 60.0, 30.0]);
        case.det(img, 2, 0.5, &[rect([125.0, 2.0, 30.0, 20.0])]);
    }
    case.check("crowd");
}

/// Detections with the right shape and the wrong category.
#[test]
fn class_confusion() {
    let mut rng = Rng(5);
    let mut case = Case::new(6, 160, 160, 4);
    for img in 1..=6 {
        for _ in 0..4 {
            let cat = rng.int(1, 5) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, 160, 160, (8.0, 45.0)));
            let guess = if rng.chance(0.4) { (cat % 4) + 1 } else { cat };
            case.det(img, guess, rng.float(0.0, 1.0), &polys);
        }
    }
    case.check("confusion");
}

/// Equal scores within and across images: the stable sort keeps file order.
#[test]
fn score_ties() {
    let mut rng = Rng(6);
    let mut case = Case::new(6, 120, 120, 2);
    for img in 1..=6 {
        for _ in 0..5 {
            let cat = rng.int(1, 3) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, 120, 120, (5.0, 30.0)));
            let score = [0.5, 0.75, 0.5, 1.0][rng.int(0, 4)];
            let moved = jitter(&polys, rng.float(-5.0, 5.0), rng.float(-5.0, 5.0), 1.0);
            case.det(img, cat, score, &moved);
            if rng.chance(0.5) {
                let fp = random_blob(&mut rng, 120, 120, (5.0, 30.0));
                case.det(img, cat, score, &fp);
            }
        }
    }
    case.check("ties");
}

/// One image with 300 detections for 120 objects: max detections 100 and 500 differ, and
/// AR@1 / AR@10 cut the ranked list.
#[test]
fn more_than_100_detections_on_one_image() {
    let mut rng = Rng(7);
    let mut case = Case::new(2, 640, 480, 2);
    for _ in 0..120 {
        let cat = rng.int(1, 3) as i64;
        let polys = case.gt(1, cat, random_blob(&mut rng, 640, 480, (4.0, 30.0)));
        case.det(
            1,
            cat,
            rng.float(0.0, 1.0),
            &jitter(&polys, rng.float(-2.0, 2.0), 0.0, 1.0),
        );
        let near = jitter(&polys, rng.float(-8.0, 8.0), rng.float(-8.0, 8.0), 0.9);
        case.det(1, cat, rng.float(0.0, 1.0), &near);
    }
    for _ in 0..60 {
        let fp = random_blob(&mut rng, 640, 480, (4.0, 30.0));
        case.det(1, rng.int(1, 3) as i64, rng.float(0.0, 1.0), &fp);
    }
    let polys = case.gt(2, 1, random_blob(&mut rng, 640, 480, (10.0, 60.0)));
    case.det(2, 1, 0.9, &polys);
    case.check("over-100");
}

/// Small, medium and large objects, including areas right on 32² and 96², and detections
/// whose size range differs from their object's.
#[test]
fn all_three_area_ranges() {
    let mut rng = Rng(8);
    let mut case = Case::new(6, 400, 300, 2);
    for img in 1..=6 {
        for (r, cat) in [((2.0, 14.0), 1), ((20.0, 50.0), 2), ((60.0, 140.0), 1)] {
            let polys = case.gt(img, cat, random_blob(&mut rng, 400, 300, r));
            let moved = jitter(
                &polys,
                rng.float(-3.0, 3.0),
                rng.float(-3.0, 3.0),
                rng.float(0.85, 1.15),
            );
            case.det(img, cat, rng.float(0.0, 1.0), &moved);
        }
        // Squares of exactly 32 × 32 and 96 × 96 pixels: areas on the range bounds.
        let x = 10.0 * img as f64;
        case.gt(img, 2, vec![rect([x, 10.0, 32.0, 32.0])]);
        case.det(img, 2, 0.6, &[rect([x + 1.0, 10.0, 32.0, 32.0])]);
        case.gt(img, 1, vec![rect([250.0, 150.0, 96.0, 96.0])]);
        case.det(img, 1, 0.4, &[rect([252.0, 150.0, 96.0, 96.0])]);
    }
    case.check("areas");
}

/// Objects made of several polygons (occluded objects), detected as one mask.
#[test]
fn multi_part_polygons() {
    let mut rng = Rng(9);
    let mut case = Case::new(5, 200, 160, 2);
    for img in 1..=5 {
        for _ in 0..3 {
            let cat = rng.int(1, 3) as i64;
            let parts = rng.int(2, 4);
            let (cx, cy) = (rng.float(30.0, 170.0), rng.float(30.0, 130.0));
            let polys: Vec<Vec<f64>> = (0..parts)
                .map(|_| {
                    let (x, y) = (cx + rng.float(-25.0, 25.0), cy + rng.float(-20.0, 20.0));
                    let r = rng.float(5.0, 18.0);
                    blob(&mut rng, x, y, r, 6)
                })
                .collect();
            let polys = case.gt(img, cat, polys);
            let moved = jitter(&polys, rng.float(-2.0, 2.0), rng.float(-2.0, 2.0), 1.0);
            case.det(img, cat, rng.float(0.0, 1.0), &moved);
        }
    }
    case.check("multi-part");
}

/// A category with ground truth and no detection (scores 0), one with neither (left out of
/// the mean), one only predicted (no ground truth: left out), and detections of a category
/// the file does not have (dropped).
#[test]
fn class_never_predicted() {
    let mut rng = Rng(10);
    let mut case = Case::new(4, 150, 150, 4);
    for img in 1..=4 {
        let polys = case.gt(img, 1, random_blob(&mut rng, 150, 150, (10.0, 40.0)));
        case.det(img, 1, 0.8, &polys);
        case.gt(img, 2, random_blob(&mut rng, 150, 150, (10.0, 40.0)));
        let fp = random_blob(&mut rng, 150, 150, (10.0, 40.0));
        case.det(img, 3, 0.7, &fp);
        case.det(img, 99, 0.9, &fp);
    }
    case.check("never-predicted");
}

/// The same detection several times (same or different scores): one is a true positive, the
/// rest false positives.
#[test]
fn duplicate_detections() {
    let mut rng = Rng(11);
    let mut case = Case::new(4, 160, 120, 2);
    for img in 1..=4 {
        for _ in 0..3 {
            let cat = rng.int(1, 3) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, 160, 120, (6.0, 35.0)));
            let score = rng.float(0.2, 1.0);
            case.det(img, cat, score, &polys);
            case.det(img, cat, score, &polys);
            case.det(img, cat, score * 0.5, &jitter(&polys, 1.0, 1.0, 1.0));
        }
    }
    case.check("duplicates");
}

/// Masks touching and crossing the image borders (polygons partly outside the image).
#[test]
fn border_masks() {
    let mut rng = Rng(12);
    let (w, h) = (120u32, 90u32);
    let mut case = Case::new(4, w, h, 2);
    for img in 1..=4 {
        let corners = [
            (0.0, 0.0),
            (w as f64, 0.0),
            (0.0, h as f64),
            (w as f64, h as f64),
            (w as f64 / 2.0, 0.0),
        ];
        for (cx, cy) in corners {
            let cat = rng.int(1, 3) as i64;
            let r = rng.float(8.0, 30.0);
            let polys = case.gt(img, cat, vec![blob(&mut rng, cx, cy, r, 8)]);
            let moved = jitter(&polys, rng.float(-3.0, 3.0), rng.float(-3.0, 3.0), 1.0);
            case.det(img, cat, rng.float(0.0, 1.0), &moved);
        }
        case.gt(img, 1, vec![rect([0.0, 0.0, w as f64, h as f64])]);
        case.det(
            img,
            1,
            0.3,
            &[rect([-5.0, -5.0, w as f64 + 10.0, h as f64 + 10.0])],
        );
    }
    case.check("border");
}

/// Boxes whose IoU lies exactly on 0.5 and 0.75, and annotation ids starting at 0 (a match
/// to annotation id 0 is a false positive in pycocotools).
#[test]
fn thresholds_and_annotation_id_zero() {
    let mut case = Case::new(2, 100, 100, 1);
    case.next_ann_id = 0;
    case.gt(1, 1, vec![rect([0.0, 0.0, 40.0, 40.0])]);
    case.det(1, 1, 0.9, &[rect([0.0, 0.0, 40.0, 40.0])]);
    case.gt(1, 1, vec![rect([50.0, 50.0, 20.0, 20.0])]);
    case.det(1, 1, 0.8, &[rect([50.0, 50.0, 40.0, 20.0])]); // IoU 0.5
    case.gt(2, 1, vec![rect([10.0, 10.0, 40.0, 40.0])]);
    case.det(2, 1, 0.7, &[rect([10.0, 10.0, 40.0, 30.0])]); // IoU 0.75
    case.check("thresholds-id0");
}

/// Many images, categories, sizes, overlaps, false positives, misses and crowds at random.
#[test]
fn larger_random_case() {
    let mut rng = Rng(13);
    let (w, h) = (320u32, 240u32);
    let mut case = Case::new(60, w, h, 5);
    for img in 1..=60 {
        if rng.chance(0.1) {
            let x = rng.float(0.0, 200.0);
            case.crowd(
                img,
                rng.int(1, 6) as i64,
                [x, rng.float(0.0, 150.0), 80.0, 60.0],
            );
        }
        for _ in 0..rng.int(0, 12) {
            let cat = rng.int(1, 6) as i64;
            let polys = case.gt(img, cat, random_blob(&mut rng, w, h, (3.0, 90.0)));
            if rng.chance(0.8) {
                let guess = if rng.chance(0.1) {
                    rng.int(1, 6) as i64
                } else {
                    cat
                };
                let moved = jitter(
                    &polys,
                    rng.float(-6.0, 6.0),
                    rng.float(-6.0, 6.0),
                    rng.float(0.7, 1.3),
                );
                case.det(
                    img,
                    guess,
                    (rng.float(0.0, 1.0) * 100.0).round() / 100.0,
                    &moved,
                );
            }
        }
        for _ in 0..rng.int(0, 5) {
            let fp = random_blob(&mut rng, w, h, (3.0, 60.0));
            case.det(img, rng.int(1, 6) as i64, rng.float(0.0, 0.6), &fp);
        }
    }
    case.check("random");
}

/// Polygon rasterisation equals pycocotools' on random polygons (convex, star-shaped,
/// self-intersecting, multi-part, off the image, on half pixels).
#[test]
fn polygon_rasterisation_matches_pycocotools() {
    let Some(python) = python() else { return };
    let mut rng = Rng(14);
    let mut cases: Vec<(u32, u32, Vec<Vec<f64>>)> = Vec::new();
    for n in 0..1000 {
        let (w, h) = (rng.int(5, 80) as u32, rng.int(5, 80) as u32);
        let parts = 1 + n % 3;
        let polys = (0..parts)
            .map(|_| {
                let k = rng.int(3, 10);
                if n % 4 == 0 {
                    // Arbitrary (often self-intersecting), partly outside the image.
                    (0..2 * k)
                        .map(|_| rng.float(-10.0, w.max(h) as f64 + 10.0))
                        .collect()
                } else if n % 4 == 1 {
                    // Vertices on half and whole pixels.
                    (0..2 * k)
                        .map(|_| (rng.float(0.0, w.min(h) as f64) * 2.0).round() / 2.0)
                        .collect()
                } else {
                    let (cx, cy) = (rng.float(0.0, w as f64), rng.float(0.0, h as f64));
                    let r = rng.float(1.0, 40.0);
                    blob(&mut rng, cx, cy, r, k)
                }
            })
            .collect();
        cases.push((h, w, polys));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("polygons.json");
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|(h, w, polys)| serde_json::json!({"h": h, "w": w, "polys": polys}))
        .collect();
    std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("write");
    let expected: Vec<String> = serde_json::from_str(&run_oracle(
        &python,
        &["polygons".to_owned(), path_arg(&path)],
    ))
    .expect("oracle json");
    for ((h, w, polys), want) in cases.iter().zip(&expected) {
        let got = Rle::from_polygons(polys, *h, *w).to_compressed();
        assert_eq!(&got, want, "polygons {polys:?} on {h}x{w}");
    }
}
