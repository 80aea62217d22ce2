//! The evaluator's documented behaviours on small hand-made cases whose numbers are known
//! without running pycocotools (tests/pycocotools_crosscheck.rs compares with it directly).

use std::path::Path;

use flow_coco::eval::{EvalError, Feed, IouType, Params, Summarize, evaluate, evaluate_files};
use flow_coco::format::{
    Annotation, AnnotationFile, Category, Detection, Image, RleJson, Segmentation,
};
use flow_coco::mask::Rle;

const W: u32 = 200;
const H: u32 = 200;

fn file(images: i64, categories: i64) -> AnnotationFile {
    AnnotationFile {
        images: (1..=images)
            .map(|id| Image {
                id,
                width: W,
                height: H,
                file_name: String::new(),
            })
            .collect(),
        categories: (1..=categories)
            .map(|id| Category {
                id,
                name: format!("c{id}"),
                supercategory: None,
            })
            .collect(),
        annotations: Vec::new(),
    }
}

fn rect(b: [f64; 4]) -> Vec<f64> {
    vec![
        b[0],
        b[1],
        b[0] + b[2],
        b[1],
        b[0] + b[2],
        b[1] + b[3],
        b[0],
        b[1] + b[3],
    ]
}

fn add_gt(gt: &mut AnnotationFile, id: i64, image_id: i64, cat: i64, b: [f64; 4], crowd: bool) {
    gt.annotations.push(Annotation {
        id,
        image_id,
        category_id: cat,
        bbox: Some(b.to_vec()),
        area: Some(b[2] * b[3]),
        iscrowd: u8::from(crowd),
        segmentation: Some(Segmentation::Polygons(vec![rect(b)])),
    });
}

/// A detection with the box `b` and the mask of the box `m`.
fn det(image_id: i64, cat: i64, score: f64, b: [f64; 4], m: [f64; 4]) -> Detection {
    let rle = Rle::from_polygons(&[rect(m)], H, W);
    Detection {
        image_id,
        category_id: cat,
        score,
        bbox: Some(b.to_vec()),
        segmentation: Some(Segmentation::Rle(RleJson::from_rle(&rle))),
    }
}

fn stats(gt: &AnnotationFile, dets: &[Detection], params: &Params) -> [f64; 12] {
    evaluate(gt, dets, params).expect("evaluates").summary.stats
}

/// Equal up to the ε of pycocotools' precision `tp / (tp + fp + ε)`.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn stock(iou: IouType) -> Params {
    Params::new(iou, 100, Summarize::Stock, Feed::Rfdetr)
}

/// Two images, one medium box each, detected exactly.
fn perfect() -> (AnnotationFile, Vec<Detection>) {
    let mut gt = file(2, 1);
    let b1 = [10.0, 10.0, 50.0, 40.0];
    let b2 = [100.0, 100.0, 40.0, 40.0];
    add_gt(&mut gt, 1, 1, 1, b1, false);
    add_gt(&mut gt, 2, 2, 1, b2, false);
    (gt, vec![det(1, 1, 0.9, b1, b1), det(2, 1, 0.8, b2, b2)])
}

#[test]
fn perfect_predictions_score_one_and_empty_ranges_minus_one() {
    let (gt, dets) = perfect();
    for iou in [IouType::Bbox, IouType::Segm] {
        let s = stats(&gt, &dets, &stock(iou));
        // AP, AP50, AP75, APs (no small object), APm, APl (none), AR1, AR10, AR100, ARs, ARm, ARl.
        assert_eq!(
            s,
            [
                1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0
            ],
            "{iou:?}"
        );
    }
}

#[test]
fn stock_summary_has_no_ap_at_500_and_rfdetr_summary_does() {
    let (gt, dets) = perfect();
    let stock = stats(
        &gt,
        &dets,
        &Params::new(IouType::Bbox, 500, Summarize::Stock, Feed::Rfdetr),
    );
    let rfdetr = stats(
        &gt,
        &dets,
        &Params::new(IouType::Bbox, 500, Summarize::Rfdetr, Feed::Rfdetr),
    );
    assert_eq!(stock[0], -1.0);
    assert!(close(rfdetr[0], 1.0));
    assert_eq!(stock[1..], rfdetr[1..]);
}

#[test]
fn a_match_to_annotation_id_zero_is_a_false_positive() {
    let (mut gt, dets) = perfect();
    gt.annotations[0].id = 0;
    let s = stats(&gt, &dets, &stock(IouType::Bbox));
    // Image 1's detection ranks first and counts as a false positive: precision 0.5 at recall
    // 0.5, so AP = 51 / 101 × 0.5 (recall thresholds 0.00..0.50 read 0.5, the rest 0).
    assert!(close(s[0], 0.5 * 51.0 / 101.0), "{s:?}");
    assert_eq!(s[8], 0.5);
}

#[test]
fn detections_on_crowd_regions_are_ignored() {
    let (mut gt, mut dets) = perfect();
    let crowd = [120.0, 10.0, 70.0, 60.0];
    add_gt(&mut gt, 3, 1, 1, crowd, true);
    dets.push(det(
        1,
        1,
        0.95,
        [125.0, 15.0, 30.0, 30.0],
        [125.0, 15.0, 30.0, 30.0],
    ));
    dets.push(det(
        1,
        1,
        0.95,
        [150.0, 20.0, 30.0, 30.0],
        [150.0, 20.0, 30.0, 30.0],
    ));
    for iou in [IouType::Bbox, IouType::Segm] {
        assert!(close(stats(&gt, &dets, &stock(iou))[0], 1.0), "{iou:?}");
    }
}

#[test]
fn a_category_without_detections_scores_zero_and_one_without_ground_truth_is_left_out() {
    let (mut gt, mut dets) = perfect();
    gt.categories.extend((2..=3).map(|id| Category {
        id,
        name: String::new(),
        supercategory: None,
    }));
    add_gt(&mut gt, 3, 1, 2, [100.0, 10.0, 40.0, 40.0], false);
    dets.push(det(
        2,
        3,
        0.99,
        [0.0, 0.0, 40.0, 40.0],
        [0.0, 0.0, 40.0, 40.0],
    ));
    dets.push(det(
        2,
        42,
        0.99,
        [0.0, 0.0, 40.0, 40.0],
        [0.0, 0.0, 40.0, 40.0],
    ));
    // Category 1: 1.0, category 2: 0.0, category 3 (no ground truth) and 42 (unknown): out.
    assert!(close(stats(&gt, &dets, &stock(IouType::Bbox))[0], 0.5));
}

#[test]
fn tied_scores_keep_file_order() {
    let mut gt = file(1, 1);
    let b = [10.0, 10.0, 50.0, 50.0];
    add_gt(&mut gt, 1, 1, 1, b, false);
    let hit = det(1, 1, 0.5, b, b);
    let miss = det(
        1,
        1,
        0.5,
        [120.0, 120.0, 50.0, 50.0],
        [120.0, 120.0, 50.0, 50.0],
    );
    let params = stock(IouType::Bbox);
    assert!(close(
        stats(&gt, &[hit.clone(), miss.clone()], &params)[0],
        1.0
    ));
    // The false positive first: precision 0.5 at the only recall, 1.0.
    assert!(close(stats(&gt, &[miss, hit], &params)[0], 0.5));
}

#[test]
fn iou_exactly_on_a_threshold_matches() {
    let mut gt = file(1, 1);
    add_gt(&mut gt, 1, 1, 1, [0.0, 0.0, 40.0, 40.0], false);
    // IoU = 1600 / 3200 = 0.5 exactly: a match at 0.5, nothing above.
    let d = det(1, 1, 0.9, [0.0, 0.0, 80.0, 40.0], [0.0, 0.0, 80.0, 40.0]);
    let s = stats(&gt, &[d], &stock(IouType::Bbox));
    assert!(close(s[1], 1.0) && s[2] == 0.0 && close(s[0], 0.1), "{s:?}");
}

#[test]
fn fed_as_loaded_box_areas_decide_segm_size_ranges() {
    let mut gt = file(1, 1);
    let small = [10.0, 10.0, 20.0, 20.0];
    add_gt(&mut gt, 1, 1, 1, small, false);
    // A confident false positive with a small mask (400 px) and a large box (150 × 150).
    let fp = det(
        1,
        1,
        0.9,
        [40.0, 40.0, 150.0, 150.0],
        [60.0, 60.0, 20.0, 20.0],
    );
    let dets = [fp, det(1, 1, 0.8, small, small)];
    let rfdetr = stats(
        &gt,
        &dets,
        &Params::new(IouType::Segm, 100, Summarize::Stock, Feed::Rfdetr),
    );
    let as_loaded = stats(
        &gt,
        &dets,
        &Params::new(IouType::Segm, 100, Summarize::Stock, Feed::AsLoaded),
    );
    // Mask area: the false positive is small and counts; box area: it is large and ignored.
    assert!(close(rfdetr[3], 0.5), "{rfdetr:?}");
    assert!(close(as_loaded[3], 1.0), "{as_loaded:?}");
}

#[test]
fn max_detections_cut_recall() {
    let mut gt = file(1, 1);
    let mut dets = Vec::new();
    for n in 0..12 {
        let b = [15.0 * n as f64, 0.0, 10.0, 10.0];
        add_gt(&mut gt, n + 1, 1, 1, b, false);
        dets.push(det(1, 1, 1.0 - n as f64 / 100.0, b, b));
    }
    let s = stats(&gt, &dets, &stock(IouType::Bbox));
    assert!(
        close(s[6], 1.0 / 12.0) && close(s[7], 10.0 / 12.0) && s[8] == 1.0,
        "{s:?}"
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let (mut gt, mut dets) = perfect();
    dets.push(det(7, 1, 0.5, [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]));
    let err = evaluate(&gt, &dets, &stock(IouType::Bbox)).expect_err("image 7 is unknown");
    assert!(
        matches!(
            err,
            EvalError::UnknownImage {
                index: 2,
                image_id: 7
            }
        ),
        "{err}"
    );

    dets.pop();
    gt.annotations[1].area = None;
    let err = evaluate(&gt, &dets, &stock(IouType::Segm)).expect_err("area is missing");
    assert_eq!(
        err.to_string(),
        "annotation id 2 has no `area`, which segm evaluation needs"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let (gt_path, dt_path) = (dir.path().join("gt.json"), dir.path().join("pred.json"));
    std::fs::write(&gt_path, serde_json::to_vec(&gt).expect("json")).expect("write");
    std::fs::write(&dt_path, b"[{\"image_id\": 1,\n \"score\": 0.5}]").expect("write");
    let err = evaluate_files(&gt_path, &dt_path, &stock(IouType::Bbox)).expect_err("bad results");
    let text = err.to_string();
    assert!(text.contains("pred.json:2:"), "{text}");
    assert!(text.contains("missing field `category_id`"), "{text}");
    let missing = evaluate_files(
        Path::new("/nonexistent/gt.json"),
        &dt_path,
        &stock(IouType::Bbox),
    );
    assert!(
        missing
            .expect_err("no file")
            .to_string()
            .contains("/nonexistent/gt.json")
    );
}

#[test]
fn printed_summary_matches_pycocotools_layout() {
    let (gt, dets) = perfect();
    let summary = evaluate(&gt, &dets, &stock(IouType::Segm))
        .expect("evaluates")
        .summary;
    let text = summary.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(
        lines[0],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"
    );
    assert_eq!(
        lines[3],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000"
    );
    assert_eq!(
        lines[6],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000"
    );
    let json: serde_json::Value = serde_json::from_str(&summary.to_json()).expect("json");
    assert_eq!(json["metrics"]["AR100"], 1.0);
    assert_eq!(json["stats"].as_array().map(Vec::len), Some(12));
}
