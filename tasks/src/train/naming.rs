//! A training instance's run name and the key that identifies its resolved config.

use std::collections::BTreeMap;

use flow_engine::task::AxisValue;
use flow_engine::value::Value;
use flow_engine::workflow::Param;

/// `nano-baseline` for a plain node; a sweep instance appends its matrix values
/// (`nano-baseline-lr5.0e-5-cosine`): numbers and booleans after their key's last segment,
/// words alone. Characters that cannot be in a directory name become `_`.
pub fn run_name(base: &str, axes: &[AxisValue<'_>]) -> String {
    let mut name = base.to_string();
    for a in axes {
        name.push('-');
        let short = a.name.rsplit('.').next().unwrap_or(a.name);
        let part = match a.value {
            Value::Str(_) => a.text.to_string(),
            _ => format!("{short}{}", a.text),
        };
        name.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        }));
    }
    name
}

/// Identifies a resolved config: the same hyperparameters give the same key, however they
/// were written (numbers by value, maps in any order).
pub fn experiment_key(params: &BTreeMap<String, Param>) -> String {
    let values: BTreeMap<&str, &Value> =
        params.iter().map(|(k, p)| (k.as_str(), &p.value)).collect();
    let text = serde_json::to_string(&(super::TrainTask::KEY_VERSION, values)).unwrap_or_default();
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_names_follow_the_design() {
        let lr = Value::Float(5e-5);
        let sched = Value::Str("cosine".into());
        let axes = [
            AxisValue {
                name: "lr",
                value: &lr,
                text: "5.0e-5",
            },
            AxisValue {
                name: "lr_scheduler",
                value: &sched,
                text: "cosine",
            },
        ];
        assert_eq!(
            run_name("nano-baseline", &axes),
            "nano-baseline-lr5.0e-5-cosine"
        );
        let odd = Value::Str("a/b c".into());
        let axes = [AxisValue {
            name: "data.dataset_dir",
            value: &odd,
            text: "a/b c",
        }];
        assert_eq!(run_name("x", &axes), "x-a_b_c");
    }
}
