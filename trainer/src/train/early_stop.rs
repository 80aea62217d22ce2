//! Early stopping (the reference's `EarlyStoppingCallback`, spec §2) as a pure policy over
//! the per-epoch mask AP50:95: the watched value is max(regular, EMA) — or the EMA's alone
//! when `ema_only` — and training stops after `patience` epochs without an improvement of
//! more than `min_delta` over the best so far.

use serde::{Deserialize, Serialize};

/// The policy and its state (saved in checkpoints so resumed runs stop where a straight run
/// would).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated.
    pub patience: u32,
    /// Smallest improvement that resets the count.
    pub min_delta: f64,
    /// Watch the EMA evaluation only.
    pub ema_only: bool,
    /// Best watched value so far.
    pub best: Option<f64>,
    /// Epochs since the last improvement.
    pub bad_epochs: u32,
}

/// What to do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep training.
    Continue,
    /// Stop now: `patience` epochs without improvement.
    Stop,
}

impl EarlyStopping {
    /// A fresh policy.
    pub fn new(patience: u32, min_delta: f64, ema_only: bool) -> Self {
        EarlyStopping {
            patience,
            min_delta,
            ema_only,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Records one epoch's mask AP50:95 of the regular and (when kept) EMA weights.
    pub fn observe(&mut self, regular: f64, ema: Option<f64>) -> Decision {
        let current = match (self.ema_only, ema) {
            (true, Some(e)) => e,
            (_, Some(e)) => regular.max(e),
            (_, None) => regular,
        };
        match self.best {
            Some(best) if current <= best + self.min_delta => {
                self.bad_epochs += 1;
                if self.bad_epochs >= self.patience {
                    return Decision::Stop;
                }
            }
            _ => {
                self.best = Some(current);
                self.bad_epochs = 0;
            }
        }
        Decision::Continue
    }
}
