//! Running means of the logged numbers over an epoch (the reference's `MetricLogger` global
//! averages), keeping first-seen key order so that log lines have a stable layout.

/// Means of named values.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    keys: Vec<String>,
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl Meter {
    /// Adds one observation of `key`.
    pub fn add(&mut self, key: &str, value: f64) {
        match self.keys.iter().position(|k| k == key) {
            Some(i) => {
                self.sums[i] += value;
                self.counts[i] += 1;
            }
            None => {
                self.keys.push(key.to_owned());
                self.sums.push(value);
                self.counts.push(1);
            }
        }
    }

    /// The mean of `key`, if observed.
    pub fn mean(&self, key: &str) -> Option<f64> {
        let i = self.keys.iter().position(|k| k == key)?;
        Some(self.sums[i] / self.counts[i].max(1) as f64)
    }

    /// (key, mean) in first-seen order.
    pub fn means(&self) -> Vec<(String, f64)> {
        self.keys
            .iter()
            .zip(self.sums.iter().zip(&self.counts))
            .map(|(k, (s, c))| (k.clone(), s / (*c).max(1) as f64))
            .collect()
    }
}
