//! The learning-rate factor per optimizer step (the reference's `LambdaLR`, spec §2): linear
//! warmup from 0, then either a step drop to 0.1 at epoch `lr_drop` or a cosine from 1 down to
//! `lr_min_factor` over the remaining steps.

use crate::config::Scheduler;

/// The schedule of one run, in optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Step or cosine.
    pub kind: Scheduler,
    /// Warmup steps (warmup_epochs × steps per epoch).
    pub warmup_steps: u64,
    /// All steps of the run (epochs × steps per epoch).
    pub total_steps: u64,
    /// First step of the drop (lr_drop × steps per epoch).
    pub drop_step: u64,
    /// Cosine floor.
    pub min_factor: f64,
}

impl Schedule {
    /// The factor at step `step` (0-based: the factor used by the first update is `factor(0)`).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        match self.kind {
            Scheduler::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = (step - self.warmup_steps) as f64 / span;
                self.min_factor
                    + (1.0 - self.min_factor)
                        * 0.5
                        * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Scheduler::Step => {
                if step < self.drop_step {
                    1.0
                } else {
                    0.1
                }
            }
        }
    }
}
