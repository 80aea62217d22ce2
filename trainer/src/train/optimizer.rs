//! AdamW (PyTorch's `torch.optim.AdamW` update, betas 0.9/0.999, eps 1e-8) over named
//! variables with per-variable rates, plus total-norm gradient clipping.
//!
//! Written here rather than taken from tch's `nn::Optimizer` because resume must restore the
//! moment estimates exactly, and tch's optimizer exposes neither its state nor a way to load
//! it. The update runs as libtorch's fused AdamW kernel, one call per (rate, decay) group, and
//! clipping as multi-tensor kernels that never read the norm back: on a GPU a step costs a
//! handful of launches instead of ten per parameter, and no synchronisation.
use tch::{Kind, Tensor};

use super::param_groups::ParamGroup;
use crate::torch_ext::{self, AdamWHyper, TorchExtError};

/// One optimised variable and its state.
#[derive(Debug)]
pub struct ParamState {
    /// The variable's name in the model's `VarStore`.
    pub name: String,
    /// The variable (shares storage with the model).
    pub var: Tensor,
    /// Rate and decay.
    pub group: ParamGroup,
    /// First moment.
    pub exp_avg: Tensor,
    /// Second moment.
    pub exp_avg_sq: Tensor,
}

/// The optimizer.
#[derive(Debug)]
pub struct AdamW {
    /// Variables, sorted by name (a fixed order keeps float sums reproducible).
    pub params: Vec<ParamState>,
    /// Steps taken (bias correction).
    pub step: i64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Indices into `params` of each (rate, decay) group, in first-seen order: one fused call
    /// each.
    groups: Vec<Vec<usize>>,
    /// The step number as a 0-d fp32 tensor on the parameters' device (the fused kernel
    /// reads it there).
    step_tensor: Option<Tensor>,
}

impl AdamW {
    /// An optimizer over `vars` (name, variable, group), state zeroed.
    pub fn new(mut vars: Vec<(String, Tensor, ParamGroup)>) -> Self {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, var, group)| ParamState {
                exp_avg: var.zeros_like().detach(),
                exp_avg_sq: var.zeros_like().detach(),
                name,
                var,
                group,
            })
            .collect::<Vec<ParamState>>();
        let mut keys: Vec<(u64, u64)> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let key = (p.group.lr.to_bits(), p.group.weight_decay.to_bits());
            match keys.iter().position(|k| *k == key) {
                Some(g) => groups[g].push(i),
                None => {
                    keys.push(key);
                    groups.push(vec![i]);
                }
            }
        }
        let step_tensor = params
            .first()
            .map(|p| Tensor::zeros([], (Kind::Float, p.var.device())));
        AdamW {
            params,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            groups,
            step_tensor,
        }
    }

    /// The gradients that exist (variables unused by the last backward have none).
    fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|p| p.var.grad())
            .filter(Tensor::defined)
            .collect()
    }

    /// Drops every gradient (PyTorch's default `set_to_none`): the next backward stores
    /// fresh gradients rather than adding them to zeros, a kernel per parameter less.
    pub fn zero_grad(&mut self) -> Result<(), TorchExtError> {
        let vars: Vec<Tensor> = self.params.iter().map(|p| p.var.shallow_clone()).collect();
        torch_ext::clear_grads(&vars)
    }

    /// Scales the gradients so that their total L2 norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping as a 0-d tensor on
    /// the parameters' device, so that nothing waits for it unless the caller reads it.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<Tensor, TorchExtError> {
        let grads = self.grads();
        if grads.is_empty() {
            return Ok(Tensor::zeros([], (Kind::Float, tch::Device::Cpu)));
        }
        tch::no_grad(|| torch_ext::clip_grad_norm(&grads, max_norm))
    }

    /// One update with every rate multiplied by `factor` (the schedule's).
    pub fn step(&mut self, factor: f64) -> Result<(), TorchExtError> {
        self.step += 1;
        let Some(step) = &self.step_tensor else {
            return Ok(());
        };
        tch::no_grad(|| {
            let _ = step.shallow_clone().fill_(self.step as f64);
            for group in &self.groups {
                let live: Vec<&ParamState> = group
                    .iter()
                    .map(|&i| &self.params[i])
                    .filter(|p| p.var.grad().defined())
                    .collect();
                let Some(first) = live.first() else { continue };
                let h = AdamWHyper {
                    lr: first.group.lr * factor,
                    beta1: self.beta1,
                    beta2: self.beta2,
                    weight_decay: first.group.weight_decay,
                    eps: self.eps,
                };
                let vars: Vec<Tensor> = live.iter().map(|p| p.var.shallow_clone()).collect();
                let grads: Vec<Tensor> = live.iter().map(|p| p.var.grad()).collect();
                let m: Vec<Tensor> = live.iter().map(|p| p.exp_avg.shallow_clone()).collect();
                let v: Vec<Tensor> = live.iter().map(|p| p.exp_avg_sq.shallow_clone()).collect();
                torch_ext::fused_adamw(&vars, &grads, &m, &v, step, h)?;
            }
            Ok(())
        })
    }
}
