//! Exponential moving average of the weights (the reference's `ModelEma`, spec §2): after
//! update t (1-based) the average moves with decay 0.993·(1 − e^(−t/100)), so early averages
//! follow the model closely and later ones smooth it. Every floating-point variable, trainable
//! or not, is averaged; others are copied.

use tch::nn::VarStore;

use crate::torch_ext::{self, TorchExtError};

/// The EMA's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaDecay {
    /// Asymptotic decay (0.993).
    pub decay: f64,
    /// Warm-up time constant in updates (100).
    pub tau: f64,
}

impl Default for EmaDecay {
    fn default() -> Self {
        EmaDecay {
            decay: 0.993,
            tau: 100.0,
        }
    }
}

impl EmaDecay {
    /// The decay used by update number `updates` (1-based).
    pub fn at(&self, updates: u64) -> f64 {
        self.decay * (1.0 - (-(updates as f64) / self.tau).exp())
    }
}

/// Averages `model` into `ema` (two stores of the same model) with decay `d`: one
/// multi-tensor lerp over the floating-point variables (`e += (1 − d)·(m − e)`).
pub fn update(ema: &VarStore, model: &VarStore, d: f64) -> Result<(), TorchExtError> {
    let src = model.variables();
    tch::no_grad(|| {
        let (mut dst, mut from) = (Vec::new(), Vec::new());
        for (name, mut e) in ema.variables() {
            let Some(m) = src.get(&name) else { continue };
            if e.is_floating_point() {
                dst.push(e);
                from.push(m.detach());
            } else {
                e.copy_(m);
            }
        }
        torch_ext::foreach_lerp(&dst, &from, 1.0 - d)
    })
}

/// Copies every variable of `src` into `dst` (the EMA starts as the model).
pub fn copy_into(dst: &VarStore, src: &VarStore) {
    let from = src.variables();
    tch::no_grad(|| {
        for (name, mut t) in dst.variables() {
            if let Some(s) = from.get(&name) {
                t.copy_(s);
            }
        }
    });
}
