//! Each loss against values computed by hand (scalar formulas of spec §5) on tiny tensors,
//! the box helpers, point sampling, and the whole criterion on a prediction that equals its
//! target.

use flow_trainer::model::seg_head::MaskLogits;
use flow_trainer::model::{ModelOutput, Predictions};
use flow_trainer::train::boxes::{cxcywh_to_xyxy, generalized_box_iou, paired_iou_giou};
use flow_trainer::train::loss::{Criterion, ia_bce, point_mask_losses};
use flow_trainer::train::points::{point_sample, uncertain_points};
use flow_trainer::train::targets::ImageTargets;
use tch::{Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn giou_by_hand() {
    let a = Tensor::from_slice(&[0.0f32, 0.0, 2.0, 2.0]).view([1, 4]);
    let b = Tensor::from_slice(&[1.0f32, 1.0, 3.0, 3.0]).view([1, 4]);
    // Intersection 1, union 7, hull 9.
    let want = 1.0 / 7.0 - (9.0 - 7.0) / 9.0;
    close(scalar(&generalized_box_iou(&a, &b).view([-1])), want, 1e-6);
    let (iou, giou) = paired_iou_giou(&a, &b);
    close(scalar(&iou.view([-1])), 1.0 / 7.0, 1e-6);
    close(scalar(&giou.view([-1])), want, 1e-6);
    // Disjoint boxes: IoU 0, GIoU −(hull − union)/hull.
    let c = Tensor::from_slice(&[4.0f32, 0.0, 5.0, 1.0]).view([1, 4]);
    close(
        scalar(&generalized_box_iou(&a, &c).view([-1])),
        -(10.0 - 5.0) / 10.0,
        1e-6,
    );
    let cxcy = Tensor::from_slice(&[0.5f32, 0.5, 0.2, 0.4]).view([1, 4]);
    let xyxy: Vec<f32> = Vec::try_from(cxcywh_to_xyxy(&cxcy).view([-1])).unwrap();
    for (g, w) in xyxy.iter().zip([0.4f32, 0.3, 0.6, 0.7]) {
        close(*g as f64, w as f64, 1e-6);
    }
}

#[test]
fn ia_bce_by_hand() {
    // One image, two queries, two logits; query 0 is matched to class 1 with IoU 0.5.
    let x = [[0.0, 1.0], [-1.0, 2.0]];
    let logits = Tensor::from_slice(&[0.0f32, 1.0, -1.0, 2.0]).view([1, 2, 2]);
    let loss = ia_bce(
        &logits,
        &Tensor::from_slice(&[0i64]),
        &Tensor::from_slice(&[1i64]),
        &Tensor::from_slice(&[0.5f32]),
        2.0,
    );
    let neg = |x: f64| sigmoid(x).powi(2) * -(1.0 - sigmoid(x)).ln();
    let p = sigmoid(x[0][1]);
    let t = (p.powf(0.25) * 0.5f64.powf(0.75)).max(0.01);
    let pos = -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
    let want = (pos + neg(x[0][0]) + neg(x[1][0]) + neg(x[1][1])) / 2.0;
    close(scalar(&loss), want, 1e-6);
}

#[test]
fn ia_bce_target_is_floored_at_one_percent() {
    let logits = Tensor::from_slice(&[-8.0f32]).view([1, 1, 1]);
    let loss = ia_bce(
        &logits,
        &Tensor::from_slice(&[0i64]),
        &Tensor::from_slice(&[0i64]),
        &Tensor::from_slice(&[0.0f32]),
        1.0,
    );
    let p = sigmoid(-8.0);
    let t = 0.01;
    close(
        scalar(&loss),
        -(t * p.ln() + (1.0 - t) * (1.0 - p).ln()),
        1e-5,
    );
}

#[test]
fn point_mask_losses_by_hand() {
    let logits = Tensor::from_slice(&[0.0f32, 0.0, 2.0, -2.0]).view([2, 2]);
    let labels = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0]).view([2, 2]);
    let (ce, dice) = point_mask_losses(&logits, &labels, 2.0);
    let bce = |x: f64, y: f64| -(y * sigmoid(x).ln() + (1.0 - y) * (1.0 - sigmoid(x)).ln());
    let ce_want =
        ((bce(0.0, 1.0) + bce(0.0, 0.0)) / 2.0 + (bce(2.0, 1.0) + bce(-2.0, 1.0)) / 2.0) / 2.0;
    close(scalar(&ce), ce_want, 1e-6);
    // Mask 0: p = (.5, .5), t = (1, 0): 1 − (2·0.5 + 1)/(1 + 1 + 1) = 1/3.
    let (p2, p3) = (sigmoid(2.0), sigmoid(-2.0));
    let d1 = 1.0 - (2.0 * (p2 + p3) + 1.0) / (p2 + p3 + 2.0 + 1.0);
    close(scalar(&dice), (1.0 / 3.0 + d1) / 2.0, 1e-6);
}

#[test]
fn point_sample_reads_pixel_centres() {
    // A 2×2 image; the centre of pixel (row 1, col 0) is at x = 0.25, y = 0.75.
    let img = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 1, 2, 2]);
    let pts = Tensor::from_slice(&[0.25f32, 0.75, 0.5, 0.5]).view([1, 2, 2]);
    let v: Vec<f32> = Vec::try_from(point_sample(&img, &pts).view([-1])).unwrap();
    close(v[0] as f64, 3.0, 1e-6);
    close(v[1] as f64, 2.5, 1e-6);
}

#[test]
fn uncertain_points_prefer_the_decision_boundary() {
    tch::manual_seed(3);
    // A ramp crossing 0 at x = 0.5: |logit| grows with the distance to the boundary (zero
    // padding only changes the outermost half pixel of a 64-pixel side).
    let n = 64;
    let l: Vec<f32> = (0..n * n)
        .map(|i| 20.0 * (((i % n) as f32 + 0.5) / n as f32 - 0.5))
        .collect();
    let logits = Tensor::from_slice(&l).view([1, 1, n as i64, n as i64]);
    let pts = uncertain_points(&logits, 40);
    assert_eq!(pts.size(), vec![1, 40, 2]);
    let xs: Vec<f32> = Vec::try_from(pts.get(0).select(1, 0).narrow(0, 0, 30)).unwrap();
    // The 30 most uncertain of 120 uniform candidates lie near the boundary (about a quarter
    // of the width around it), or in the outermost half pixel.
    let edge = 0.5 / n as f32;
    assert!(
        xs.iter()
            .all(|x| (x - 0.5).abs() < 0.2 || *x < edge || *x > 1.0 - edge),
        "{xs:?}"
    );
    let rest: Vec<f32> = Vec::try_from(pts.get(0).select(1, 0).narrow(0, 30, 10)).unwrap();
    assert_eq!(rest.len(), 10, "a quarter of the points are uniform");
}

fn perfect_prediction() -> (ModelOutput, Vec<ImageTargets>) {
    // One image, Q = 2, three logits; query 1 equals the target (class 2, box, mask).
    let target_box = [0.5f32, 0.5, 0.5, 0.5];
    let boxes = Tensor::from_slice(&[0.1f32, 0.1, 0.05, 0.05, 0.5, 0.5, 0.5, 0.5]).view([1, 2, 4]);
    let logits = Tensor::from_slice(&[-9.0f32, -9.0, -9.0, -9.0, -9.0, 9.0]).view([1, 2, 3]);
    // Mask logits +20 inside the centre square, −20 outside (both queries).
    let mut m = vec![-20.0f32; 8 * 8];
    for y in 2..6 {
        for x in 2..6 {
            m[y * 8 + x] = 20.0;
        }
    }
    let spatial = Tensor::from_slice(&m).view([1, 1, 8, 8]);
    let pred = || Predictions {
        logits: logits.copy(),
        boxes: boxes.copy(),
        masks: MaskLogits {
            spatial: spatial.copy(),
            queries: Tensor::from_slice(&[1.0f32, 1.0]).view([1, 2, 1]),
            bias: Tensor::zeros([1], CPU),
        },
    };
    let mut tm = vec![0.0f32; 32 * 32];
    for y in 8..24 {
        for x in 8..24 {
            tm[y * 32 + x] = 1.0;
        }
    }
    let targets = vec![ImageTargets {
        labels: Tensor::from_slice(&[2i64]),
        boxes: Tensor::from_slice(&target_box).view([1, 4]),
        masks: Tensor::from_slice(&tm).view([1, 32, 32]),
        len: 1,
    }];
    (
        ModelOutput {
            main: pred(),
            aux: vec![pred()],
            enc: pred(),
        },
        targets,
    )
}

#[test]
fn criterion_on_a_perfect_prediction() {
    tch::manual_seed(0);
    let (out, targets) = perfect_prediction();
    let l = Criterion::default().forward(&out, &targets, 1);
    let keys: Vec<&str> = l.terms.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 15);
    assert_eq!(
        &keys[..5],
        &[
            "loss_ce",
            "loss_bbox",
            "loss_giou",
            "loss_mask_ce",
            "loss_mask_dice"
        ]
    );
    assert_eq!(keys[5], "loss_ce_0");
    assert_eq!(keys[14], "loss_mask_dice_enc");
    for (k, v, _) in &l.terms {
        let v = scalar(v);
        match k.trim_end_matches("_0").trim_end_matches("_enc") {
            "loss_bbox" | "loss_giou" => close(v, 0.0, 1e-6),
            // Checked against an inverted mask below: uncertainty sampling puts most points on
            // the mask's edge, where bilinear values are not saturated.
            "loss_mask_ce" | "loss_mask_dice" => {}
            // Positive p ≈ 1 with target t = p^0.25 ≈ 1: tiny; negatives p ≈ 1e-4: tiny.
            "loss_ce" => assert!(v < 1e-3, "{k} = {v}"),
            other => panic!("unexpected key {other}"),
        }
    }
    let class_error = &l.logged.iter().find(|(k, _)| k == "class_error").unwrap().1;
    close(scalar(class_error), 0.0, 1e-9);
    let card = &l
        .logged
        .iter()
        .find(|(k, _)| k == "cardinality_error")
        .unwrap()
        .1;
    close(scalar(card), 0.0, 1e-9);
    // The inverted mask (query feature negated) costs much more.
    let inverted = |p: &Predictions| Predictions {
        logits: p.logits.copy(),
        boxes: p.boxes.copy(),
        masks: MaskLogits {
            spatial: p.masks.spatial.copy(),
            queries: -&p.masks.queries,
            bias: p.masks.bias.copy(),
        },
    };
    let bad = ModelOutput {
        main: inverted(&out.main),
        aux: vec![],
        enc: inverted(&out.enc),
    };
    tch::manual_seed(0);
    let lb = Criterion::default().forward(&bad, &targets, 1);
    for i in [3, 4] {
        let (good, worse) = (scalar(&l.terms[i].1), scalar(&lb.terms[i].1));
        assert!(
            worse > 2.0 * good,
            "{}: {good} vs inverted {worse}",
            l.terms[i].0
        );
    }
    // Total is the weighted sum.
    let sum: f64 = l.terms.iter().map(|(_, v, w)| scalar(v) * w).sum();
    close(scalar(&l.total), sum, 1e-5);
}

#[test]
fn losses_normalise_by_boxes_times_groups() {
    tch::manual_seed(0);
    let (out, targets) = perfect_prediction();
    // Shift the box so that L1 is known: |0.1| on cx for query 1.
    let shifted = |p: &Predictions| Predictions {
        logits: p.logits.copy(),
        boxes: Tensor::from_slice(&[0.1f32, 0.1, 0.05, 0.05, 0.6, 0.5, 0.5, 0.5]).view([1, 2, 4]),
        masks: MaskLogits {
            spatial: p.masks.spatial.copy(),
            queries: p.masks.queries.copy(),
            bias: p.masks.bias.copy(),
        },
    };
    let out = ModelOutput {
        main: shifted(&out.main),
        aux: vec![],
        enc: shifted(&out.enc),
    };
    // One group: L1 = 0.1 / 1 box.
    let l1 = Criterion::default().forward(&out, &targets, 1);
    close(scalar(&l1.terms[1].1), 0.1, 1e-6);
    // Two groups of one query each: query 0 (group 0) and query 1 (group 1) both match the
    // one target; the sum is divided by 1 box × 2 groups.
    let l2 = Criterion::default().forward(&out, &targets, 2);
    let q0 = 0.4f64 + 0.4 + 0.45 + 0.45;
    close(scalar(&l2.terms[1].1), (q0 + 0.1) / 2.0, 1e-6);
}

#[test]
fn outputs_computed_together_equal_outputs_alone() {
    tch::set_num_threads(1);
    tch::manual_seed(11);
    let f = (Kind::Float, Device::Cpu);
    let pred = || Predictions {
        logits: Tensor::randn([2, 6, 3], f),
        boxes: Tensor::rand([2, 6, 4], f) * 0.5 + 0.1,
        // Mask logits that do not vary over a query's pixels: the matching then does not
        // depend on the random points, so it is the same alone and together.
        masks: MaskLogits {
            spatial: Tensor::ones([2, 4, 8, 8], f) * 0.1,
            queries: Tensor::randn([2, 6, 4], f),
            bias: Tensor::zeros([1], f),
        },
    };
    let copy = |p: &Predictions| Predictions {
        logits: p.logits.copy(),
        boxes: p.boxes.copy(),
        masks: MaskLogits {
            spatial: p.masks.spatial.copy(),
            queries: p.masks.queries.copy(),
            bias: p.masks.bias.copy(),
        },
    };
    let (main, enc) = (pred(), pred());
    let mut m = vec![0.0f32; 16 * 16];
    for y in 4..12 {
        for x in 3..10 {
            m[y * 16 + x] = 1.0;
        }
    }
    let targets: Vec<ImageTargets> = [(2i64, [0.3f32, 0.4, 0.2, 0.3]), (1, [0.6, 0.5, 0.3, 0.2])]
        .iter()
        .map(|(n, b)| ImageTargets {
            labels: Tensor::from_slice(&vec![1i64; *n as usize]),
            boxes: Tensor::from_slice(b).view([1, 4]).repeat([*n, 1]),
            masks: Tensor::from_slice(&m).view([1, 16, 16]).repeat([*n, 1, 1]),
            len: *n,
        })
        .collect();
    let lone = Criterion::default().forward(
        &ModelOutput {
            main: copy(&main),
            aux: vec![],
            enc: copy(&enc),
        },
        &targets,
        2,
    );
    let together = Criterion::default().forward(
        &ModelOutput {
            main: copy(&main),
            aux: vec![copy(&main), copy(&enc)],
            enc: copy(&enc),
        },
        &targets,
        2,
    );
    let term = |l: &flow_trainer::train::loss::StepLosses, key: &str| {
        scalar(&l.terms.iter().find(|(k, _, _)| k == key).unwrap().1)
    };
    // Given the same matching, boxes and classes do not depend on random points: equal to float precision, output by
    // output, whether computed alone or with others.
    for kind in ["loss_ce", "loss_bbox", "loss_giou"] {
        let main_alone = term(&lone, kind);
        close(term(&together, kind), main_alone, 1e-5);
        close(term(&together, &format!("{kind}_0")), main_alone, 1e-5);
        let enc_alone = term(&lone, &format!("{kind}_enc"));
        close(term(&together, &format!("{kind}_1")), enc_alone, 1e-5);
        close(term(&together, &format!("{kind}_enc")), enc_alone, 1e-5);
    }
    // Masks use random points: close, and finite.
    for kind in ["loss_mask_ce", "loss_mask_dice"] {
        let (a, b) = (term(&lone, kind), term(&together, &format!("{kind}_0")));
        assert!(a.is_finite() && b.is_finite() && (a - b).abs() < 0.25 * a.abs().max(0.1));
    }
    // The total is the weighted sum of the terms.
    let sum: f64 = together.terms.iter().map(|(_, v, w)| scalar(v) * w).sum();
    close(scalar(&together.total), sum, 1e-4);
}
