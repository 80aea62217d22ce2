//! The parsed metrics of one run directory.

use std::collections::BTreeMap;

/// Which file a run directory's metrics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RF-DETR ≤ 1.5 `log.txt`: one JSON object per epoch line.
    LogTxt,
    /// RF-DETR ≥ 1.6 `metrics.csv` (Lightning CSVLogger).
    MetricsCsv,
    /// Neither file was found.
    None,
}

/// Which evaluation track produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The model being trained.
    Regular,
    /// Its exponential moving average.
    Ema,
}

/// The 12-number COCO summary, in pycocotools order:
/// [AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR@max, ARs, ARm, ARl].
///
/// A slot is `None` when the format does not report it (metrics.csv carries only a few) or the
/// value was not finite. The accessors also map COCO's −1 ("empty category") to `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CocoSummary {
    pub values: [Option<f64>; 12],
}

impl CocoSummary {
    fn get(&self, i: usize) -> Option<f64> {
        self.values[i].filter(|v| *v >= 0.0)
    }
    /// AP@[.5:.95] (mAP).
    pub fn ap(&self) -> Option<f64> {
        self.get(0)
    }
    pub fn ap50(&self) -> Option<f64> {
        self.get(1)
    }
    pub fn ap75(&self) -> Option<f64> {
        self.get(2)
    }
    pub fn aps(&self) -> Option<f64> {
        self.get(3)
    }
    pub fn apm(&self) -> Option<f64> {
        self.get(4)
    }
    pub fn apl(&self) -> Option<f64> {
        self.get(5)
    }
    pub fn ar1(&self) -> Option<f64> {
        self.get(6)
    }
    pub fn ar10(&self) -> Option<f64> {
        self.get(7)
    }
    /// AR at the largest detection count (RF-DETR evaluates at 500 detections, COCO's default is 100).
    pub fn ar100(&self) -> Option<f64> {
        self.get(8)
    }
    pub fn ars(&self) -> Option<f64> {
        self.get(9)
    }
    pub fn arm(&self) -> Option<f64> {
        self.get(10)
    }
    pub fn arl(&self) -> Option<f64> {
        self.get(11)
    }
}

/// One epoch's losses and evaluations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpochMetrics {
    /// 0-based, as RF-DETR writes it.
    pub epoch: u32,
    pub train_loss: Option<f64>,
    pub train_lr: Option<f64>,
    /// Validation loss of the regular model (`test_loss` in log.txt, `val/loss` in metrics.csv).
    pub test_loss: Option<f64>,
    /// Validation loss of the EMA model.
    pub ema_test_loss: Option<f64>,
    /// Every finite loss value of the epoch, by its name in the file.
    pub losses: BTreeMap<String, f64>,
    pub bbox: Option<CocoSummary>,
    pub segm: Option<CocoSummary>,
    pub ema_bbox: Option<CocoSummary>,
    pub ema_segm: Option<CocoSummary>,
}

/// The best epoch by RF-DETR's rule: highest mask AP over the regular and EMA evaluations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Best {
    pub epoch: u32,
    /// Mask AP@[.5:.95] of the winning track at that epoch.
    pub mask_map: f64,
    /// Bbox AP@[.5:.95] of the same track and epoch, when reported.
    pub bbox_map: Option<f64>,
    pub track: Track,
}

/// Something wrong in a metrics file; parsing carries on past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the problem has one.
    pub line: Option<usize>,
    pub what: String,
}

impl Problem {
    pub fn at(line: usize, what: impl Into<String>) -> Self {
        Problem {
            line: Some(line),
            what: what.into(),
        }
    }
    pub fn file(what: impl Into<String>) -> Self {
        Problem {
            line: None,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// Everything read from one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    pub format: Format,
    pub epochs: Vec<EpochMetrics>,
    pub best: Option<Best>,
    pub problems: Vec<Problem>,
}
