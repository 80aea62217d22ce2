//! Evaluation parameters: pycocotools' `Params` for detection, plus the two choices that
//! differ between stock pycocotools and RF-DETR (how detections are fed, how AP is summarised).

use serde::Serialize;

/// What an IoU is computed between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IouType {
    /// Boxes `[x, y, w, h]`.
    Bbox,
    /// Masks (RLE), boxes only as a pre-filter.
    Segm,
}

impl IouType {
    /// pycocotools' name of the type.
    pub fn name(self) -> &'static str {
        match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
        }
    }
}

/// Which `summarize()` produces the twelve numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Summarize {
    /// pycocotools' own: the first number (AP) is computed at a hard-coded 100 detections, so
    /// it is -1 unless 100 is one of the max detections.
    Stock,
    /// RF-DETR's patched copy (rfdetr/datasets/coco_eval.py in 1.4.1): AP at the last max
    /// detections, like every other entry.
    Rfdetr,
}

/// How the detections of a results file reach pycocotools' `loadRes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feed {
    /// Unchanged. When the first detection has a box, every detection's area is its box area
    /// (even for segm, which changes the small/medium/large results).
    AsLoaded,
    /// As RF-DETR's evaluator builds them: only boxes for bbox evaluation, only masks for segm
    /// evaluation, so that a mask's own area decides its size range.
    Rfdetr,
}

/// Everything that changes the numbers of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// Boxes or masks.
    pub iou_type: IouType,
    /// `[1, 10, N]` sorted, as pycocotools sorts `params.maxDets`.
    pub max_dets: [usize; 3],
    /// Which summary.
    pub summarize: Summarize,
    /// How detections are fed.
    pub feed: Feed,
}

/// Area ranges `all`, `small`, `medium`, `large` as pycocotools writes them; both bounds are
/// inclusive.
pub(crate) const AREA_RANGES: [(f64, f64); 4] =
    [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];

/// Labels of [`AREA_RANGES`], as printed.
pub(crate) const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];

impl Params {
    /// Parameters with max detections `[1, 10, max_dets]` (sorted, as pycocotools does).
    pub fn new(iou_type: IouType, max_dets: usize, summarize: Summarize, feed: Feed) -> Params {
        let mut dets = [1, 10, max_dets];
        dets.sort_unstable();
        Params {
            iou_type,
            max_dets: dets,
            summarize,
            feed,
        }
    }

    /// The largest max detections: detections beyond it per image and category are dropped.
    pub fn max_det(&self) -> usize {
        self.max_dets[2]
    }
}

/// The ten IoU thresholds, bit for bit as `np.linspace(.5, 0.95, 10)` computes them
/// (`i * step + start`, the last one exactly `0.95`), which differs from `0.5 + 0.05 * i` in
/// the last bits (0.8999999999999999 for 0.9) and so decides matches lying on a threshold.
pub fn iou_thresholds() -> [f64; 10] {
    linspace::<10>(0.5, 0.95)
}

/// The 101 recall thresholds of `np.linspace(.0, 1.00, 101)`.
pub fn recall_thresholds() -> [f64; 101] {
    linspace::<101>(0.0, 1.0)
}

fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_equal_numpy_linspace() {
        // Printed by numpy 2.x: np.linspace(.5, 0.95, 10).
        let expected = [
            0.5,
            0.55,
            0.6,
            0.65,
            0.7,
            0.75,
            0.8,
            0.85,
            0.8999999999999999,
            0.95,
        ];
        assert_eq!(iou_thresholds(), expected);
        let r = recall_thresholds();
        assert_eq!((r[0], r[1], r[100]), (0.0, 0.01, 1.0));
    }

    #[test]
    fn max_dets_are_sorted() {
        let p = Params::new(IouType::Bbox, 5, Summarize::Stock, Feed::AsLoaded);
        assert_eq!(p.max_dets, [1, 5, 10]);
        assert_eq!(p.max_det(), 10);
    }
}
