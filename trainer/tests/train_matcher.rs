//! The Hungarian matcher: the assignment solver against brute force on small random
//! matrices (square and rectangular both ways), and the matcher on hand-built predictions
//! whose right assignment is known, per query group.

use flow_trainer::model::Predictions;
use flow_trainer::model::seg_head::MaskLogits;
use flow_trainer::train::hungarian::linear_sum_assignment;
use flow_trainer::train::matcher::{CostWeights, match_output};
use flow_trainer::train::targets::ImageTargets;
use tch::{Kind, Tensor};

/// xorshift64*: a fixed stream of test numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The minimum total cost over every injective assignment of the smaller side.
fn brute_force(cost: &[f64], rows: usize, cols: usize) -> f64 {
    fn rec(cost: &[f64], rows: usize, cols: usize, r: usize, used: &mut Vec<bool>) -> f64 {
        if r == rows {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        for c in 0..cols {
            if !used[c] {
                used[c] = true;
                best = best.min(cost[r * cols + c] + rec(cost, rows, cols, r + 1, used));
                used[c] = false;
            }
        }
        best
    }
    if rows <= cols {
        rec(cost, rows, cols, 0, &mut vec![false; cols])
    } else {
        let mut t = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = cost[r * cols + c];
            }
        }
        rec(&t, cols, rows, 0, &mut vec![false; rows])
    }
}

#[test]
fn assignment_is_optimal_on_random_matrices() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for trial in 0..400 {
        let rows = 1 + (rng.next() * 6.0) as usize;
        let cols = 1 + (rng.next() * 6.0) as usize;
        // Some trials use few distinct values so that ties are common.
        let cost: Vec<f64> = (0..rows * cols)
            .map(|_| {
                if trial % 3 == 0 {
                    (rng.next() * 3.0).floor()
                } else {
                    rng.next() * 10.0 - 5.0
                }
            })
            .collect();
        let pairs = linear_sum_assignment(&cost, rows, cols);
        assert_eq!(
            pairs.len(),
            rows.min(cols),
            "trial {trial}: every smaller-side index assigned"
        );
        let mut seen_r = vec![false; rows];
        let mut seen_c = vec![false; cols];
        for &(r, c) in &pairs {
            assert!(!seen_r[r] && !seen_c[c], "trial {trial}: indices used once");
            seen_r[r] = true;
            seen_c[c] = true;
        }
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "sorted by row");
        let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
        let best = brute_force(&cost, rows, cols);
        assert!(
            (total - best).abs() < 1e-9,
            "trial {trial}: {total} vs optimum {best}"
        );
    }
}

#[test]
fn empty_matrices_assign_nothing() {
    assert!(linear_sum_assignment(&[], 0, 5).is_empty());
    assert!(linear_sum_assignment(&[], 3, 0).is_empty());
}

fn boxes(v: &[[f32; 4]]) -> Tensor {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([v.len() as i64, 4])
}

#[test]
fn matcher_finds_the_matching_queries_in_every_group() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let t0 = [0.25f32, 0.25, 0.2, 0.2];
    let t1 = [0.7f32, 0.7, 0.3, 0.2];
    let far = [0.5f32, 0.05, 0.05, 0.05];
    // Two groups of three queries: group 0 has t1 at query 0 and t0 at query 2; group 1 has
    // t0 at query 3 and t1 at query 5.
    let pred_boxes = boxes(&[t1, far, t0, t0, far, t1]).unsqueeze(0);
    let logits = Tensor::full([1, 6, 3], -4.0, (Kind::Float, tch::Device::Cpu));
    let pred = Predictions {
        logits,
        boxes: pred_boxes,
        masks: MaskLogits {
            spatial: Tensor::zeros([1, 4, 8, 8], (Kind::Float, tch::Device::Cpu)),
            queries: Tensor::zeros([1, 6, 4], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
        },
    };
    let masks = Tensor::zeros([2, 16, 16], (Kind::Float, tch::Device::Cpu));
    let _ = masks.narrow(1, 2, 6).narrow(2, 2, 6).fill_(1.0);
    let targets = vec![ImageTargets {
        labels: Tensor::from_slice(&[1i64, 2]),
        boxes: boxes(&[t0, t1]),
        masks,
        len: 2,
    }];
    let m = match_output(&pred, &targets, 2, &CostWeights::default());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].queries, vec![0, 2, 3, 5]);
    assert_eq!(m[0].targets, vec![1, 0, 0, 1]);
}

#[test]
fn image_without_targets_matches_nothing() {
    let pred = Predictions {
        logits: Tensor::zeros([2, 4, 3], (Kind::Float, tch::Device::Cpu)),
        boxes: Tensor::full([2, 4, 4], 0.5, (Kind::Float, tch::Device::Cpu)),
        masks: MaskLogits {
            spatial: Tensor::zeros([2, 4, 8, 8], (Kind::Float, tch::Device::Cpu)),
            queries: Tensor::zeros([2, 4, 4], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
        },
    };
    let empty = || ImageTargets {
        labels: Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)),
        boxes: Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu)),
        masks: Tensor::zeros([0, 8, 8], (Kind::Float, tch::Device::Cpu)),
        len: 0,
    };
    let one = ImageTargets {
        labels: Tensor::from_slice(&[1i64]),
        boxes: boxes(&[[0.5, 0.5, 0.2, 0.2]]),
        masks: Tensor::ones([1, 8, 8], (Kind::Float, tch::Device::Cpu)),
        len: 1,
    };
    let m = match_output(&pred, &[empty(), one], 2, &CostWeights::default());
    assert!(m[0].queries.is_empty());
    assert_eq!(m[1].queries.len(), 2, "one match per group");
    assert_eq!(m[1].targets, vec![0, 0]);
}

fn random_pred(b: i64, q: i64, c: i64, cm: i64, hw: i64) -> Predictions {
    let f = (Kind::Float, tch::Device::Cpu);
    Predictions {
        logits: Tensor::randn([b, q, c], f),
        boxes: Tensor::rand([b, q, 4], f) * 0.5 + 0.1,
        masks: MaskLogits {
            spatial: Tensor::randn([b, cm, hw, hw], f),
            queries: Tensor::randn([b, q, cm], f),
            bias: Tensor::randn([1], f),
        },
    }
}

fn random_targets(lens: &[i64], size: i64) -> Vec<ImageTargets> {
    let f = (Kind::Float, tch::Device::Cpu);
    lens.iter()
        .map(|&n| ImageTargets {
            labels: Tensor::randint(3, [n], (Kind::Int64, tch::Device::Cpu)),
            boxes: Tensor::rand([n, 4], f) * 0.5 + 0.1,
            masks: Tensor::rand([n, size, size], f)
                .ge(0.5)
                .to_kind(Kind::Float),
            len: n,
        })
        .collect()
}

#[test]
fn batched_costs_equal_the_per_image_costs() {
    use flow_trainer::train::matcher::{batched_cost, image_cost};
    use flow_trainer::train::points::shared_points;
    tch::set_num_threads(1);
    tch::manual_seed(3);
    let preds: Vec<Predictions> = (0..3).map(|_| random_pred(2, 6, 4, 5, 8)).collect();
    // Images with 2 and 3 targets (masks at different sizes than the predictions').
    let targets = random_targets(&[2, 3], 12);
    let points = shared_points(16, tch::Device::Cpu);
    let refs: Vec<&Predictions> = preds.iter().collect();
    let w = CostWeights::default();
    let all = batched_cost(&refs, &targets, &points, &w); // [O, B, Q, T]
    assert_eq!(all.size(), [3, 2, 6, 5]);
    let mut offset = 0;
    for (b, t) in targets.iter().enumerate() {
        for (o, p) in preds.iter().enumerate() {
            let want = image_cost(p, b as i64, t, &points, &w);
            let got = all.get(o as i64).get(b as i64).narrow(1, offset, t.len);
            let diff = (got - want).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "output {o} image {b}: {diff}");
        }
        offset += t.len;
    }
}

#[test]
fn every_output_is_matched_like_a_lone_output() {
    use flow_trainer::train::matcher::match_outputs;
    tch::set_num_threads(1);
    tch::manual_seed(5);
    // Boxes and classes dominate the cost here (masks are all zero), so the assignment does
    // not depend on the random points: matching three outputs together gives each the
    // assignment it gets alone.
    let mut preds: Vec<Predictions> = (0..3).map(|_| random_pred(2, 8, 4, 4, 8)).collect();
    for p in &mut preds {
        p.masks.spatial = p.masks.spatial.zeros_like();
    }
    let targets = random_targets(&[3, 0], 8);
    let refs: Vec<&Predictions> = preds.iter().collect();
    let together = match_outputs(&refs, &targets, 2, &CostWeights::default());
    assert_eq!(together.len(), 3);
    for (o, p) in preds.iter().enumerate() {
        let alone = match_output(p, &targets, 2, &CostWeights::default());
        assert_eq!(together[o], alone, "output {o}");
        assert_eq!(alone[0].queries.len(), 6, "3 targets × 2 groups");
        assert!(alone[1].queries.is_empty());
    }
}
