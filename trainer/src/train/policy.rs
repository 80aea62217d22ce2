//! Checkpoint policies as pure functions of the epoch and the metric history (which files to
//! write and which periodic ones to delete), so they are tested on scripted sequences.

use serde::{Deserialize, Serialize};

/// RF-DETR's file stems (spec §3), written with the `.safetensors` extension.
pub const LAST: &str = "checkpoint";
/// Best regular weights.
pub const BEST_REGULAR: &str = "checkpoint_best_regular";
/// Best EMA weights.
pub const BEST_EMA: &str = "checkpoint_best_ema";
/// The better of the two.
pub const BEST_TOTAL: &str = "checkpoint_best_total";

/// The periodic checkpoint's stem for 0-based `epoch` (`checkpoint0009`).
pub fn periodic_stem(epoch: u32) -> String {
    format!("checkpoint{epoch:04}")
}

/// Whether 0-based `epoch` writes a periodic checkpoint: (epoch + 1) a multiple of `every`
/// or of `lr_drop` (whatever the schedule), as the reference does; `every` = 0 turns both off.
pub fn periodic_due(epoch: u32, every: u32, lr_drop: Option<u32>) -> bool {
    if every == 0 {
        return false;
    }
    let e = epoch + 1;
    e.is_multiple_of(every) || lr_drop.is_some_and(|d| d > 0 && e.is_multiple_of(d))
}

/// The periodic epochs to delete so that the newest `keep` remain (`None` keeps all).
pub fn prune(mut epochs: Vec<u32>, keep: Option<u32>) -> Vec<u32> {
    let Some(keep) = keep else {
        return Vec::new();
    };
    epochs.sort_unstable();
    let n = epochs.len().saturating_sub(keep as usize);
    epochs.truncate(n);
    epochs
}

/// The best mask AP50:95 of each track (spec §3: a track's file is written when it beats the
/// best of both tracks so far).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BestTracker {
    /// Best over both tracks.
    pub total: Option<f64>,
    /// Its epoch.
    pub total_epoch: Option<u32>,
    /// Best regular value and epoch.
    pub regular: Option<(f64, u32)>,
    /// Best EMA value and epoch.
    pub ema: Option<(f64, u32)>,
}

/// Which best files an epoch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BestDecision {
    /// Write `checkpoint_best_regular`.
    pub regular: bool,
    /// Write `checkpoint_best_ema`.
    pub ema: bool,
}

impl BestTracker {
    /// Records an epoch's values and says which files to write; `checkpoint_best_total` is
    /// rewritten whenever either is.
    pub fn observe(&mut self, epoch: u32, regular: f64, ema: Option<f64>) -> BestDecision {
        let mut d = BestDecision::default();
        if self.regular.is_none_or(|(b, _)| regular > b) {
            self.regular = Some((regular, epoch));
        }
        if let Some(e) = ema
            && self.ema.is_none_or(|(b, _)| e > b)
        {
            self.ema = Some((e, epoch));
        }
        if self.total.is_none_or(|b| regular > b) {
            self.total = Some(regular);
            self.total_epoch = Some(epoch);
            d.regular = true;
        }
        if let Some(e) = ema
            && self.total.is_none_or(|b| e > b)
        {
            self.total = Some(e);
            self.total_epoch = Some(epoch);
            d.ema = true;
        }
        d
    }
}
