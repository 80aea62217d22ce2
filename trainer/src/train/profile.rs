//! Phase timings of the training step for `flow-train bench --profile`: each
//! mark synchronises the device and charges the time since the previous mark to a phase, so
//! the sums say where a step's time goes (forward, matching and losses, backward, optimizer,
//! EMA). Off by default: the synchronisations it adds are what the step otherwise avoids.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Device;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// (phase, total seconds, count).
pub type PhaseSums = Vec<(&'static str, f64, u64)>;

static STATE: Mutex<Option<(Instant, PhaseSums)>> = Mutex::new(None);

/// Turns profiling on (clearing the sums) or off (keeping them for [`take`]).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    if on && let Ok(mut s) = STATE.lock() {
        *s = Some((Instant::now(), Vec::new()));
    }
}

/// Whether marks are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Ends `phase` now (after the device finished its work) and starts the next one.
pub fn mark(device: Device, phase: &'static str) {
    if !enabled() {
        return;
    }
    crate::device::synchronize(device);
    if let Ok(mut guard) = STATE.lock()
        && let Some((last, sums)) = guard.as_mut()
    {
        let now = Instant::now();
        let secs = (now - *last).as_secs_f64();
        *last = now;
        match sums.iter_mut().find(|(p, _, _)| *p == phase) {
            Some(entry) => {
                entry.1 += secs;
                entry.2 += 1;
            }
            None => sums.push((phase, secs, 1)),
        }
    }
}

/// (phase, total seconds, count) in first-seen order, and clears the sums.
pub fn take() -> PhaseSums {
    let Ok(mut guard) = STATE.lock() else {
        return Vec::new();
    };
    match guard.as_mut() {
        Some((last, sums)) => {
            *last = Instant::now();
            std::mem::take(sums)
        }
        None => Vec::new(),
    }
}
