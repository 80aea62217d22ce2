//! The libtorch functions behind `torch_ext` (autocast state, multi-tensor kernels), on the
//! CPU: bf16 autocast of the whole tiny model and criterion (dtype mismatches show here before
//! any GPU run), state restored after the region, and the multi-tensor kernels against plain
//! tensor arithmetic.

mod common;

use flow_trainer::model::{Mode, ModelConfig, ModelSize, RfDetrSeg};
use flow_trainer::torch_ext::{self, AutocastGuard};
use flow_trainer::train::loss::Criterion;
use flow_trainer::train::targets::ImageTargets;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn targets() -> Vec<ImageTargets> {
    common::square_targets(2, 0.0)
}

fn finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) == 1
}

#[test]
fn bf16_autocast_runs_the_model_and_criterion_and_restores_the_state() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig::preset(ModelSize::Tiny, 2).expect("preset");
    let model = RfDetrSeg::new(&vs.root(), &cfg).expect("build");
    let images = Tensor::randn([2, 3, 96, 120], (Kind::Float, Device::Cpu));

    let full = model.forward(&images, Mode::Train).expect("fp32 forward");
    assert_eq!(full.main.logits.kind(), Kind::Float);

    let out = {
        let _guard = AutocastGuard::enter(Device::Cpu, Kind::BFloat16).expect("autocast");
        model.forward(&images, Mode::Train).expect("bf16 forward")
    };
    // Linear layers ran in bf16: their outputs are bf16.
    assert_eq!(out.main.logits.kind(), Kind::BFloat16);
    let losses = Criterion::default().forward(&out, &targets(), cfg.group_detr);
    assert_eq!(losses.total.kind(), Kind::Float);
    assert!(finite(&losses.total), "bf16 loss not finite");
    losses.total.backward();
    let grads: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect();
    assert!(!grads.is_empty());
    assert!(grads.iter().all(finite), "a bf16 gradient is not finite");
    // The parameters themselves stay fp32.
    assert!(
        vs.trainable_variables()
            .iter()
            .all(|v| v.kind() == Kind::Float)
    );

    // Outside the region the model runs in fp32 again, with the same results as before.
    let again = model.forward(&images, Mode::Train).expect("fp32 forward");
    assert_eq!(again.main.logits.kind(), Kind::Float);
    let diff = (&again.main.logits - &full.main.logits)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "fp32 forward changed after autocast: {diff}");
    // bf16 is close to, but not bit-equal with, fp32 (the two-stage top-k may pick other
    // proposals, so compare the loss, not per-query outputs).
    let full_loss = Criterion::default()
        .forward(&full, &targets(), cfg.group_detr)
        .total
        .double_value(&[]);
    let amp_loss = losses.total.double_value(&[]);
    let rel = (amp_loss - full_loss).abs() / full_loss.abs();
    assert!(
        rel > 0.0 && rel < 0.05,
        "bf16 loss {amp_loss} vs fp32 {full_loss}"
    );
}

#[test]
fn nested_autocast_regions_restore_the_outer_state() {
    let x = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
    let w = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
    {
        let _outer = AutocastGuard::enter(Device::Cpu, Kind::BFloat16).expect("outer");
        {
            let _inner = AutocastGuard::enter(Device::Cpu, Kind::BFloat16).expect("inner");
            assert_eq!(x.matmul(&w).kind(), Kind::BFloat16);
        }
        assert_eq!(x.matmul(&w).kind(), Kind::BFloat16);
    }
    assert_eq!(x.matmul(&w).kind(), Kind::Float);
    assert!(AutocastGuard::enter(Device::Cpu, Kind::Float).is_err());
}

#[test]
fn multi_tensor_kernels_match_plain_arithmetic() {
    let a = Tensor::from_slice(&[3.0f32, 0.0]);
    let b = Tensor::from_slice(&[4.0f32]);
    // Norm 5 clipped to 1: every tensor scaled by 1/5 (+1e-6), the norm returned unclipped.
    let norm =
        torch_ext::clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 1.0).expect("clip");
    assert!((norm.double_value(&[]) - 5.0).abs() < 1e-6);
    assert!((a.double_value(&[0]) - 0.6).abs() < 1e-6);
    assert!((b.double_value(&[0]) - 0.8).abs() < 1e-6);
    // A norm under the limit leaves the tensors alone.
    let norm = torch_ext::clip_grad_norm(&[a.shallow_clone()], 10.0).expect("clip");
    assert!((norm.double_value(&[]) - 0.6).abs() < 1e-6);
    assert!((a.double_value(&[0]) - 0.6).abs() < 1e-6);

    let dst = Tensor::from_slice(&[1.0f32, 2.0]);
    let src = Tensor::from_slice(&[3.0f32, 6.0]);
    torch_ext::foreach_lerp(&[dst.shallow_clone()], &[src], 0.25).expect("lerp");
    assert!((dst.double_value(&[0]) - 1.5).abs() < 1e-6);
    assert!((dst.double_value(&[1]) - 3.0).abs() < 1e-6);
    assert!(torch_ext::foreach_lerp(&[dst.shallow_clone()], &[], 0.5).is_err());

    // Dropped gradients are undefined until the next backward, which then stores its own.
    let v = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    (&v * 3.0).sum(Kind::Float).backward();
    assert!(v.grad().defined());
    torch_ext::clear_grads(&[v.shallow_clone()]).expect("clear");
    assert!(!v.grad().defined());
    (&v * 2.0).sum(Kind::Float).backward();
    assert_eq!(v.grad().double_value(&[0]), 2.0);
}
