//! The pure parts of the loop on scripted inputs: learning-rate schedules at chosen steps,
//! the EMA decay and update, early stopping and checkpoint policies on metric sequences,
//! parameter groups by variable name, the thread budget, and AdamW against hand-computed
//! updates.

use flow_trainer::config::Scheduler;
use flow_trainer::model::{ModelConfig, ModelSize, RfDetrSeg};
use flow_trainer::train::early_stop::{Decision, EarlyStopping};
use flow_trainer::train::ema::{self, EmaDecay};
use flow_trainer::train::optimizer::AdamW;
use flow_trainer::train::param_groups::{ParamGroup, encoder_layer_id, param_group};
use flow_trainer::train::policy::{BestTracker, periodic_due, periodic_stem, prune};
use flow_trainer::train::schedule::Schedule;
use flow_trainer::train::threads::thread_budget;
use tch::nn::{Init, VarStore};
use tch::{Device, Tensor};

fn same(a: ParamGroup, b: ParamGroup) {
    assert!(
        (a.lr - b.lr).abs() <= 1e-12 * b.lr.abs().max(1e-30) && a.weight_decay == b.weight_decay,
        "{a:?} vs {b:?}"
    );
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn cosine_with_warmup() {
    let s = Schedule {
        kind: Scheduler::Cosine,
        warmup_steps: 10,
        total_steps: 110,
        drop_step: 0,
        min_factor: 0.01,
    };
    close(s.factor(0), 0.0);
    close(s.factor(5), 0.5);
    close(s.factor(10), 1.0);
    // Half-way through the cosine: (1 + min) / 2.
    close(s.factor(60), 0.505);
    close(s.factor(110), 0.01);
    assert!(s.factor(30) > s.factor(31));
}

#[test]
fn step_drops_tenfold_at_lr_drop() {
    let s = Schedule {
        kind: Scheduler::Step,
        warmup_steps: 0,
        total_steps: 100,
        drop_step: 40,
        min_factor: 0.0,
    };
    close(s.factor(0), 1.0);
    close(s.factor(39), 1.0);
    close(s.factor(40), 0.1);
    close(s.factor(99), 0.1);
    let warm = Schedule {
        warmup_steps: 4,
        ..s
    };
    close(warm.factor(1), 0.25);
    close(warm.factor(4), 1.0);
}

#[test]
fn ema_decay_schedule() {
    let d = EmaDecay::default();
    close(d.at(1), 0.993 * (1.0 - (-0.01f64).exp()));
    close(d.at(100), 0.993 * (1.0 - (-1.0f64).exp()));
    assert!((d.at(100_000) - 0.993).abs() < 1e-12);
}

#[test]
fn ema_update_moves_toward_the_model() {
    let model = VarStore::new(Device::Cpu);
    let ema_vs = VarStore::new(Device::Cpu);
    let m = model.root().var("w", &[2], Init::Const(3.0));
    let _e = ema_vs.root().var("w", &[2], Init::Const(1.0));
    ema::update(&ema_vs, &model, 0.75).expect("ema");
    let got: Vec<f32> = Vec::try_from(&ema_vs.variables()["w"]).unwrap();
    assert_eq!(got, vec![1.5, 1.5]);
    ema::copy_into(&ema_vs, &model);
    let got: Vec<f32> = Vec::try_from(&ema_vs.variables()["w"]).unwrap();
    assert_eq!(got, vec![3.0, 3.0]);
    drop(m);
}

#[test]
fn early_stopping_on_a_scripted_sequence() {
    let mut es = EarlyStopping::new(2, 0.01, false);
    assert_eq!(es.observe(0.10, None), Decision::Continue);
    assert_eq!(es.observe(0.20, None), Decision::Continue);
    // 0.205 and 0.21 are not more than 0.01 above 0.20.
    assert_eq!(es.observe(0.205, None), Decision::Continue);
    assert_eq!(es.bad_epochs, 1);
    assert_eq!(es.observe(0.21, None), Decision::Stop);
    // With EMA the better of both tracks counts.
    let mut es = EarlyStopping::new(1, 0.0, false);
    es.observe(0.3, Some(0.1));
    assert_eq!(es.observe(0.1, Some(0.35)), Decision::Continue);
    assert_eq!(es.best, Some(0.35));
    assert_eq!(es.observe(0.2, Some(0.35)), Decision::Stop);
    // EMA only: the regular track is ignored.
    let mut es = EarlyStopping::new(1, 0.0, true);
    es.observe(0.9, Some(0.1));
    assert_eq!(es.best, Some(0.1));
}

#[test]
fn periodic_checkpoints_and_retention() {
    assert_eq!(periodic_stem(9), "checkpoint0009");
    let due: Vec<u32> = (0..20).filter(|&e| periodic_due(e, 5, None)).collect();
    assert_eq!(due, vec![4, 9, 14, 19]);
    let due: Vec<u32> = (0..20).filter(|&e| periodic_due(e, 10, Some(4))).collect();
    assert_eq!(due, vec![3, 7, 9, 11, 15, 19]);
    assert!(!(0..20).any(|e| periodic_due(e, 0, Some(4))));
    assert_eq!(prune(vec![9, 4, 14, 19], Some(2)), vec![4, 9]);
    assert!(prune(vec![4, 9], None).is_empty());
    assert!(prune(vec![4, 9], Some(5)).is_empty());
}

#[test]
fn best_files_follow_the_best_of_both_tracks() {
    let mut b = BestTracker::default();
    let d = b.observe(0, 0.1, Some(0.05));
    assert!(d.regular && !d.ema);
    let d = b.observe(1, 0.12, Some(0.2));
    assert!(d.regular && d.ema);
    // The regular track improves on itself but not on the EMA's 0.2: no regular file.
    let d = b.observe(2, 0.15, Some(0.19));
    assert!(!d.regular && !d.ema);
    assert_eq!(b.regular, Some((0.15, 2)));
    assert_eq!(b.total, Some(0.2));
    assert_eq!(b.total_epoch, Some(1));
}

#[test]
fn parameter_groups_by_name() {
    let (lr, lre, wd) = (1e-4, 1.5e-4, 1e-4);
    let g = |n: &str| param_group(n, lr, lre, wd, 12);
    let enc = "backbone.0.encoder.encoder.";
    assert_eq!(
        encoder_layer_id(&format!("{enc}embeddings.cls_token"), 12),
        0
    );
    assert_eq!(
        encoder_layer_id(&format!("{enc}encoder.layer.3.mlp.fc1.weight"), 12),
        4
    );
    assert_eq!(encoder_layer_id(&format!("{enc}layernorm.weight"), 12), 14);
    let want = |id: i32, decay: f64| ParamGroup {
        lr: lre * 0.8f64.powi(14 - id) * 0.49,
        weight_decay: decay,
    };
    same(
        g(&format!("{enc}embeddings.position_embeddings")),
        want(0, 0.0),
    );
    same(
        g(&format!("{enc}encoder.layer.3.mlp.fc1.weight")),
        want(4, wd),
    );
    same(
        g(&format!("{enc}encoder.layer.11.norm1.weight")),
        want(12, 0.0),
    );
    same(
        g(&format!(
            "{enc}encoder.layer.0.attention.attention.query.bias"
        )),
        want(1, 0.0),
    );
    same(g(&format!("{enc}layernorm.bias")), want(14, 0.0));
    let dec = g("transformer.decoder.layers.0.linear1.weight");
    assert!((dec.lr - lr * 0.7).abs() < 1e-15 && dec.weight_decay == wd);
    same(
        g("class_embed.bias"),
        ParamGroup {
            lr,
            weight_decay: wd,
        },
    );
    same(
        g("backbone.0.projector.stages.0.0.cv1.conv.weight"),
        ParamGroup {
            lr,
            weight_decay: wd,
        },
    );
}

#[test]
fn every_trainable_variable_of_nano_gets_a_group() {
    let cfg = ModelConfig::preset(ModelSize::Nano, 2).unwrap();
    let vs = VarStore::new(Device::Cpu);
    RfDetrSeg::new(&vs.root(), &cfg).unwrap();
    let mut encoder = 0;
    for (name, v) in vs.variables() {
        if !v.requires_grad() {
            continue;
        }
        let p = param_group(&name, 1e-4, 1.5e-4, 1e-4, cfg.vit_layers);
        if name.starts_with("backbone.0.encoder.") {
            encoder += 1;
            let id = encoder_layer_id(&name, cfg.vit_layers);
            assert!((0..=14).contains(&id), "{name}: {id}");
            assert!(p.lr < 1.5e-4 * 0.49 + 1e-12);
        }
    }
    assert!(encoder > 100);
}

#[test]
fn thread_budget_prefers_slurm() {
    assert_eq!(thread_budget(Some("3")), 3);
    let all = thread_budget(None);
    assert!(all >= 1);
    assert_eq!(thread_budget(Some("garbage")), all);
    assert_eq!(thread_budget(Some("0")), all);
}

#[test]
fn adamw_matches_hand_computed_steps() {
    tch::set_num_threads(1);
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[1], Init::Const(1.0));
    let mut opt = AdamW::new(vec![(
        "w".into(),
        w.shallow_clone(),
        ParamGroup {
            lr: 0.1,
            weight_decay: 0.5,
        },
    )]);
    // Loss = 2·w → gradient 2 at every step.
    let (mut p, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
    for t in 1..=3 {
        opt.zero_grad().expect("zero");
        (&w * 2.0).sum(tch::Kind::Float).backward();
        opt.step(0.5).expect("step");
        let lr = 0.05;
        p *= 1.0 - lr * 0.5;
        m = 0.9 * m + 0.1 * 2.0;
        v = 0.999 * v + 0.001 * 4.0;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
        p -= lr / bc1 * m / ((v.sqrt() / bc2.sqrt()) + 1e-8);
        let got = w.double_value(&[0]);
        assert!((got - p).abs() < 1e-6, "step {t}: {got} vs {p}");
    }
    // Clipping scales the gradient to the requested norm.
    opt.zero_grad().expect("zero");
    (&w * 3.0).sum(tch::Kind::Float).backward();
    let norm = opt.clip_grad_norm(0.1).expect("clip").double_value(&[]);
    assert!((norm - 3.0).abs() < 1e-6);
    assert!((w.grad().double_value(&[0]) - 0.1).abs() < 1e-6);
    let _ = Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
}

#[test]
fn crc32c_check_value() {
    use flow_trainer::train::tensorboard::crc32c;
    // The standard check value of CRC-32C.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}
