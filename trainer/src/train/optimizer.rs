//! AdamW (PyTorch's `torch.optim.AdamW` update, betas 0.9/0.999, eps 1e-8) over named
//! variables with per-variable rates, plus total-norm gradient clipping.
//!
//! Written here rather than taken from tch's `nn::Optimizer` because resume must restore the
//! moment estimates exactly, and tch's optimizer exposes neither its state nor a way to load
//! it.

use tch::{Kind, Tensor};

use super::param_groups::ParamGroup;

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
            .collect();
        AdamW {
            params,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.var.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scales the gradients so that their total L2 norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let norms: Vec<Tensor> = self
                .params
                .iter()
                .map(|p| p.var.grad())
                .filter(|g| g.defined())
                .map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float))
                .collect();
            if norms.is_empty() {
                return 0.0;
            }
            let total = Tensor::stack(&norms, 0)
                .sum(Kind::Float)
                .sqrt()
                .double_value(&[]);
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                for p in &self.params {
                    let mut g = p.var.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(coef);
                    }
                }
            }
            total
        })
    }

    /// One update with every rate multiplied by `factor` (the schedule's).
    pub fn step(&mut self, factor: f64) {
        self.step += 1;
        let t = self.step as f64;
        let bc1 = 1.0 - self.beta1.powf(t);
        let bc2 = 1.0 - self.beta2.powf(t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.var.grad();
                if !g.defined() {
                    continue;
                }
                let lr = p.group.lr * factor;
                let mut var = p.var.shallow_clone();
                if p.group.weight_decay != 0.0 {
                    let _ = var.g_mul_scalar_(1.0 - lr * p.group.weight_decay);
                }
                let _ = p.exp_avg.g_mul_scalar_(b1);
                let _ = p.exp_avg.g_add_(&(&g * (1.0 - b1)));
                let _ = p.exp_avg_sq.g_mul_scalar_(b2);
                let _ = p.exp_avg_sq.g_add_(&(g.square() * (1.0 - b2)));
                let denom = p.exp_avg_sq.sqrt() / bc2.sqrt() + eps;
                let _ = var.g_add_(&(&p.exp_avg / denom * (-lr / bc1)));
            }
        });
    }
}
