//! Precision and recall per (IoU threshold, category, area range, max detections), as
//! pycocotools' `accumulate`:
//!
//! - The cells of a category are concatenated in image-id order, each cut to the max
//!   detections, then ranked by score with a stable sort (ties keep that order).
//! - Precision is `tp / (tp + fp + ε)` with ε = `np.spacing(1)`, made monotone from the right,
//!   and read at the first rank whose recall reaches each of the 101 recall thresholds
//!   (`searchsorted(side='left')`); thresholds beyond the final recall read 0.
//! - Entries stay -1 where a category has no cell or no positive in the range.

use rayon::prelude::*;

use super::matching::{CellEval, FALSE_POSITIVE, TRUE_POSITIVE, by_score_desc};
use super::params::{AREA_RANGES, Params, iou_thresholds, recall_thresholds};

/// `np.spacing(1)`: the gap between 1.0 and the next double.
const EPS: f64 = f64::EPSILON;

/// The accumulated curves: pycocotools' `eval['precision']` and `eval['recall']`.
#[derive(Clone, Debug)]
pub struct Accumulated {
    /// Number of categories (sorted by id), the K axis.
    pub categories: usize,
    /// `[T][R][K][A][M]` flattened row-major; -1 where undefined.
    pub precision: Vec<f64>,
    /// `[T][K][A][M]` flattened row-major; -1 where undefined.
    pub recall: Vec<f64>,
}

/// Axis lengths.
pub(crate) const T: usize = 10;
pub(crate) const R: usize = 101;
pub(crate) const A: usize = 4;
pub(crate) const M: usize = 3;

impl Accumulated {
    /// Precision at (threshold, recall threshold, category, area range, max detections).
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[(((t * R + r) * self.categories + k) * A + a) * M + m]
    }

    /// Recall at (threshold, category, area range, max detections).
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[((t * self.categories + k) * A + a) * M + m]
    }
}

/// One (category, area range): precision `[T][R][M]` and recall `[T][M]`.
struct Slice {
    precision: Vec<f64>,
    recall: Vec<f64>,
}

/// Accumulates the cell evaluations (sorted by category, then image).
pub(crate) fn accumulate(cells: &[CellEval], categories: usize, params: &Params) -> Accumulated {
    // Cells of each category, in image order.
    let mut by_category: Vec<&[CellEval]> = Vec::with_capacity(categories);
    let mut start = 0;
    for k in 0..categories {
        let end = start + cells[start..].iter().take_while(|c| c.k == k).count();
        by_category.push(&cells[start..end]);
        start = end;
    }
    let slices: Vec<Slice> = (0..categories * A)
        .into_par_iter()
        .map(|ka| accumulate_slice(by_category[ka / A], ka % A, params))
        .collect();
    let mut precision = vec![-1.0; T * R * categories * A * M];
    let mut recall = vec![-1.0; T * categories * A * M];
    for (ka, slice) in slices.iter().enumerate() {
        let (k, a) = (ka / A, ka % A);
        for t in 0..T {
            for m in 0..M {
                recall[((t * categories + k) * A + a) * M + m] = slice.recall[t * M + m];
                for r in 0..R {
                    precision[(((t * R + r) * categories + k) * A + a) * M + m] =
                        slice.precision[(t * R + r) * M + m];
                }
            }
        }
    }
    Accumulated {
        categories,
        precision,
        recall,
    }
}

fn accumulate_slice(cells: &[CellEval], a: usize, params: &Params) -> Slice {
    debug_assert!(a < AREA_RANGES.len());
    let mut precision = vec![-1.0; T * R * M];
    let mut recall = vec![-1.0; T * M];
    let thresholds = recall_thresholds();
    debug_assert_eq!(iou_thresholds().len(), T);
    let positives: usize = cells.iter().map(|c| c.areas[a].positives).sum();
    if cells.is_empty() || positives == 0 {
        return Slice { precision, recall };
    }
    let npig = positives as f64;
    for (m, &max_det) in params.max_dets.iter().enumerate() {
        // (cell, detection) in concatenation order, then ranked by score, stable.
        let mut ranked: Vec<(u32, u32)> = Vec::new();
        for (c, cell) in cells.iter().enumerate() {
            let kept = cell.scores.len().min(max_det);
            ranked.extend((0..kept).map(|d| (c as u32, d as u32)));
        }
        let score = |&(c, d): &(u32, u32)| cells[c as usize].scores[d as usize];
        ranked.sort_by(|x, y| by_score_desc(score(x), score(y)));
        let nd = ranked.len();
        let mut rc = vec![0.0f64; nd];
        let mut pr = vec![0.0f64; nd];
        for t in 0..T {
            let (mut tp, mut fp) = (0u64, 0u64);
            for (n, &(c, d)) in ranked.iter().enumerate() {
                let cell = &cells[c as usize];
                let status = cell.areas[a].status[t * cell.scores.len() + d as usize];
                if status == TRUE_POSITIVE {
                    tp += 1;
                } else if status == FALSE_POSITIVE {
                    fp += 1;
                }
                let (tpf, fpf) = (tp as f64, fp as f64);
                rc[n] = tpf / npig;
                pr[n] = tpf / (fpf + tpf + EPS);
            }
            recall[t * M + m] = if nd > 0 { rc[nd - 1] } else { 0.0 };
            for n in (1..nd).rev() {
                if pr[n] > pr[n - 1] {
                    pr[n - 1] = pr[n];
                }
            }
            for (r, &threshold) in thresholds.iter().enumerate() {
                let at = rc.partition_point(|&x| x < threshold);
                precision[(t * R + r) * M + m] = if at < nd { pr[at] } else { 0.0 };
            }
        }
    }
    Slice { precision, recall }
}
