//! The twelve numbers (pycocotools' `stats`) and their printed form.
//!
//! [AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR@N, ARs, ARm, ARl] with max detections
//! `[1, 10, N]`: each is the mean of the defined (> -1) entries of the precision or recall
//! array over the selected thresholds, categories, area range and max detections, -1 when none
//! is defined. With [`Summarize::Stock`] the first number is taken at a hard-coded 100
//! detections (so it is -1 when 100 is not among the max detections); with
//! [`Summarize::Rfdetr`] at N, as RF-DETR's patched `summarize` does.

use std::fmt;

use serde::Serialize;

use super::accumulate::{A, Accumulated, M, R, T};
use super::params::{AREA_LABELS, Feed, IouType, Params, Summarize, iou_thresholds};

/// The summary of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Boxes or masks.
    pub iou_type: IouType,
    /// Which summary was used.
    pub summarize: Summarize,
    /// How detections were fed.
    pub feed: Feed,
    /// The max detections `[1, 10, N]`.
    pub max_dets: [usize; 3],
    /// pycocotools' `stats`.
    pub stats: [f64; 12],
}

/// One line of the summary: which array and which selection.
struct Line {
    ap: bool,
    iou: Option<f64>,
    area: usize,
    max_dets: usize,
}

fn lines(params: &Params) -> [Line; 12] {
    let n = params.max_dets[2];
    let first = match params.summarize {
        Summarize::Stock => 100,
        Summarize::Rfdetr => n,
    };
    let line = |ap, iou, area, max_dets| Line {
        ap,
        iou,
        area,
        max_dets,
    };
    [
        line(true, None, 0, first),
        line(true, Some(0.5), 0, n),
        line(true, Some(0.75), 0, n),
        line(true, None, 1, n),
        line(true, None, 2, n),
        line(true, None, 3, n),
        line(false, None, 0, params.max_dets[0]),
        line(false, None, 0, params.max_dets[1]),
        line(false, None, 0, n),
        line(false, None, 1, n),
        line(false, None, 2, n),
        line(false, None, 3, n),
    ]
}

/// Computes the twelve numbers.
pub(crate) fn summarize(acc: &Accumulated, params: &Params) -> Summary {
    let thresholds = iou_thresholds();
    let stats = lines(params).map(|line| {
        // Thresholds are selected by exact equality, as `np.where(iouThr == p.iouThrs)`.
        let ts: Vec<usize> = (0..T)
            .filter(|&t| line.iou.is_none_or(|v| thresholds[t] == v))
            .collect();
        let ms: Vec<usize> = (0..M)
            .filter(|&m| params.max_dets[m] == line.max_dets)
            .collect();
        let (mut sum, mut count) = (0.0f64, 0usize);
        let mut add = |v: f64| {
            if v > -1.0 {
                sum += v;
                count += 1;
            }
        };
        for &t in &ts {
            for k in 0..acc.categories {
                for &m in &ms {
                    if line.ap {
                        for r in 0..R {
                            add(acc.precision_at(t, r, k, line.area, m));
                        }
                    } else {
                        add(acc.recall_at(t, k, line.area, m));
                    }
                }
            }
        }
        if count == 0 { -1.0 } else { sum / count as f64 }
    });
    debug_assert_eq!(AREA_LABELS.len(), A);
    Summary {
        iou_type: params.iou_type,
        summarize: params.summarize,
        feed: params.feed,
        max_dets: params.max_dets,
        stats,
    }
}

impl Summary {
    /// Short names of the twelve numbers, the max detections in the ninth (`AR500`).
    pub fn names(&self) -> [String; 12] {
        let n = self.max_dets[2];
        [
            "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "", "ARs", "ARm", "ARl",
        ]
        .map(|s| {
            if s.is_empty() {
                format!("AR{n}")
            } else {
                s.to_owned()
            }
        })
    }

    /// The summary as one JSON object: the settings, `stats` in pycocotools' order, and
    /// `metrics` by name in the same order.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            summary: &'a Summary,
            metrics: Metrics<'a>,
        }
        struct Metrics<'a>(&'a Summary);
        impl Serialize for Metrics<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.names().into_iter().zip(self.0.stats))
            }
        }
        // Plain numbers and strings: serialising cannot fail.
        serde_json::to_string(&Out {
            summary: self,
            metrics: Metrics(self),
        })
        .unwrap_or_default()
    }
}

/// pycocotools' printout, one line per number, e.g.
/// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.503`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = Params {
            iou_type: self.iou_type,
            max_dets: self.max_dets,
            summarize: self.summarize,
            feed: self.feed,
        };
        for (line, value) in lines(&params).iter().zip(self.stats) {
            let (title, kind) = if line.ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match line.iou {
                None => "0.50:0.95".to_owned(),
                Some(v) => format!("{v:0.2}"),
            };
            writeln!(
                f,
                " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {value:0.3}",
                AREA_LABELS[line.area], line.max_dets
            )?;
        }
        Ok(())
    }
}
