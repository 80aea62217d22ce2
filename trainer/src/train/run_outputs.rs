//! What an epoch leaves for people and tools besides checkpoints: the `log.txt` line, the
//! TensorBoard scalars, and at the end `results.json` (with the best weights evaluated on
//! `test/`).

use std::fs;
use std::io::Write;

use flow_coco::dataset::{Augment, CocoSplit, Loader, LoaderConfig, Split};
use flow_coco::format::AnnotationFile;
use tch::nn::VarStore;

use super::evaluate::{EvalResult, evaluate_model};
use super::log_line::{LogLine, now_time, timedelta};
use super::meter::Meter;
use super::policy;
use super::run::{Run, TrainError, io_err, mix_seed};
use super::weights::load_weights;
use crate::model::RfDetrSeg;

impl Run {
    pub(super) fn log_line(
        &self,
        epoch: u32,
        train: &mut Meter,
        regular: &EvalResult,
        ema: Option<&EvalResult>,
        train_time: f64,
        epoch_time: f64,
    ) -> LogLine {
        let mut l = LogLine::default();
        l.num("train_lr", train.mean("lr").unwrap_or(0.0));
        for key in ["class_error", "loss"] {
            l.num(format!("train_{key}"), train.mean(key).unwrap_or(f64::NAN));
        }
        for (k, v) in train.means() {
            if k != "lr" {
                l.num(format!("train_{k}"), v);
            }
        }
        put_eval(&mut l, "test_", regular);
        l.put("epoch", epoch);
        l.put("n_parameters", self.n_parameters);
        if let Some(e) = ema {
            put_eval(&mut l, "ema_test_", e);
        }
        let b = &self.state.best;
        let opt_num = |x: Option<f64>| x.map_or(serde_json::Value::Null, serde_json::Value::from);
        let opt_ep = |x: Option<u32>| x.map_or(serde_json::Value::Null, serde_json::Value::from);
        if self.ema.is_some() {
            l.put("all_best_res", opt_num(b.total));
            l.put("all_best_ep", opt_ep(b.total_epoch));
            l.put("regular_best_res", opt_num(b.regular.map(|r| r.0)));
            l.put("regular_best_ep", opt_ep(b.regular.map(|r| r.1)));
            l.put("ema_best_res", opt_num(b.ema.map(|r| r.0)));
            l.put("ema_best_ep", opt_ep(b.ema.map(|r| r.1)));
        } else {
            l.put("best_res", opt_num(b.total));
            l.put("best_ep", opt_ep(b.total_epoch));
        }
        l.put("now_time", now_time());
        l.put("train_epoch_time", timedelta(train_time));
        l.put("epoch_time", timedelta(epoch_time));
        l
    }

    /// TensorBoard scalars of an epoch (step = epoch): `train/lr`, `train/loss` and the
    /// weighted terms, `test/loss`, `test/{bbox,masks}_{AP,AP50,…}` and the `ema_test/` twins.
    pub(super) fn write_scalars(
        &mut self,
        epoch: u32,
        train: &mut Meter,
        regular: &EvalResult,
        ema: Option<&EvalResult>,
    ) -> Result<(), TrainError> {
        let Some(tb) = &mut self.tensorboard else {
            return Ok(());
        };
        let mut s: Vec<(String, f64)> = train
            .means()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("_unscaled"))
            .map(|(k, v)| (format!("train/{k}"), v))
            .collect();
        let mut eval = |prefix: &str, r: &EvalResult| {
            for (k, v) in &r.stats {
                if !k.ends_with("_unscaled") {
                    s.push((format!("{prefix}/{k}"), *v));
                }
            }
            for (kind, stats) in [("bbox", &r.bbox), ("masks", &r.masks)] {
                for (name, v) in COCO_NAMES.iter().zip(stats.iter()) {
                    s.push((format!("{prefix}/{kind}_{name}"), *v));
                }
            }
        };
        eval("test", regular);
        if let Some(e) = ema {
            eval("ema_test", e);
        }
        let path = tb.path().to_owned();
        tb.scalars(epoch as i64, &s).map_err(io_err(&path))
    }

    pub(super) fn append_log(&self, line: &LogLine) -> Result<(), TrainError> {
        let path = self.opts.output_dir.join("log.txt");
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        writeln!(f, "{}", line.to_json()).map_err(io_err(&path))
    }

    /// The best weights (`checkpoint_best_total`) evaluated on `test/`, as the reference does
    /// at the end of a run; `None` when the split or the file is absent.
    pub(super) fn evaluate_test(&self) -> Result<Option<EvalResult>, TrainError> {
        let best = self.path(policy::BEST_TOTAL);
        let Ok(split) = CocoSplit::open(&self.cfg.data.dataset_dir, Split::Test) else {
            return Ok(None);
        };
        if !best.exists() || split.is_empty() {
            return Ok(None);
        }
        let gt =
            AnnotationFile::read(&split.annotations_file).map_err(|e| TrainError::Annotations {
                path: split.annotations_file.clone(),
                message: e.to_string(),
            })?;
        let vs = VarStore::new(self.opts.device);
        let model = RfDetrSeg::new(&vs.root(), &self.model_cfg)?;
        load_weights(&vs, &best)?;
        let loader = Loader::new(
            split,
            Augment::Eval {
                resolution: self.model_cfg.resolution as usize,
            },
            LoaderConfig::eval(self.cfg.training.batch_size as usize),
        );
        tch::manual_seed(mix_seed(self.cfg.training.seed, u64::MAX, u64::MAX));
        Ok(Some(evaluate_model(
            &model,
            &loader,
            &gt,
            &self.criterion,
            self.opts.device,
        )?))
    }

    /// `results.json` in the reference's shape (`class_map.valid` from the last epoch's
    /// validation, `class_map.test` from the best weights on `test/` once the run is over;
    /// `map`, `precision`, `recall`, `f1_score` of the validation), plus flow-train's summary
    /// of the best epoch under `flow_train`.
    pub(super) fn write_results(&self, test: Option<&EvalResult>) -> Result<(), TrainError> {
        let path = self.opts.output_dir.join("results.json");
        let log = self.opts.output_dir.join("log.txt");
        let last: serde_json::Value = fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().last().and_then(|l| serde_json::from_str(l).ok()))
            .unwrap_or_default();
        let r = &last["test_results_json"];
        let b = &self.state.best;
        let mut class_map = serde_json::json!({"valid": r["class_map"].clone()});
        if let Some(t) = test {
            class_map["test"] = t.results_json["class_map"].clone();
        }
        let v = serde_json::json!({
            "class_map": class_map,
            "map": r["map"].clone(),
            "precision": r["precision"].clone(),
            "recall": r["recall"].clone(),
            "f1_score": r["f1_score"].clone(),
            "flow_train": {
                "best_mask_map": b.total,
                "best_epoch": b.total_epoch,
                "regular": b.regular.map(|(v, e)| serde_json::json!({"mask_map": v, "epoch": e})),
                "ema": b.ema.map(|(v, e)| serde_json::json!({"mask_map": v, "epoch": e})),
                "epochs_done": self.state.epochs_done,
                "stopped_early": self.state.stopped,
                "test_coco_eval_bbox": test.map(|t| t.bbox.to_vec()),
                "test_coco_eval_masks": test.map(|t| t.masks.to_vec()),
            },
        });
        fs::write(&path, format!("{v:#}\n")).map_err(io_err(&path))
    }
}

/// Names of the twelve COCO numbers, for TensorBoard tags.
pub const COCO_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR500", "ARs", "ARm", "ARl",
];

/// `prefix` + every eval stat, then the two 12-number vectors.
fn put_eval(l: &mut LogLine, prefix: &str, r: &EvalResult) {
    for (k, v) in &r.stats {
        l.num(format!("{prefix}{k}"), *v);
    }
    l.put(format!("{prefix}results_json"), r.results_json.clone());
    l.nums(format!("{prefix}coco_eval_bbox"), &r.bbox);
    l.nums(format!("{prefix}coco_eval_masks"), &r.masks);
}
