//! One `log.txt` line in RF-DETR 1.4.1's format (spec §3): a JSON object per epoch with
//! `train_*`, `test_*` (the validation split), `epoch`, `n_parameters`, `ema_test_*`, the best
//! results and timings, keys in the reference's order. Written by hand (not through a map) to
//! keep that order.

use std::fmt::Write;

use serde_json::Value;

/// An ordered JSON object under construction.
#[derive(Debug, Default, Clone)]
pub struct LogLine {
    entries: Vec<(String, Value)>,
}

impl LogLine {
    /// Appends `key: value` (a later duplicate key replaces the earlier value in place).
    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// A finite number, or `null` for NaN / infinity (JSON has neither).
    pub fn num(&mut self, key: impl Into<String>, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(key, v);
    }

    /// A list of numbers.
    pub fn nums(&mut self, key: impl Into<String>, values: &[f64]) {
        let v: Vec<Value> = values
            .iter()
            .map(|x| serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number))
            .collect();
        self.put(key, Value::Array(v));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The single-line JSON text (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(
                s,
                "{}: {}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            );
        }
        s.push('}');
        s
    }
}

/// `0:01:48`-style duration, as Python's `str(datetime.timedelta(seconds=int(s)))`.
pub fn timedelta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `2026-11-26 10:53:56.582310`: UTC wall time in Python's `str(datetime.now())` layout.
pub fn now_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
