//! One training pass as two CUDA graphs (PyTorch's `make_graphed_callables`, for the model):
//! the forward is captured once per input shape with its autograd graph, the backward as
//! `autograd.grad` of the outputs with static output-gradient buffers. Each pass then copies
//! the images into the static input, replays the forward, runs the criterion eagerly on
//! detached copies of the outputs (the Hungarian matching reads them on the host, so it cannot
//! be captured), copies the gradients the criterion leaves on them into the static buffers and
//! replays the backward, which writes every parameter's gradient into static buffers handed to
//! the variables. The model's ~5,000 kernel launches per pass become two graph launches; the
//! numbers are those of the eager pass (same kernels, same order).
//!
//! Capturing needs a forward without host synchronisation or data-dependent shapes (the model
//! has none); each input shape (the multi-scale sizes) gets its own pair of graphs, up to
//! [`MAX_SHAPES`]; batches smaller than the first captured one (an epoch's short last batch)
//! run eagerly. Once a capture fails, every pass runs eagerly.

use tch::{Device, Kind, Tensor};

use super::loss::{Criterion, StepLosses};
use super::step::StepConfig;
use super::targets::StepInput;
use crate::cuda_graph::{GraphId, GraphSession};
use crate::model::{Mode, ModelOutput, RfDetrSeg};
use crate::torch_ext::{self, TorchExtError};

/// Warm-up passes on the side stream before capturing (cuBLAS workspaces, cuDNN plans and
/// autocast state are created lazily on first use, which a capture does not allow).
const WARMUP_PASSES: usize = 2;

/// The captured graphs of one input shape and their static buffers.
struct GraphedPass {
    forward: GraphId,
    backward: GraphId,
    /// The forward's input; each pass copies its images in.
    images: Tensor,
    /// What the forward writes.
    flat: FlatOutput,
    /// The backward's input: d loss / d outputs[roots[i]].
    grad_outputs: Vec<Tensor>,
    /// What the backward writes: one gradient per trainable variable (`None`: unused).
    grads: Vec<Option<Tensor>>,
}

/// The model output as distinct tensors (identical views listed once), with the map back.
struct FlatOutput {
    outputs: Vec<Tensor>,
    /// Which of `outputs` need a gradient (the backward's roots).
    roots: Vec<usize>,
    /// Position in [`ModelOutput::tensors`] → index in `outputs` (layers share tensors).
    slots: Vec<usize>,
    aux_layers: usize,
}

fn flatten(out: &ModelOutput) -> FlatOutput {
    let mut outputs: Vec<Tensor> = Vec::new();
    let mut seen: Vec<(usize, Vec<i64>, Vec<i64>, Kind)> = Vec::new();
    let mut slots = Vec::new();
    for t in out.tensors() {
        let id = (t.data_ptr() as usize, t.size(), t.stride(), t.kind());
        let index = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
            seen.push(id);
            outputs.push(t.shallow_clone());
            outputs.len() - 1
        });
        slots.push(index);
    }
    let roots = (0..outputs.len())
        .filter(|&i| outputs[i].requires_grad())
        .collect();
    FlatOutput {
        outputs,
        roots,
        slots,
        aux_layers: out.aux.len(),
    }
}

fn forward(
    model: &RfDetrSeg,
    images: &Tensor,
    device: Device,
    autocast: Option<Kind>,
) -> Result<FlatOutput, TorchExtError> {
    let out = torch_ext::with_autocast(device, autocast, || model.forward(images, Mode::Train))?
        .map_err(|e| TorchExtError(e.to_string()))?;
    Ok(flatten(&out))
}

fn pick(tensors: &[Tensor], indices: &[usize]) -> Vec<Tensor> {
    indices
        .iter()
        .map(|&i| tensors[i].shallow_clone())
        .collect()
}

impl GraphedPass {
    fn capture(
        session: &mut GraphSession,
        model: &RfDetrSeg,
        images: &Tensor,
        vars: &[Tensor],
        cfg: &StepConfig,
    ) -> Result<GraphedPass, TorchExtError> {
        let static_images = images.copy();
        let (forward_id, flat, grad_outputs, backward_id, grads) = session.on_side_stream(|s| {
            for _ in 0..WARMUP_PASSES {
                let flat = forward(model, &static_images, cfg.device, cfg.autocast)?;
                let outs = pick(&flat.outputs, &flat.roots);
                let zeros: Vec<Tensor> = outs.iter().map(Tensor::zeros_like).collect();
                torch_ext::autograd_grad(&outs, &zeros, vars)?;
            }
            let (forward_id, flat) =
                s.capture(|| forward(model, &static_images, cfg.device, cfg.autocast))?;
            let outs = pick(&flat.outputs, &flat.roots);
            let grad_outputs: Vec<Tensor> = outs.iter().map(Tensor::zeros_like).collect();
            let (backward_id, grads) =
                s.capture(|| torch_ext::autograd_grad(&outs, &grad_outputs, vars))?;
            Ok((forward_id, flat, grad_outputs, backward_id, grads))
        })?;
        Ok(GraphedPass {
            forward: forward_id,
            backward: backward_id,
            images: static_images,
            flat,
            grad_outputs,
            grads,
        })
    }

    fn run(
        &mut self,
        session: &GraphSession,
        criterion: &Criterion,
        input: &StepInput,
        vars: &[Tensor],
        cfg: &StepConfig,
    ) -> Result<StepLosses, TorchExtError> {
        self.images.copy_(&input.images);
        session.replay(self.forward)?;
        super::profile::mark(cfg.device, "forward");
        let (losses, output_grads) = criterion_on_outputs(&self.flat, criterion, input, cfg)?;
        for (buffer, grad) in self.grad_outputs.iter_mut().zip(&output_grads) {
            buffer.copy_(grad);
        }
        session.replay(self.backward)?;
        torch_ext::set_grads(vars, &self.grads, cfg.grad_accum_steps > 1)?;
        super::profile::mark(cfg.device, "backward");
        Ok(losses)
    }
}

/// Runs the criterion on detached copies of `flat`'s tensors and backpropagates the pass's
/// loss (divided by the passes per step) to them: the losses, and d loss / d output for each
/// of `flat.roots` (zeros where the loss does not reach).
fn criterion_on_outputs(
    flat: &FlatOutput,
    criterion: &Criterion,
    input: &StepInput,
    cfg: &StepConfig,
) -> Result<(StepLosses, Vec<Tensor>), TorchExtError> {
    let leaves: Vec<Tensor> = flat
        .outputs
        .iter()
        .map(|o| o.detach().set_requires_grad(o.requires_grad()))
        .collect();
    let out = ModelOutput::from_tensors(flat.aux_layers, pick(&leaves, &flat.slots))
        .ok_or_else(|| TorchExtError("model output layout changed".to_owned()))?;
    let losses = criterion.forward(&out, &input.targets, cfg.groups);
    super::profile::mark(cfg.device, "criterion");
    (&losses.total / cfg.grad_accum_steps.max(1) as f64).backward();
    let grads = flat
        .roots
        .iter()
        .map(|&i| {
            let g = leaves[i].grad();
            if g.defined() {
                g
            } else {
                leaves[i].zeros_like()
            }
        })
        .collect();
    Ok((losses, grads))
}

/// The graphed pass computed eagerly, with no graph: the forward, the criterion on detached
/// outputs, then `autograd.grad` of the outputs into the gradients of `vars` (`None` where a
/// variable is unused). What the graphs replay; tests check it against the plain pass.
pub fn split_pass(
    model: &RfDetrSeg,
    criterion: &Criterion,
    input: &StepInput,
    vars: &[Tensor],
    cfg: &StepConfig,
) -> Result<(StepLosses, Vec<Option<Tensor>>), TorchExtError> {
    let flat = forward(model, &input.images, cfg.device, cfg.autocast)?;
    let (losses, output_grads) = criterion_on_outputs(&flat, criterion, input, cfg)?;
    let grads = torch_ext::autograd_grad(&pick(&flat.outputs, &flat.roots), &output_grads, vars)?;
    Ok((losses, grads))
}

/// Input shapes captured at most: multi-scale training draws from a handful of sizes; any
/// further shape runs eagerly.
pub const MAX_SHAPES: usize = 12;

/// The CUDA graphs of a training run: one pair per input shape, captured when the shape is
/// first seen, all in one session whose memory pool they share. Sharing is safe because every
/// pass is self-contained: it writes each static buffer it reads (input, output gradients)
/// before reading it and consumes its outputs and gradients before another graph replays.
pub struct StepGraphs {
    vars: Vec<Tensor>,
    session: Option<GraphSession>,
    passes: Vec<(Vec<i64>, GraphedPass)>,
    failed: bool,
}

impl std::fmt::Debug for StepGraphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepGraphs")
            .field(
                "shapes",
                &self.passes.iter().map(|p| &p.0).collect::<Vec<_>>(),
            )
            .field("failed", &self.failed)
            .finish()
    }
}

impl StepGraphs {
    /// Graphs computing the gradients of `vars` (the trainable variables).
    pub fn new(vars: Vec<Tensor>) -> StepGraphs {
        StepGraphs {
            vars,
            session: None,
            passes: Vec::new(),
            failed: false,
        }
    }

    /// Whether a capture failed (every pass then runs eagerly).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Input shapes captured so far.
    pub fn shapes(&self) -> usize {
        self.passes.len()
    }

    /// Runs one pass through the graphs of its input shape, capturing them when the shape is
    /// new: the losses, or `None` when this pass must run eagerly (more than [`MAX_SHAPES`]
    /// shapes, or graphs failed; a failure is reported once on stderr).
    pub fn pass(
        &mut self,
        model: &RfDetrSeg,
        criterion: &Criterion,
        input: &StepInput,
        cfg: &StepConfig,
    ) -> Option<StepLosses> {
        if self.failed {
            return None;
        }
        let shape = input.images.size();
        let index = match self.passes.iter().position(|(s, _)| *s == shape) {
            Some(i) => i,
            None if self.passes.len() >= MAX_SHAPES => return None,
            // A short batch (an epoch's last) is rare: not worth a capture's seconds and
            // memory, nor one of the slots the sizes of full batches need.
            None if self.passes.first().is_some_and(|(s, _)| shape[0] < s[0]) => return None,
            None => {
                if self.session.is_none() {
                    match GraphSession::new() {
                        Ok(session) => self.session = Some(session),
                        Err(e) => {
                            self.fail(&e);
                            return None;
                        }
                    }
                }
                let session = self.session.as_mut()?;
                let started = std::time::Instant::now();
                let captured = GraphedPass::capture(session, model, &input.images, &self.vars, cfg);
                match captured {
                    Ok(p) => {
                        eprintln!(
                            "flow-train: CUDA graphs captured for input {shape:?} in {:.1} s ({} of at most {MAX_SHAPES} shapes)",
                            started.elapsed().as_secs_f64(),
                            self.passes.len() + 1
                        );
                        self.passes.push((shape, p));
                        self.passes.len() - 1
                    }
                    Err(e) => {
                        self.fail(&e);
                        return None;
                    }
                }
            }
        };
        let session = self.session.as_ref()?;
        match self.passes[index]
            .1
            .run(session, criterion, input, &self.vars, cfg)
        {
            Ok(losses) => Some(losses),
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    fn fail(&mut self, e: &TorchExtError) {
        let first = e.0.lines().next().unwrap_or_default();
        eprintln!("flow-train: CUDA graphs off ({first}); training steps run eagerly");
        self.failed = true;
        self.passes.clear();
        self.session = None;
    }
}
