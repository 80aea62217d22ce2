//! What a job asks SLURM for: partition, account, GPUs, memory, time, mail, extra flags.
//!
//! Requests come in layers (DESIGN §5, highest first: command line, node, the config's
//! `resources:`, workflow defaults, the model-size policy, `configs/flow.yaml`), so
//! [`Resources`] is a set of optional fields merged with [`Resources::overlay`]. Every value
//! ends up on an `#SBATCH` line, so each one is checked against a strict pattern before a
//! script is written: no value can smuggle a second line (or a second option) into a batch
//! script, and a mistake is reported with the field and the value instead of as an sbatch
//! error after half a workflow was submitted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `--mail-type` values SLURM 22.05 accepts (case-insensitive, comma-separated).
pub const MAIL_TYPES: &[&str] = &[
    "NONE",
    "BEGIN",
    "END",
    "FAIL",
    "REQUEUE",
    "ALL",
    "INVALID_DEPEND",
    "STAGE_OUT",
    "TIME_LIMIT",
    "TIME_LIMIT_90",
    "TIME_LIMIT_80",
    "TIME_LIMIT_50",
    "ARRAY_TASKS",
];

/// Options flow writes itself, with the field to use instead (`None`: flow always sets it).
///
/// An extra flag naming one of these, or an abbreviation of one (sbatch accepts unambiguous
/// prefixes such as `--part`), is refused: it would fight the dedicated field or break what
/// flow relies on (log paths, the array index mapping, dependencies, requeueing).
pub const RESERVED_FLAGS: &[(&str, Option<&str>)] = &[
    ("partition", Some("partition")),
    ("account", Some("account")),
    ("qos", Some("qos")),
    ("gres", Some("gpus and gpu_type")),
    ("cpus-per-task", Some("cpus_per_task")),
    ("mem", Some("mem")),
    ("time", Some("time")),
    ("mail-user", Some("mail_user")),
    ("mail-type", Some("mail_type")),
    ("job-name", None),
    ("output", None),
    ("error", None),
    ("input", None),
    ("array", None),
    ("dependency", None),
    ("kill-on-invalid-dep", None),
    ("signal", None),
    ("requeue", None),
    ("no-requeue", None),
    ("open-mode", None),
    ("parsable", None),
    ("wrap", None),
    ("chdir", None),
];

/// A SLURM resource request; `None` (or an empty list) means "not set at this layer".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// GPUs per job: `--gres=gpu[:<gpu_type>]:<n>`; 0 asks for none.
    pub gpus: Option<u32>,
    /// The gres type (`a100`); only used when `gpus` is above 0.
    pub gpu_type: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `48G` or `4096` (MB).
    pub mem: Option<String>,
    /// `--time`: `D-HH:MM:SS`, `HH:MM:SS`, `MM:SS` or whole minutes.
    pub time: Option<String>,
    /// `--mail-user`.
    pub mail_user: Option<String>,
    /// `--mail-type`: one or more of [`MAIL_TYPES`], comma-separated.
    pub mail_type: Option<String>,
    /// Further sbatch options, each `--name` or `--name=value`, one per `#SBATCH` line.
    pub extra: Vec<String>,
    /// Not a resource but how the job behaves, layered the same way so that one node can
    /// differ from its workflow: whether it requeues itself shortly before its time limit
    /// and resumes (`--signal` and the USR1 trap; `None`: the task kind decides, training
    /// does). Never rendered as an `#SBATCH` line by [`Resources::sbatch_flags`].
    pub requeue: Option<bool>,
    /// Requeues a job may go through, its own near the time limit and SLURM's (preemption,
    /// node failure) together: the per-node retry budget (`None`: 3). Not an `#SBATCH` line.
    pub max_requeues: Option<u32>,
}

/// A resource value that cannot be written into a batch script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ResourceError {
    /// The value does not match the field's pattern.
    #[error("invalid SLURM {field} {value:?}: expected {expected}")]
    Invalid {
        /// The field, as written in config files (`mem`, `mail_user`, `extra flag`).
        field: &'static str,
        /// The value as given.
        value: String,
        /// What the field accepts.
        expected: &'static str,
    },
    /// An extra flag sets an option that flow writes itself.
    #[error("SLURM extra flag {flag:?} sets `--{option}`, which flow manages itself")]
    #[diagnostic(help("{help}"))]
    Reserved {
        /// The flag as given.
        flag: String,
        /// The option it sets (or abbreviates).
        option: &'static str,
        /// What to do instead.
        help: String,
    },
}

fn invalid(field: &'static str, value: &str, expected: &'static str) -> ResourceError {
    ResourceError::Invalid {
        field,
        value: value.to_string(),
        expected,
    }
}

impl Resources {
    /// This layer with `higher` on top: each field `higher` sets wins; `extra` flags are
    /// concatenated (lower first, exact duplicates dropped), so for an option given in both
    /// layers the higher one comes last, which is the one sbatch keeps.
    pub fn overlay(&self, higher: &Resources) -> Resources {
        fn pick<T: Clone>(low: &Option<T>, high: &Option<T>) -> Option<T> {
            high.clone().or_else(|| low.clone())
        }
        let mut extra = self.extra.clone();
        for flag in &higher.extra {
            if !extra.contains(flag) {
                extra.push(flag.clone());
            }
        }
        Resources {
            partition: pick(&self.partition, &higher.partition),
            account: pick(&self.account, &higher.account),
            qos: pick(&self.qos, &higher.qos),
            gpus: pick(&self.gpus, &higher.gpus),
            gpu_type: pick(&self.gpu_type, &higher.gpu_type),
            cpus_per_task: pick(&self.cpus_per_task, &higher.cpus_per_task),
            mem: pick(&self.mem, &higher.mem),
            time: pick(&self.time, &higher.time),
            mail_user: pick(&self.mail_user, &higher.mail_user),
            mail_type: pick(&self.mail_type, &higher.mail_type),
            extra,
            requeue: pick(&self.requeue, &higher.requeue),
            max_requeues: pick(&self.max_requeues, &higher.max_requeues),
        }
    }

    /// Merges layers given lowest precedence first (`configs/flow.yaml` ... command line).
    pub fn layered<'a>(layers: impl IntoIterator<Item = &'a Resources>) -> Resources {
        layers
            .into_iter()
            .fold(Resources::default(), |acc, layer| acc.overlay(layer))
    }

    /// Checks every set field; the error names the first bad field and its value.
    pub fn validate(&self) -> Result<(), ResourceError> {
        self.sbatch_flags().map(|_| ())
    }

    /// The time limit as a duration (`None` when unset; `Some(ZERO)` is SLURM's "no limit").
    pub fn time_limit(&self) -> Result<Option<Duration>, ResourceError> {
        match &self.time {
            None => Ok(None),
            Some(t) => parse_time_limit(t)
                .map(Some)
                .ok_or_else(|| invalid("time", t, TIME_EXPECTED)),
        }
    }

    /// The validated options, one `--name=value` per element, in a fixed order (so scripts
    /// are deterministic): partition, account, qos, gres, cpus, mem, time, mail, extras.
    /// `requeue` and `max_requeues` are not options of their own: the batch script renders
    /// them (`--signal`, its traps).
    pub fn sbatch_flags(&self) -> Result<Vec<String>, ResourceError> {
        let mut flags = Vec::new();
        const NAME: &str = "letters, digits, `_`, `.` and `-`";
        for (field, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
        ] {
            if let Some(v) = value {
                if !is_name(v, |c| c == '_' || c == '.' || c == '-') {
                    return Err(invalid(field, v, NAME));
                }
                flags.push(format!("--{field}={v}"));
            }
        }
        if let Some(t) = &self.gpu_type
            && !is_name(t, |c| c == '_' || c == '-')
        {
            return Err(invalid("gpu_type", t, "letters, digits, `_` and `-`"));
        }
        match (self.gpus, &self.gpu_type) {
            (Some(n), Some(t)) if n > 0 => flags.push(format!("--gres=gpu:{t}:{n}")),
            (Some(n), None) if n > 0 => flags.push(format!("--gres=gpu:{n}")),
            _ => {}
        }
        if let Some(n) = self.cpus_per_task {
            if n == 0 {
                return Err(invalid("cpus_per_task", "0", "a whole number above 0"));
            }
            flags.push(format!("--cpus-per-task={n}"));
        }
        if let Some(m) = &self.mem {
            if !is_mem(m) {
                return Err(invalid(
                    "mem",
                    m,
                    "a whole number with an optional unit K, M, G or T (`48G`)",
                ));
            }
            flags.push(format!("--mem={m}"));
        }
        if let Some(t) = &self.time {
            self.time_limit()?;
            flags.push(format!("--time={t}"));
        }
        if let Some(u) = &self.mail_user {
            if !is_mail_user(u) {
                return Err(invalid(
                    "mail_user",
                    u,
                    "a user name or an e-mail address without spaces or quotes",
                ));
            }
            flags.push(format!("--mail-user={u}"));
        }
        if let Some(t) = &self.mail_type {
            let ok = !t.is_empty()
                && t.split(',')
                    .all(|part| MAIL_TYPES.iter().any(|m| m.eq_ignore_ascii_case(part)));
            if !ok {
                return Err(invalid(
                    "mail_type",
                    t,
                    "one or more of NONE, BEGIN, END, FAIL, REQUEUE, ALL, INVALID_DEPEND, \
                     STAGE_OUT, TIME_LIMIT, TIME_LIMIT_90, TIME_LIMIT_80, TIME_LIMIT_50, \
                     ARRAY_TASKS, comma-separated",
                ));
            }
            flags.push(format!("--mail-type={}", t.to_ascii_uppercase()));
        }
        for flag in &self.extra {
            check_extra(flag)?;
            flags.push(flag.clone());
        }
        Ok(flags)
    }
}

const TIME_EXPECTED: &str = "D-HH:MM:SS, HH:MM:SS, MM:SS or whole minutes (`8:00:00`, `90`)";

fn is_name(s: &str, also: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || also(c))
}

fn is_mem(s: &str) -> bool {
    let digits = s.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(s);
    is_digits(digits, 12)
}

fn is_mail_user(s: &str) -> bool {
    let (user, host) = match s.split_once('@') {
        Some((u, h)) => (u, Some(h)),
        None => (s, None),
    };
    let user_ok = is_name(user, |c| "._%+-".contains(c));
    let host_ok = host.is_none_or(|h| is_name(h, |c| c == '.' || c == '-'));
    user_ok && host_ok
}

/// 1..=max ASCII digits.
fn is_digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses `D-HH:MM:SS`, `HH:MM:SS` and `MM:SS` (as `sacct` prints `Elapsed`, and as
/// `--time` takes them); minutes and seconds must be two digits below 60.
pub fn parse_clock(s: &str) -> Option<Duration> {
    let (days, rest) = match s.split_once('-') {
        Some((d, rest)) if is_digits(d, 6) => (d.parse::<u64>().ok()?, rest),
        Some(_) => return None,
        None => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let sixty = |p: &str| {
        (p.len() == 2 && is_digits(p, 2))
            .then(|| p.parse::<u64>().ok())
            .flatten()
            .filter(|v| *v < 60)
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m, sec] => {
            let hmax = if s.contains('-') { 2 } else { 6 };
            if !is_digits(h, hmax) {
                return None;
            }
            let h: u64 = h.parse().ok()?;
            if s.contains('-') && h >= 24 {
                return None;
            }
            (h, sixty(m)?, sixty(sec)?)
        }
        [m, sec] if !s.contains('-') => {
            if !is_digits(m, 6) {
                return None;
            }
            (0, m.parse().ok()?, sixty(sec)?)
        }
        _ => return None,
    };
    Some(Duration::from_secs(((days * 24 + h) * 60 + m) * 60 + sec))
}

/// Parses a `--time` value: a clock form of [`parse_clock`] or whole minutes.
pub fn parse_time_limit(s: &str) -> Option<Duration> {
    if is_digits(s, 8) {
        return Some(Duration::from_secs(s.parse::<u64>().ok()? * 60));
    }
    parse_clock(s)
}

fn check_extra(flag: &str) -> Result<(), ResourceError> {
    const EXPECTED: &str = "`--name` or `--name=value`, printable ASCII without spaces, \
                            quotes, backslashes or `#`";
    let Some(body) = flag.strip_prefix("--") else {
        return Err(invalid("extra flag", flag, EXPECTED));
    };
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let name_ok =
        name.starts_with(|c: char| c.is_ascii_alphanumeric()) && is_name(name, |c| c == '-');
    let value_ok = value.is_none_or(|v| {
        v.chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\#".contains(c))
    });
    if !name_ok || !value_ok {
        return Err(invalid("extra flag", flag, EXPECTED));
    }
    // sbatch takes unambiguous abbreviations, so `--part` is `--partition`.
    if let Some((option, field)) = RESERVED_FLAGS.iter().find(|(r, _)| r.starts_with(name)) {
        return Err(ResourceError::Reserved {
            flag: flag.to_string(),
            option,
            help: match field {
                Some(f) => format!("set the `{f}` resource instead"),
                None => "flow sets this option on every job it submits".to_string(),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Resources {
        Resources {
            partition: Some("GPUQ".into()),
            account: Some("flowtest".into()),
            qos: Some("normal".into()),
            gpus: Some(1),
            gpu_type: Some("a100".into()),
            cpus_per_task: Some(8),
            mem: Some("48G".into()),
            time: Some("8:00:00".into()),
            mail_user: Some("me@example.org".into()),
            mail_type: Some("end,FAIL".into()),
            extra: vec!["--exclusive".into(), "--constraint=a100&v100".into()],
            requeue: Some(true),
            max_requeues: Some(2),
        }
    }

    #[test]
    fn renders_every_field_in_a_fixed_order() {
        assert_eq!(
            full().sbatch_flags().unwrap(),
            [
                "--partition=GPUQ",
                "--account=flowtest",
                "--qos=normal",
                "--gres=gpu:a100:1",
                "--cpus-per-task=8",
                "--mem=48G",
                "--time=8:00:00",
                "--mail-user=me@example.org",
                "--mail-type=END,FAIL",
                "--exclusive",
                "--constraint=a100&v100",
            ]
        );
        assert!(Resources::default().sbatch_flags().unwrap().is_empty());
    }

    #[test]
    fn gpus_without_type_and_zero_gpus() {
        let r = Resources {
            gpus: Some(2),
            ..Default::default()
        };
        assert_eq!(r.sbatch_flags().unwrap(), ["--gres=gpu:2"]);
        let r = Resources {
            gpus: Some(0),
            gpu_type: Some("a100".into()),
            ..Default::default()
        };
        assert!(r.sbatch_flags().unwrap().is_empty());
    }

    #[test]
    fn overlay_highest_wins_per_field() {
        let base = Resources {
            partition: Some("low".into()),
            account: Some("lab".into()),
            mem: Some("48G".into()),
            extra: vec!["--exclusive".into(), "--constraint=a".into()],
            ..Default::default()
        };
        let high = Resources {
            partition: Some("high".into()),
            time: Some("90".into()),
            extra: vec!["--constraint=b".into(), "--exclusive".into()],
            ..Default::default()
        };
        let m = base.overlay(&high);
        assert_eq!(m.partition.as_deref(), Some("high"));
        assert_eq!(m.account.as_deref(), Some("lab"));
        assert_eq!(m.mem.as_deref(), Some("48G"));
        assert_eq!(m.time.as_deref(), Some("90"));
        assert_eq!(m.extra, ["--exclusive", "--constraint=a", "--constraint=b"]);
        // Overlaying nothing changes nothing; layered() folds lowest first.
        assert_eq!(m.overlay(&Resources::default()), m);
        // The requeue switch and budget layer like the resources (a node's `false` wins
        // over its workflow's `true`).
        let workflow = Resources {
            requeue: Some(true),
            max_requeues: Some(5),
            ..Default::default()
        };
        let node = Resources {
            requeue: Some(false),
            ..Default::default()
        };
        let n = Resources::layered([&Resources::default(), &workflow, &node]);
        assert_eq!((n.requeue, n.max_requeues), (Some(false), Some(5)));
        let n = Resources::layered([&workflow, &Resources::default()]);
        assert_eq!((n.requeue, n.max_requeues), (Some(true), Some(5)));
        assert_eq!(Resources::default().requeue, None);
        assert_eq!(Resources::layered([&base, &high]), m);
        assert_eq!(
            Resources::layered([&high, &base]).partition.as_deref(),
            Some("low")
        );
    }

    fn err_field(r: Resources) -> (String, String) {
        match r.sbatch_flags().unwrap_err() {
            ResourceError::Invalid { field, value, .. } => (field.to_string(), value),
            ResourceError::Reserved { flag, .. } => ("reserved".into(), flag),
        }
    }

    #[test]
    fn hostile_values_are_refused_with_field_and_value() {
        let nl = "GPUQ\n#SBATCH --account=bogus";
        let cases: Vec<(Resources, &str)> = vec![
            (
                Resources {
                    partition: Some(nl.into()),
                    ..Default::default()
                },
                "partition",
            ),
            (
                Resources {
                    account: Some("a b".into()),
                    ..Default::default()
                },
                "account",
            ),
            (
                Resources {
                    qos: Some("$(id)".into()),
                    ..Default::default()
                },
                "qos",
            ),
            (
                Resources {
                    gpu_type: Some("a100:2".into()),
                    gpus: Some(1),
                    ..Default::default()
                },
                "gpu_type",
            ),
            (
                Resources {
                    mem: Some("48GB".into()),
                    ..Default::default()
                },
                "mem",
            ),
            (
                Resources {
                    time: Some("8:00:00\n".into()),
                    ..Default::default()
                },
                "time",
            ),
            (
                Resources {
                    mail_user: Some("me@x.org --mail-type=ALL".into()),
                    ..Default::default()
                },
                "mail_user",
            ),
            (
                Resources {
                    mail_user: Some("\"me\"@x.org".into()),
                    ..Default::default()
                },
                "mail_user",
            ),
            (
                Resources {
                    mail_type: Some("END,SOMETIMES".into()),
                    ..Default::default()
                },
                "mail_type",
            ),
            (
                Resources {
                    extra: vec!["--comment=x\n#SBATCH --account=bogus".into()],
                    ..Default::default()
                },
                "extra flag",
            ),
            (
                Resources {
                    extra: vec!["--comment=a\0b".into()],
                    ..Default::default()
                },
                "extra flag",
            ),
            (
                Resources {
                    extra: vec!["-N 2".into()],
                    ..Default::default()
                },
                "extra flag",
            ),
            (
                Resources {
                    extra: vec!["--comment=\"two words\"".into()],
                    ..Default::default()
                },
                "extra flag",
            ),
            (
                Resources {
                    cpus_per_task: Some(0),
                    ..Default::default()
                },
                "cpus_per_task",
            ),
        ];
        for (r, field) in cases {
            let (got, value) = err_field(r.clone());
            assert_eq!(got, field, "{r:?}");
            assert!(!value.is_empty());
        }
        let msg = Resources {
            partition: Some(nl.into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("invalid SLURM partition \"GPUQ\\n#SBATCH --account=bogus\""),
            "{msg}"
        );
        assert!(
            !msg.contains('\n'),
            "the message itself stays on one line: {msg}"
        );
    }

    #[test]
    fn reserved_flags_and_their_abbreviations_are_refused() {
        for flag in [
            "--partition=x",
            "--part=x",
            "--array=0-3",
            "--dependency=afterok:1",
            "--output=/tmp/x",
            "--time=5",
            "--mem=1G",
            "--gres=gpu:1",
            "--requeue",
            "--no-requeue",
            "--wrap=id",
        ] {
            let r = Resources {
                extra: vec![flag.into()],
                ..Default::default()
            };
            assert!(
                matches!(r.validate(), Err(ResourceError::Reserved { .. })),
                "{flag}"
            );
        }
        // Longer options that merely start with a reserved name are fine.
        let r = Resources {
            extra: vec![
                "--mem-per-cpu=4G".into(),
                "--time-min=60".into(),
                "--gres-flags=enforce-binding".into(),
                "--exclusive".into(),
                "--nodes=1".into(),
            ],
            ..Default::default()
        };
        r.validate().unwrap();
    }

    #[test]
    fn memory_and_time_patterns() {
        for ok in ["48G", "4096", "1T", "512M", "64K", "0"] {
            assert!(is_mem(ok), "{ok}");
        }
        for bad in ["", "G", "48g", "48GB", "-1G", "4.5G", " 48G"] {
            assert!(!is_mem(bad), "{bad}");
        }
        let secs = |s: &str| parse_time_limit(s).map(|d| d.as_secs());
        assert_eq!(secs("8:00:00"), Some(8 * 3600));
        assert_eq!(secs("08:00:00"), Some(8 * 3600));
        assert_eq!(secs("1-00:00:00"), Some(86400));
        assert_eq!(
            secs("2-12:30:15"),
            Some(2 * 86400 + 12 * 3600 + 30 * 60 + 15)
        );
        assert_eq!(secs("30:00"), Some(1800));
        assert_eq!(secs("90"), Some(5400));
        assert_eq!(secs("0"), Some(0));
        assert_eq!(secs("100:00:00"), Some(360000));
        for bad in [
            "",
            "8:0:00",
            "8:60:00",
            "8:00:60",
            "1-24:00:00",
            "1-8",
            "1-08:00",
            "8h",
            "-1",
            "1--1:00:00",
            "8:00:00:00",
            " 90",
            "90 ",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
        let r = Resources {
            time: Some("1-02:00:00".into()),
            ..Default::default()
        };
        assert_eq!(
            r.time_limit().unwrap(),
            Some(Duration::from_secs(26 * 3600))
        );
    }

    #[test]
    fn mail_users() {
        for ok in ["me", "me@example.org", "first.last+flow@sub.example-x.org"] {
            assert!(is_mail_user(ok), "{ok}");
        }
        for bad in [
            "",
            "me@",
            "@x.org",
            "a b@x.org",
            "me@x.org\n",
            "m'e@x.org",
            "a@b@c",
        ] {
            assert!(!is_mail_user(bad), "{bad}");
        }
    }

    #[test]
    fn deserializes_from_yaml_like_json() {
        let r: Resources = serde_json::from_str(
            r#"{"partition":"GPUQ","gpus":1,"gpu_type":"a100","extra":["--exclusive"]}"#,
        )
        .unwrap();
        assert_eq!(r.gpus, Some(1));
        assert!(serde_json::from_str::<Resources>(r#"{"partitoin":"x"}"#).is_err());
    }
}
