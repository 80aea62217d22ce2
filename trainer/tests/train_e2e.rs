//! End to end on a generated synthetic dataset (16 images of 96 px, `tiny`, one thread):
//! a 2-epoch run writes the log.txt that flow's metrics parser reads, the checkpoints at the
//! right epochs, and its loss goes down; 4 epochs straight equal 2 epochs, a stop, and
//! `--resume` for 2 more (identical weights, EMA, optimizer moments and log lines).
//!
//! The runs share libtorch's global generator, so they take a lock and run one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flow_coco::synth::{SynthConfig, write_dataset};
use flow_trainer::train::{TrainOptions, train};
use flow_trainer::train::{checkpoint, tensorboard};
use tch::Device;

static SERIAL: Mutex<()> = Mutex::new(());

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "flow-train-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dataset(root: &Path) -> PathBuf {
    let out = root.join("data");
    let cfg = SynthConfig {
        images: 16,
        seed: 5,
        size: 96,
        ..SynthConfig::default()
    };
    write_dataset(&cfg, &out, false).unwrap();
    out
}

fn config(root: &Path, data: &Path, training: &str, checkpoints: &str) -> PathBuf {
    config_tb(root, data, training, checkpoints, false)
}

fn config_tb(
    root: &Path,
    data: &Path,
    training: &str,
    checkpoints: &str,
    tensorboard: bool,
) -> PathBuf {
    let text = format!(
        "experiment:\n  name: \"e2e\"\n  description: \"test\"\n  model_size: \"tiny\"\n\
         data:\n  dataset_dir: {data:?}\n\
         training:\n{training}\
         checkpoints:\n{checkpoints}\
         logging:\n  tensorboard: {tensorboard}\n  wandb: false\n"
    );
    let path = root.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn options(config: &Path, out: &Path) -> TrainOptions {
    TrainOptions {
        config: config.to_owned(),
        output_dir: out.to_owned(),
        resume: false,
        device: Device::Cpu,
        model_size: None,
        weights: None,
        max_steps: None,
        threads: Some(1),
        epochs_limit: None,
        progress: false,
        cuda_graphs: false,
    }
}

fn log_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("log.txt"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_epochs_write_log_checkpoints_and_learn() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("e2e");
    let data = dataset(&tmp.0);
    let cfg = config_tb(
        &tmp.0,
        &data,
        "  epochs: 2\n  lr: 1.0e-3\n  lr_encoder: 1.5e-3\n  batch_size: 2\n  grad_accum_steps: 1\n  multi_scale: false\n  seed: 7\n",
        "  save_every_n_epochs: 1\n  keep_last_n: 1\n",
        true,
    );
    let run = tmp.0.join("run");
    let started = std::time::Instant::now();
    let s = train(&options(&cfg, &run)).unwrap();
    eprintln!(
        "2 epochs in {:.2?} ({:.3} s/step)",
        started.elapsed(),
        s.seconds_per_step
    );
    assert_eq!((s.epochs_run, s.epochs_done), (2, 2));
    assert!(
        s.train_losses[1] < s.train_losses[0],
        "loss goes down: {:?}",
        s.train_losses
    );

    let lines = log_lines(&run);
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["epoch"], i as u64);
        // tiny with 2 classes has 854,043; each extra class adds 14 heads × (64 + 1).
        assert_eq!(
            l["n_parameters"],
            854_043 + 3 * 14 * 65,
            "tiny with 5 classes"
        );
        for key in [
            "train_lr",
            "train_class_error",
            "train_loss",
            "train_loss_ce",
            "train_loss_mask_dice_0",
            "train_loss_giou_enc",
            "train_loss_bbox_unscaled",
            "train_cardinality_error_enc_unscaled",
            "test_loss",
            "test_loss_mask_ce_enc",
            "ema_test_loss",
            "all_best_res",
            "regular_best_ep",
            "now_time",
            "epoch_time",
        ] {
            assert!(l.get(key).is_some(), "line {i} lacks `{key}`");
        }
        for key in [
            "test_coco_eval_bbox",
            "test_coco_eval_masks",
            "ema_test_coco_eval_bbox",
            "ema_test_coco_eval_masks",
        ] {
            let v = l[key]
                .as_array()
                .unwrap_or_else(|| panic!("{key} is a list"));
            assert_eq!(v.len(), 12, "{key}");
            assert!(
                v.iter()
                    .all(|x| x.as_f64().is_some_and(|x| (-1.0..=1.0).contains(&x)))
            );
        }
        // 192 keys for Seg-N (4 decoder layers); tiny has 2, so 2 × 11 fewer per track (3).
        assert_eq!(l.as_object().unwrap().len(), 192 - 3 * 2 * 11, "line {i}");
        let rj = &l["test_results_json"];
        let classes = rj["class_map"].as_array().expect("class_map");
        assert_eq!(classes.last().unwrap()["class"], "all");
        for key in ["map", "precision", "recall", "f1_score"] {
            assert!(rj[key].is_number(), "results_json.{key}");
        }
        // Weighted = coefficient × unscaled.
        let (w, u) = (
            l["train_loss_giou"].as_f64().unwrap(),
            l["train_loss_giou_unscaled"].as_f64().unwrap(),
        );
        assert!((w - 2.0 * u).abs() < 1e-9 * w.abs().max(1.0));
    }
    // Periodic checkpoints every epoch, keeping the newest only.
    for name in [
        "checkpoint.safetensors",
        "checkpoint0001.safetensors",
        "checkpoint_best_regular.safetensors",
        "checkpoint_best_total.safetensors",
        "results.json",
    ] {
        assert!(run.join(name).exists(), "{name} written");
    }
    assert!(!run.join("checkpoint0000.safetensors").exists(), "pruned");
    let (tensors, meta) = checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    let state = checkpoint::state_of(&run.join("checkpoint.safetensors"), &meta).unwrap();
    assert_eq!((state.epochs_done, state.optimizer_step), (2, 10));
    assert!(tensors.contains_key("model.class_embed.bias"));
    assert!(tensors.contains_key("ema.class_embed.bias"));
    assert!(tensors.contains_key("optim.exp_avg_sq.class_embed.bias"));
    // The best weights load into a fresh model by their plain names.
    let (best, _) = checkpoint::read(&run.join("checkpoint_best_total.safetensors")).unwrap();
    assert!(best.contains_key("transformer.decoder.layers.0.linear1.weight"));

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert!(results["class_map"]["valid"].is_array());
    assert!(
        results["class_map"]["test"].is_array(),
        "best weights evaluated on test/"
    );
    assert_eq!(
        results["flow_train"]["test_coco_eval_masks"]
            .as_array()
            .map(Vec::len),
        Some(12)
    );
    assert!(results["flow_train"]["best_mask_map"].is_number());

    // TensorBoard: one event file with the epoch scalars.
    let events: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    assert_eq!(events.len(), 1);
    let scalars = tensorboard::read_scalars(&events[0]).unwrap();
    for tag in [
        "train/loss",
        "train/lr",
        "train/loss_mask_dice_enc",
        "test/loss",
        "test/masks_AP",
        "test/bbox_AP50",
        "ema_test/masks_AP",
    ] {
        let steps: Vec<i64> = scalars.iter().filter(|s| s.1 == tag).map(|s| s.0).collect();
        assert_eq!(steps, vec![0, 1], "{tag}");
    }

    fine_tune_weights_load(&run.join("checkpoint_best_total.safetensors"));
    flow_metrics_reads(&run);
}

/// `--weights`: a 5-class file loads into a 7-class model, class heads left as initialised.
fn fine_tune_weights_load(best: &Path) {
    use flow_trainer::model::{ModelConfig, ModelSize, RfDetrSeg};
    let (file, _) = checkpoint::read(best).unwrap();
    let cfg = ModelConfig::preset(ModelSize::Tiny, 7).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    RfDetrSeg::new(&vs.root(), &cfg).unwrap();
    flow_trainer::train::weights::load_weights(&vs, best).unwrap();
    let vars = vs.variables();
    let name = "backbone.0.encoder.encoder.encoder.layer.0.mlp.fc1.weight";
    assert!(vars[name].equal(&file[name]));
    assert_eq!(vars["class_embed.bias"].size(), vec![8]);
    assert_eq!(file["class_embed.bias"].size(), vec![6]);
}

/// Runs the workspace's `flow metrics --json` on the run when the binary is built.
fn flow_metrics_reads(run: &Path) {
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/flow");
    if !flow.exists() {
        eprintln!(
            "skipping the `flow metrics` check: {} is not built",
            flow.display()
        );
        return;
    }
    let out = std::process::Command::new(&flow)
        .arg("metrics")
        .arg(run)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "log.txt");
    assert_eq!(v["epochs"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    assert!(v["best"]["mask_map"].as_f64().is_some());
}

fn tensors(path: &Path) -> HashMap<String, tch::Tensor> {
    checkpoint::read(path).unwrap().0
}

#[test]
fn resume_continues_exactly() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("resume");
    let data = dataset(&tmp.0);
    // Cosine with warmup, accumulation, multi-scale and EMA: every piece of state matters.
    let cfg = config(
        &tmp.0,
        &data,
        "  epochs: 4\n  lr: 1.0e-3\n  lr_encoder: 1.5e-3\n  warmup_epochs: 1\n  lr_scheduler: \"cosine\"\n  batch_size: 1\n  grad_accum_steps: 2\n  multi_scale: true\n  seed: 11\n",
        "  save_every_n_epochs: 2\n",
    );
    let straight = tmp.0.join("straight");
    let mut opts = options(&cfg, &straight);
    opts.max_steps = Some(3);
    train(&opts).unwrap();

    let resumed = tmp.0.join("resumed");
    let mut first = options(&cfg, &resumed);
    first.max_steps = Some(3);
    first.epochs_limit = Some(2);
    let s = train(&first).unwrap();
    assert_eq!(s.epochs_done, 2);
    assert_eq!(log_lines(&resumed).len(), 2);
    let second = TrainOptions {
        resume: true,
        epochs_limit: None,
        ..first
    };
    let s = train(&second).unwrap();
    assert_eq!((s.epochs_run, s.epochs_done), (2, 4));

    let a = tensors(&straight.join("checkpoint.safetensors"));
    let b = tensors(&resumed.join("checkpoint.safetensors"));
    assert_eq!(a.len(), b.len());
    let mut compared = 0;
    for (name, ta) in &a {
        let tb = &b[name];
        assert!(ta.equal(tb), "{name} differs after resume");
        compared += 1;
    }
    assert!(compared > 300);
    let (la, lb) = (log_lines(&straight), log_lines(&resumed));
    assert_eq!(la.len(), 4);
    assert_eq!(lb.len(), 4);
    for (x, y) in la.iter().zip(&lb) {
        for key in [
            "epoch",
            "train_loss",
            "train_lr",
            "test_loss",
            "test_coco_eval_masks",
        ] {
            assert_eq!(x[key], y[key], "{key} of epoch {}", x["epoch"]);
        }
    }
    // Periodic checkpoints at epochs 1 and 3 (0-based) in both.
    for dir in [&straight, &resumed] {
        assert!(dir.join("checkpoint0001.safetensors").exists());
        assert!(dir.join("checkpoint0003.safetensors").exists());
        assert!(!dir.join("checkpoint0002.safetensors").exists());
    }
    // Resuming a finished run does nothing.
    let s = train(&second).unwrap();
    assert_eq!((s.epochs_run, s.epochs_done), (0, 4));
}

#[test]
fn early_stopping_ends_the_run_without_ema() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("early");
    let data = dataset(&tmp.0);
    // No epoch can gain 1.0 mask AP: epoch 0 sets the best, epoch 1 exhausts patience 1.
    let cfg = config(
        &tmp.0,
        &data,
        "  epochs: 5\n  batch_size: 2\n  grad_accum_steps: 1\n  multi_scale: false\n  use_ema: false\n  early_stopping: true\n  early_stopping_patience: 1\n  early_stopping_min_delta: 1.0\n",
        "  save_every_n_epochs: 0\n",
    );
    let run = tmp.0.join("run");
    let mut opts = options(&cfg, &run);
    opts.max_steps = Some(1);
    let s = train(&opts).unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.epochs_done, 2);
    let lines = log_lines(&run);
    assert_eq!(lines.len(), 2);
    let l = &lines[1];
    assert!(l.get("best_res").is_some() && l.get("best_ep").is_some());
    assert!(l.get("ema_test_loss").is_none() && l.get("all_best_res").is_none());
    assert!(!run.join("checkpoint_best_ema.safetensors").exists());
    assert!(
        !run.join("checkpoint0001.safetensors").exists(),
        "periodic off"
    );
    let (t, _) = checkpoint::read(&run.join("checkpoint.safetensors")).unwrap();
    assert!(!t.keys().any(|k| k.starts_with("ema.")));
    // A resume of a stopped run trains nothing more.
    let s = train(&TrainOptions {
        resume: true,
        ..opts
    })
    .unwrap();
    assert_eq!((s.epochs_run, s.epochs_done), (0, 2));
    assert_eq!(log_lines(&run).len(), 2);
}
