//! The CUDA-graph training pass, on the CPU without graphs: its decomposition (forward, the
//! criterion on detached outputs, `autograd.grad` of the outputs with the criterion's output
//! gradients) gives the plain pass's loss and parameter gradients, and gradients are handed to
//! variables as the graphed step does (aliased for one pass per step, accumulated for more).
//! The capture itself needs a GPU: `flow-train bench --graphs on` and `--graph-parity-steps`.

mod common;

use flow_trainer::model::{Mode, ModelConfig, ModelOutput, ModelSize, RfDetrSeg};
use flow_trainer::torch_ext;
use flow_trainer::train::graphed_step::{StepGraphs, split_pass};
use flow_trainer::train::loss::Criterion;
use flow_trainer::train::step::StepConfig;
use flow_trainer::train::targets::StepInput;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// libtorch's random generator is process-global: tests that seed it take this lock.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The tiny model on the CPU, from seed 0, with its variables.
struct Tiny {
    vs: VarStore,
    cfg: ModelConfig,
    model: RfDetrSeg,
}

fn tiny() -> Tiny {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig::preset(ModelSize::Tiny, 2).expect("preset");
    let model = RfDetrSeg::new(&vs.root(), &cfg).expect("build");
    Tiny { vs, cfg, model }
}

/// Two random images with one object each.
fn input() -> StepInput {
    StepInput {
        images: Tensor::randn([2, 3, 96, 120], (Kind::Float, Device::Cpu)),
        targets: common::square_targets(2, 0.1),
    }
}

/// A CPU pass of the two images, `passes` passes per optimizer step.
fn cpu_step(cfg: &ModelConfig, passes: usize) -> StepConfig {
    StepConfig {
        batch_size: 2,
        grad_accum_steps: passes,
        groups: cfg.group_detr,
        device: Device::Cpu,
        autocast: None,
    }
}

#[test]
fn the_split_pass_gives_the_plain_pass_loss_and_gradients() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let Tiny { vs, cfg, model } = tiny();
    let criterion = Criterion::default();
    let vars = vs.trainable_variables();
    let input = input();
    let step = cpu_step(&cfg, 2);

    // The plain pass: forward, criterion, backward through everything.
    tch::manual_seed(7);
    let out = model.forward(&input.images, Mode::Train).expect("forward");
    let plain = criterion.forward(&out, &input.targets, cfg.group_detr);
    (&plain.total / 2.0).backward();
    let plain_grads: Vec<Option<Tensor>> = vars
        .iter()
        .map(|v| Some(v.grad()).filter(Tensor::defined).map(|g| g.copy()))
        .collect();
    torch_ext::clear_grads(&vars).expect("clear");

    // The split pass with the same random draws; it leaves the variables' gradients alone.
    tch::manual_seed(7);
    let (losses, grads) = split_pass(&model, &criterion, &input, &vars, &step).expect("split");
    assert!(vars.iter().all(|v| !v.grad().defined()));
    let (a, b) = (
        plain.total.double_value(&[]),
        losses.total.double_value(&[]),
    );
    assert!((a - b).abs() <= 1e-6 * a.abs(), "loss {a} vs {b}");

    assert_eq!(grads.len(), vars.len());
    let mut compared = 0;
    for (i, (plain, split)) in plain_grads.iter().zip(&grads).enumerate() {
        match (plain, split) {
            (None, None) => {}
            (Some(p), None) => assert!(
                p.abs().max().double_value(&[]) == 0.0,
                "variable {i} has a gradient in the plain pass only"
            ),
            (None, Some(_)) => panic!("variable {i} has a gradient in the split pass only"),
            (Some(plain), Some(g)) => {
                // Laid out as the variable (fused AdamW requires it).
                assert_eq!(
                    g.stride(),
                    vars[i].stride(),
                    "variable {i}'s gradient strides"
                );
                let scale = plain.abs().max().double_value(&[]).max(1e-12);
                let diff = (g - plain).abs().max().double_value(&[]);
                assert!(diff <= 1e-4 * scale, "variable {i}: {diff} (scale {scale})");
                compared += 1;
            }
        }
    }
    // Nearly every variable gets a gradient (the loss reaches the whole model).
    assert!(
        compared * 10 >= vars.len() * 9,
        "{compared} of {}",
        vars.len()
    );
}

#[test]
fn gradients_are_aliased_for_one_pass_and_accumulated_for_several() {
    let v = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let w = Tensor::zeros([1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let g = Tensor::from_slice(&[1.0f32, 2.0]);
    let vars = [v.shallow_clone(), w.shallow_clone()];

    // One pass per step: the variable's gradient is the buffer itself; `None` leaves alone.
    torch_ext::set_grads(&vars, &[Some(g.shallow_clone()), None], false).expect("alias");
    assert_eq!(v.grad().data_ptr(), g.data_ptr());
    assert!(!w.grad().defined());

    // Several passes: the first copies (the buffer is rewritten by the next replay), later
    // ones add.
    torch_ext::clear_grads(&vars).expect("clear");
    torch_ext::set_grads(&vars, &[Some(g.shallow_clone()), None], true).expect("copy");
    assert_ne!(v.grad().data_ptr(), g.data_ptr());
    let _ = g.shallow_clone().fill_(10.0);
    torch_ext::set_grads(&vars, &[Some(g.shallow_clone()), None], true).expect("add");
    assert_eq!(
        Vec::<f32>::try_from(v.grad()).expect("floats"),
        vec![11.0, 12.0]
    );
}

#[test]
fn the_model_output_round_trips_through_its_flat_list() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let Tiny { model, .. } = tiny();
    let images = Tensor::randn([1, 3, 96, 120], (Kind::Float, Device::Cpu));
    let out = model.forward(&images, Mode::Eval).expect("forward");
    let flat: Vec<Tensor> = out
        .tensors()
        .into_iter()
        .map(Tensor::shallow_clone)
        .collect();
    assert_eq!(flat.len(), 5 * (out.aux.len() + 2));
    let ptrs: Vec<usize> = flat.iter().map(|t| t.data_ptr() as usize).collect();
    let back = ModelOutput::from_tensors(out.aux.len(), flat).expect("same layout");
    let again: Vec<usize> = back
        .tensors()
        .iter()
        .map(|t| t.data_ptr() as usize)
        .collect();
    assert_eq!(ptrs, again);
    assert!(ModelOutput::from_tensors(out.aux.len() + 1, Vec::new()).is_none());
}

#[test]
fn graphs_that_cannot_be_used_fall_back_to_eager_passes_once() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let Tiny { vs, cfg, model } = tiny();
    let input = input();
    let step = cpu_step(&cfg, 1);
    // No CUDA here: the session cannot start, the pass is left to the caller (eager), and
    // the graphs stay off without trying again.
    let mut graphs = StepGraphs::new(vs.trainable_variables());
    assert!(!graphs.failed());
    assert!(
        graphs
            .pass(&model, &Criterion::default(), &input, &step)
            .is_none()
    );
    assert!(graphs.failed());
    assert_eq!(graphs.shapes(), 0);
    assert!(
        graphs
            .pass(&model, &Criterion::default(), &input, &step)
            .is_none()
    );
    // Nothing touched the variables' gradients.
    assert!(vs.trainable_variables().iter().all(|v| !v.grad().defined()));
}
