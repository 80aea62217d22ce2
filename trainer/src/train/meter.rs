//! Running means of the logged numbers over an epoch (the reference's `MetricLogger` global
//! averages), keeping first-seen key order so that log lines have a stable layout.
//!
//! A step's numbers can stay on the device ([`Meter::add_tensor`]): they are summed there and
//! read back once, when a mean is asked for, instead of one wait for the GPU per number and
//! step.

use tch::{Kind, Tensor};

/// Means of named values.
#[derive(Debug, Default)]
pub struct Meter {
    keys: Vec<String>,
    sums: Vec<f64>,
    counts: Vec<u64>,
    /// Keys (indices into `keys`) and the device-side running sum of their values.
    pending: Option<(Vec<usize>, Tensor)>,
}

impl Meter {
    fn index(&mut self, key: &str) -> usize {
        match self.keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key.to_owned());
                self.sums.push(0.0);
                self.counts.push(0);
                self.keys.len() - 1
            }
        }
    }

    /// Adds one observation of `key`.
    pub fn add(&mut self, key: &str, value: f64) {
        let i = self.index(key);
        self.sums[i] += value;
        self.counts[i] += 1;
    }

    /// Adds one observation of each of `keys` from the 1-d tensor `values` (same length),
    /// without reading it back now. A different key set than the pending one settles first.
    pub fn add_tensor(&mut self, keys: &[String], values: &Tensor) {
        let idx: Vec<usize> = keys.iter().map(|k| self.index(k)).collect();
        for &i in &idx {
            self.counts[i] += 1;
        }
        let values = values.detach().to_kind(Kind::Double);
        match self.pending.take() {
            Some((pending_idx, sum)) if pending_idx == idx => {
                self.pending = Some((idx, sum + values));
            }
            other => {
                self.pending = other;
                self.settle();
                self.pending = Some((idx, values));
            }
        }
    }

    /// Reads the pending device sums back (one copy).
    pub fn settle(&mut self) {
        if let Some((idx, sum)) = self.pending.take() {
            let values = Vec::<f64>::try_from(sum.to_device(tch::Device::Cpu)).unwrap_or_default();
            for (i, v) in idx.into_iter().zip(values) {
                self.sums[i] += v;
            }
        }
    }

    /// The mean of `key`, if observed.
    pub fn mean(&mut self, key: &str) -> Option<f64> {
        self.settle();
        let i = self.keys.iter().position(|k| k == key)?;
        Some(self.sums[i] / self.counts[i].max(1) as f64)
    }

    /// (key, mean) in first-seen order.
    pub fn means(&mut self) -> Vec<(String, f64)> {
        self.settle();
        self.keys
            .iter()
            .zip(self.sums.iter().zip(&self.counts))
            .map(|(k, (s, c))| (k.clone(), s / (*c).max(1) as f64))
            .collect()
    }
}
