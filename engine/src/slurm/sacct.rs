//! Reading SLURM's answers: `sacct -X -P`, `squeue`, `scontrol show config`, and the
//! mapping from SLURM job states to flow's status enum (DESIGN §5).
//!
//! Reconciliation asks about all in-flight jobs in one call per poll, so these parsers take
//! the whole text of one call. They parse the `-P` (`|`-separated) text format, which is
//! stable across SLURM versions (the `--json` schema of 22.05 is not). A line that does not
//! parse is kept as an error next to the records, so one odd line never hides the others.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::marker::ExitMarker;
use super::resources::parse_clock;

/// The `--format` of the one batched `sacct` call; [`parse_sacct`] reads these columns.
pub const SACCT_FORMAT: &str = "JobIDRaw,JobID,State,ExitCode,Elapsed,AllocTRES";
/// The `-o` of the `squeue` fallback; [`parse_squeue`] reads these columns.
pub const SQUEUE_FORMAT: &str = "%i|%T|%r";

/// A job state as SLURM names it (first word of sacct's State; squeue's `%T`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SlurmState {
    Pending,
    Requeued,
    RequeueHold,
    RequeueFed,
    Configuring,
    Running,
    Suspended,
    Stopped,
    Completing,
    Signaling,
    StageOut,
    Resizing,
    Completed,
    Failed,
    SpecialExit,
    Cancelled,
    Revoked,
    Timeout,
    Deadline,
    Preempted,
    OutOfMemory,
    NodeFail,
    BootFail,
    /// A state this build does not know, as printed.
    Other(String),
}

impl SlurmState {
    /// Parses a state: the first word only (`CANCELLED by 0` is `CANCELLED`), and squeue's
    /// short codes are not accepted (use `%T`).
    pub fn parse(text: &str) -> SlurmState {
        let word = text.split_whitespace().next().unwrap_or("");
        match word.trim_end_matches('+') {
            "PENDING" => SlurmState::Pending,
            "REQUEUED" => SlurmState::Requeued,
            "REQUEUE_HOLD" => SlurmState::RequeueHold,
            "REQUEUE_FED" => SlurmState::RequeueFed,
            "CONFIGURING" => SlurmState::Configuring,
            "RUNNING" => SlurmState::Running,
            "SUSPENDED" => SlurmState::Suspended,
            "STOPPED" => SlurmState::Stopped,
            "COMPLETING" => SlurmState::Completing,
            "SIGNALING" => SlurmState::Signaling,
            "STAGE_OUT" => SlurmState::StageOut,
            "RESIZING" => SlurmState::Resizing,
            "COMPLETED" => SlurmState::Completed,
            "FAILED" => SlurmState::Failed,
            "SPECIAL_EXIT" => SlurmState::SpecialExit,
            "CANCELLED" => SlurmState::Cancelled,
            "REVOKED" => SlurmState::Revoked,
            "TIMEOUT" => SlurmState::Timeout,
            "DEADLINE" => SlurmState::Deadline,
            "PREEMPTED" => SlurmState::Preempted,
            "OUT_OF_MEMORY" => SlurmState::OutOfMemory,
            "NODE_FAIL" => SlurmState::NodeFail,
            "BOOT_FAIL" => SlurmState::BootFail,
            other => SlurmState::Other(other.to_string()),
        }
    }

    /// flow's status for this state (DESIGN §5). `Completed` still needs the outputs to be
    /// present and digested before a node counts as completed; the caller checks that.
    ///
    /// States DESIGN §5 does not list map by what they mean for the node: waiting to run
    /// again (`REQUEUE_HOLD`, `REQUEUE_FED`) is pending; still holding its allocation
    /// (`CONFIGURING`, `COMPLETING`, `SIGNALING`, `STAGE_OUT`, `RESIZING`, `STOPPED`) is
    /// running; `SPECIAL_EXIT` (held after a special exit code) is failed; `REVOKED` (a
    /// federated sibling ran it) and anything else is unknown.
    pub fn status(&self) -> JobStatus {
        use SlurmState::*;
        match self {
            Pending | Requeued | RequeueHold | RequeueFed => JobStatus::Pending,
            Running | Suspended | Configuring | Completing | Signaling | StageOut | Resizing
            | Stopped => JobStatus::Running,
            Completed => JobStatus::Completed,
            Failed | SpecialExit => JobStatus::Failed,
            Cancelled => JobStatus::Cancelled,
            Timeout | Deadline => JobStatus::Timeout,
            Preempted => JobStatus::Preempted,
            OutOfMemory => JobStatus::OutOfMemory,
            NodeFail | BootFail => JobStatus::NodeFail,
            Revoked | Other(_) => JobStatus::Unknown,
        }
    }
}

/// flow's one status enum for a submitted node (DESIGN §5), serialized in snake_case as
/// the registry and `--json` output spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Submitted,
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    Preempted,
    OutOfMemory,
    NodeFail,
    Unknown,
}

impl JobStatus {
    /// Every status, in the order DESIGN §5 lists them.
    pub const ALL: [JobStatus; 11] = [
        JobStatus::Submitted,
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Timeout,
        JobStatus::Preempted,
        JobStatus::OutOfMemory,
        JobStatus::NodeFail,
        JobStatus::Unknown,
    ];

    /// The names, in [`JobStatus::ALL`] order (for "did you mean" hints).
    pub const NAMES: [&'static str; 11] = [
        "submitted",
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "timeout",
        "preempted",
        "out_of_memory",
        "node_fail",
        "unknown",
    ];

    /// The status named as [`JobStatus::as_str`] spells it.
    pub fn parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Still queued or running: its outcome can change without anyone launching anything.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            JobStatus::Submitted | JobStatus::Pending | JobStatus::Running
        )
    }

    /// The name used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Timeout => "timeout",
            JobStatus::Preempted => "preempted",
            JobStatus::OutOfMemory => "out_of_memory",
            JobStatus::NodeFail => "node_fail",
            JobStatus::Unknown => "unknown",
        }
    }

    /// Whether the job will not change state any more on its own, so reconciliation can
    /// stop polling it. (`preempted` jobs are requeued by SLURM where the cluster is set up
    /// to; a job that reports it once is still polled until it leaves that state.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::Failed
                | JobStatus::Cancelled
                | JobStatus::Timeout
                | JobStatus::OutOfMemory
                | JobStatus::NodeFail
        )
    }

    /// The status of one submitted node from what is known about it (DESIGN §5):
    /// SLURM's state wins when SLURM reports one; otherwise the exit marker decides
    /// (exit 0 -> completed, else failed); a job SLURM has never shown and that left no
    /// marker is `submitted` (sacct can lag the submission by a moment, which is not a
    /// failure); one SLURM showed before and has since forgotten, with no marker, is
    /// `unknown`.
    pub fn resolve(
        state: Option<&SlurmState>,
        marker: Option<&ExitMarker>,
        seen_before: bool,
    ) -> JobStatus {
        if let Some(s) = state {
            let status = s.status();
            if status != JobStatus::Unknown {
                return status;
            }
        }
        match marker {
            Some(m) if m.success() => JobStatus::Completed,
            Some(_) => JobStatus::Failed,
            None if state.is_none() && !seen_before => JobStatus::Submitted,
            None => JobStatus::Unknown,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// Which array tasks a line is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayTasks {
    /// Not an array job.
    None,
    /// One task: `123_4`.
    One(u32),
    /// Tasks not started yet, listed together: `123_[2-5,7%2]` (inclusive ranges).
    Pending {
        /// Inclusive index ranges.
        ranges: Vec<(u32, u32)>,
        /// The `%` throttle, if any.
        throttle: Option<u32>,
    },
}

/// A job id as sacct's `JobID` and squeue's `%i` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId {
    /// The job id, or for an array the array's job id (`SLURM_ARRAY_JOB_ID`).
    pub job: u64,
    /// Which tasks of an array job the line is about.
    pub tasks: ArrayTasks,
}

impl JobId {
    /// Parses `123`, `123_4` and `123_[2-5%2]`; `None` for anything else (job steps such
    /// as `123.batch`, heterogeneous components `123+0`).
    pub fn parse(text: &str) -> Option<JobId> {
        let digits = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (job, rest) = match text.split_once('_') {
            Some((j, r)) => (digits(j)?, Some(r)),
            None => (digits(text)?, None),
        };
        let tasks = match rest {
            None => ArrayTasks::None,
            Some(r) => match r.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                None => ArrayTasks::One(u32::try_from(digits(r)?).ok()?),
                Some(inner) => {
                    let (list, throttle) = match inner.split_once('%') {
                        Some((l, t)) => (l, Some(u32::try_from(digits(t)?).ok()?)),
                        None => (inner, None),
                    };
                    let mut ranges = Vec::new();
                    for part in list.split(',') {
                        let (a, b) = match part.split_once('-') {
                            Some((a, b)) => (digits(a)?, digits(b)?),
                            None => (digits(part)?, digits(part)?),
                        };
                        if a > b {
                            return None;
                        }
                        ranges.push((u32::try_from(a).ok()?, u32::try_from(b).ok()?));
                    }
                    ArrayTasks::Pending { ranges, throttle }
                }
            },
        };
        Some(JobId { job, tasks })
    }

    /// Whether this line is about `job` (and, for array jobs, about task `task`).
    pub fn covers(&self, job: u64, task: Option<u32>) -> bool {
        if self.job != job {
            return false;
        }
        match (&self.tasks, task) {
            (ArrayTasks::None, None) => true,
            (ArrayTasks::One(t), Some(want)) => *t == want,
            (ArrayTasks::Pending { ranges, .. }, Some(want)) => {
                ranges.iter().any(|(a, b)| (*a..=*b).contains(&want))
            }
            _ => false,
        }
    }
}

/// `ExitCode` as sacct prints it: `<exit status>:<signal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode {
    /// The batch script's exit status.
    pub code: i32,
    /// The signal that killed it, 0 if none.
    pub signal: i32,
}

/// One line of `sacct -X -P -n --format=`[`SACCT_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SacctRecord {
    /// `JobIDRaw`: the unique id of this job or array task (the array's last task reuses
    /// the array job id, so match on [`SacctRecord::id`], not this).
    pub raw_id: u64,
    /// `JobID`: the job, or array job and task.
    pub id: JobId,
    /// The first word of `State`.
    pub state: SlurmState,
    /// State as printed (`CANCELLED by 0`).
    pub state_text: String,
    /// `ExitCode`.
    pub exit: Option<ExitCode>,
    /// `Elapsed` (run time so far, or in all).
    pub elapsed: Option<Duration>,
    /// `AllocTRES` as key -> value (`cpu` -> `8`, `gres/gpu` -> `1`, `mem` -> `48G`).
    pub alloc_tres: BTreeMap<String, String>,
}

impl SacctRecord {
    /// GPUs allocated (`gres/gpu` of AllocTRES), 0 when none or not yet allocated.
    pub fn gpus(&self) -> u32 {
        self.alloc_tres
            .get("gres/gpu")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Elapsed time x GPUs, for the registry's GPU-hours (DESIGN §5).
    pub fn gpu_hours(&self) -> f64 {
        self.elapsed.map(|e| e.as_secs_f64()).unwrap_or(0.0) / 3600.0 * f64::from(self.gpus())
    }
}

/// A line that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read line {line} of `{program}` output ({why}): {text:?}")]
pub struct ParseError {
    /// `sacct` or `squeue`.
    pub program: &'static str,
    /// 1-based line number in the output.
    pub line: usize,
    /// The line.
    pub text: String,
    /// What was wrong with it.
    pub why: &'static str,
}

/// What one call printed: the records, and the lines that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The lines that parsed, in order.
    pub records: Vec<T>,
    /// The lines that did not.
    pub errors: Vec<ParseError>,
}

/// Parses `sacct -X -P -n --format=`[`SACCT_FORMAT`] output. Job steps (`123.batch`),
/// which only appear without `-X`, are skipped.
pub fn parse_sacct(text: &str) -> Parsed<SacctRecord> {
    let mut out = Parsed {
        records: Vec::new(),
        errors: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |why| ParseError {
            program: "sacct",
            line: i + 1,
            text: line.to_string(),
            why,
        };
        let cols: Vec<&str> = line.split('|').collect();
        if cols.len() != 6 {
            out.errors.push(err("expected 6 `|`-separated columns"));
            continue;
        }
        if cols[1].contains('.') {
            continue; // a job step
        }
        let Ok(raw_id) = cols[0].parse::<u64>() else {
            out.errors.push(err("JobIDRaw is not a number"));
            continue;
        };
        let Some(id) = JobId::parse(cols[1]) else {
            out.errors.push(err("unrecognised JobID"));
            continue;
        };
        let exit = cols[3].split_once(':').and_then(|(c, s)| {
            Some(ExitCode {
                code: c.parse().ok()?,
                signal: s.parse().ok()?,
            })
        });
        let alloc_tres = cols[5]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.records.push(SacctRecord {
            raw_id,
            id,
            state: SlurmState::parse(cols[2]),
            state_text: cols[2].to_string(),
            exit,
            elapsed: parse_clock(cols[4]),
            alloc_tres,
        });
    }
    out
}

/// The record about `job` (task `task` of it, for an array), if sacct printed one.
pub fn find_sacct(records: &[SacctRecord], job: u64, task: Option<u32>) -> Option<&SacctRecord> {
    records.iter().find(|r| r.id.covers(job, task))
}

/// One line of `squeue -h -r -o `[`SQUEUE_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqueueRecord {
    /// `%i`: the job, or array job and task (or pending range without `-r`).
    pub id: JobId,
    /// `%T`: the state's long name.
    pub state: SlurmState,
    /// `%r`: why a job is pending (`Priority`, `JobHeldAdmin`), when printed.
    pub reason: Option<String>,
}

impl SqueueRecord {
    /// Whether SLURM or an administrator holds the pending job, so it will not run until
    /// released: `JobHeldAdmin`, or `launch failed requeued held` after SLURM gave up
    /// requeueing it. A user's own hold (`JobHeldUser`) is not one of these.
    pub fn held(&self) -> bool {
        let reason = self
            .reason
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .replace('_', " ");
        self.state.status() == JobStatus::Pending
            && (reason == "jobheldadmin" || reason.contains("requeued held"))
    }
}

/// Parses `squeue -h -o `[`SQUEUE_FORMAT`] output (with or without `-r`).
pub fn parse_squeue(text: &str) -> Parsed<SqueueRecord> {
    let mut out = Parsed {
        records: Vec::new(),
        errors: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |why| ParseError {
            program: "squeue",
            line: i + 1,
            text: line.to_string(),
            why,
        };
        let Some((id, rest)) = line.split_once('|') else {
            out.errors
                .push(err("expected `<job id>|<state>[|<reason>]`"));
            continue;
        };
        let (state, reason) = match rest.split_once('|') {
            Some((s, r)) => (s, Some(r.trim().to_string())),
            None => (rest, None),
        };
        let Some(id) = JobId::parse(id.trim()) else {
            out.errors.push(err("unrecognised job id"));
            continue;
        };
        out.records.push(SqueueRecord {
            id,
            state: SlurmState::parse(state.trim()),
            reason,
        });
    }
    out
}

/// `MaxArraySize` from `scontrol show config` (`None` if the line is missing).
pub fn parse_max_array_size(text: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "MaxArraySize")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Splits `n` array tasks into chunks of at most `min(MaxArraySize, configured)` tasks
/// (DESIGN §6: `slurm.max_array_size` can only lower the cluster's limit). Array indices
/// run from 0 to MaxArraySize - 1, and each chunk is submitted with indices from 0, so a
/// chunk of MaxArraySize tasks fits. A limit of 0 (arrays disabled) gives chunks of one.
pub fn array_chunks(
    n: usize,
    max_array_size: u32,
    configured: Option<u32>,
) -> Vec<std::ops::Range<usize>> {
    let limit = configured.map_or(max_array_size, |c| c.min(max_array_size));
    let size = (limit as usize).max(1);
    (0..n)
        .step_by(size)
        .map(|start| start..(start + size).min(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SACCT: &str = "\
13|11_0|COMPLETED|0:0|00:00:02|billing=1,cpu=1,mem=1G,node=1
16|11_3|FAILED|1:0|00:00:02|billing=1,cpu=1,mem=1G,node=1
11|11_[4-5%2]|PENDING|0:0|00:00:00|
12|12|CANCELLED by 0|0:0|00:00:01|billing=1,cpu=1,mem=1G,node=1
20|20|RUNNING|0:0|1-02:03:04|billing=8,cpu=8,gres/gpu:a100=1,gres/gpu=1,mem=48G,node=1
21|21|TIMEOUT|0:15|08:00:30|cpu=8,gres/gpu=2
20.batch|20.batch|RUNNING|0:0|1-02:03:04|cpu=8
garbage line
x|22|PENDING|0:0|00:00:00|
";

    #[test]
    fn parses_sacct_lines() {
        let p = parse_sacct(SACCT);
        assert_eq!(p.records.len(), 6, "{p:?}");
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 8);
        let r = &p.records[1];
        assert_eq!(r.raw_id, 16);
        assert_eq!(
            r.id,
            JobId {
                job: 11,
                tasks: ArrayTasks::One(3)
            }
        );
        assert_eq!(r.state, SlurmState::Failed);
        assert_eq!(r.exit, Some(ExitCode { code: 1, signal: 0 }));
        assert_eq!(r.elapsed, Some(Duration::from_secs(2)));
        assert_eq!(
            p.records[2].id.tasks,
            ArrayTasks::Pending {
                ranges: vec![(4, 5)],
                throttle: Some(2)
            }
        );
        assert_eq!(p.records[3].state, SlurmState::Cancelled);
        assert_eq!(p.records[3].state_text, "CANCELLED by 0");
        let gpu = &p.records[4];
        assert_eq!(gpu.gpus(), 1);
        assert_eq!(gpu.elapsed, Some(Duration::from_secs(93784)));
        assert!((gpu.gpu_hours() - 93784.0 / 3600.0).abs() < 1e-9);
        assert_eq!(p.records[5].gpus(), 2);
        assert_eq!(
            p.records[5].exit,
            Some(ExitCode {
                code: 0,
                signal: 15
            })
        );
        assert_eq!(p.records[2].gpus(), 0);
    }

    #[test]
    fn finds_tasks_including_pending_ranges() {
        let p = parse_sacct(SACCT);
        let state = |job, task| find_sacct(&p.records, job, task).map(|r| r.state.clone());
        assert_eq!(state(11, Some(0)), Some(SlurmState::Completed));
        assert_eq!(state(11, Some(3)), Some(SlurmState::Failed));
        assert_eq!(state(11, Some(5)), Some(SlurmState::Pending));
        assert_eq!(state(11, Some(1)), None, "not visible yet");
        assert_eq!(state(11, None), None, "an array is asked about by task");
        assert_eq!(state(12, None), Some(SlurmState::Cancelled));
        assert_eq!(state(12, Some(0)), None);
        assert_eq!(state(99, None), None);
    }

    #[test]
    fn job_ids() {
        let p = |s| JobId::parse(s);
        assert_eq!(
            p("123_[1,3,5-7]").unwrap().tasks,
            ArrayTasks::Pending {
                ranges: vec![(1, 1), (3, 3), (5, 7)],
                throttle: None
            }
        );
        assert!(p("123_[1,3,5-7]").unwrap().covers(123, Some(6)));
        assert!(!p("123_[1,3,5-7]").unwrap().covers(123, Some(4)));
        for bad in [
            "",
            "x",
            "123.batch",
            "123+0",
            "123_",
            "123_[]",
            "123_[5-2]",
            "_4",
            "123_4_5",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn states_map_to_statuses_as_design_lists() {
        let cases = [
            ("PENDING", JobStatus::Pending),
            ("REQUEUED", JobStatus::Pending),
            ("RUNNING", JobStatus::Running),
            ("SUSPENDED", JobStatus::Running),
            ("COMPLETED", JobStatus::Completed),
            ("FAILED", JobStatus::Failed),
            ("CANCELLED by 0", JobStatus::Cancelled),
            ("CANCELLED+", JobStatus::Cancelled),
            ("TIMEOUT", JobStatus::Timeout),
            ("DEADLINE", JobStatus::Timeout),
            ("PREEMPTED", JobStatus::Preempted),
            ("OUT_OF_MEMORY", JobStatus::OutOfMemory),
            ("NODE_FAIL", JobStatus::NodeFail),
            ("BOOT_FAIL", JobStatus::NodeFail),
            ("REQUEUE_HOLD", JobStatus::Pending),
            ("COMPLETING", JobStatus::Running),
            ("CONFIGURING", JobStatus::Running),
            ("SPECIAL_EXIT", JobStatus::Failed),
            ("REVOKED", JobStatus::Unknown),
            ("SOMETHING_NEW", JobStatus::Unknown),
            ("", JobStatus::Unknown),
        ];
        for (text, want) in cases {
            assert_eq!(SlurmState::parse(text).status(), want, "{text}");
        }
    }

    #[test]
    fn resolve_combines_state_marker_and_history() {
        let ok = ExitMarker {
            version: 1,
            exit_code: 0,
            end_time: 1,
            attempt: 1,
            job_id: "1".into(),
            budget_spent: None,
        };
        let bad = ExitMarker {
            exit_code: 2,
            ..ok.clone()
        };
        let r = JobStatus::resolve;
        // Not yet in sacct: submitted, never failed.
        assert_eq!(r(None, None, false), JobStatus::Submitted);
        // Forgotten by SLURM, no marker: unknown.
        assert_eq!(r(None, None, true), JobStatus::Unknown);
        // Accounting down, marker present: the marker decides.
        assert_eq!(r(None, Some(&ok), true), JobStatus::Completed);
        assert_eq!(r(None, Some(&bad), false), JobStatus::Failed);
        // SLURM's state wins when it has one.
        assert_eq!(
            r(Some(&SlurmState::Running), Some(&ok), true),
            JobStatus::Running
        );
        assert_eq!(
            r(Some(&SlurmState::Timeout), Some(&ok), true),
            JobStatus::Timeout
        );
        assert_eq!(
            r(Some(&SlurmState::Other("X".into())), Some(&bad), true),
            JobStatus::Failed
        );
        assert_eq!(
            r(Some(&SlurmState::Other("X".into())), None, false),
            JobStatus::Unknown
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("done".parse::<JobStatus>().is_err());
        assert!(JobStatus::Timeout.is_terminal());
        assert!(!JobStatus::Submitted.is_terminal());
        assert!(!JobStatus::Preempted.is_terminal());
    }

    #[test]
    fn parses_squeue() {
        let p = parse_squeue("11_[2-5%2]|PENDING\n11_0|RUNNING\n12|COMPLETING\n\nbad\n");
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.errors.len(), 1);
        assert!(p.records[0].id.covers(11, Some(3)));
        assert_eq!(p.records[2].state.status(), JobStatus::Running);
    }

    #[test]
    fn max_array_size_from_scontrol() {
        let text = "Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 1001\nMaxJobCount             = 10000\n";
        assert_eq!(parse_max_array_size(text), Some(1001));
        assert_eq!(parse_max_array_size("MaxJobCount = 5\n"), None);
    }

    #[test]
    fn chunks_respect_the_lower_limit() {
        assert_eq!(array_chunks(20, 1001, Some(8)), vec![0..8, 8..16, 16..20]);
        assert_eq!(array_chunks(20, 1001, None), vec![0..20]);
        assert_eq!(array_chunks(20, 8, Some(100)), vec![0..8, 8..16, 16..20]);
        assert_eq!(array_chunks(1001, 1001, None), vec![0..1001]);
        assert_eq!(array_chunks(1002, 1001, None), vec![0..1001, 1001..1002]);
        assert_eq!(
            array_chunks(0, 1001, None),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(array_chunks(3, 0, None), vec![0..1, 1..2, 2..3]);
        assert_eq!(array_chunks(16, 1001, Some(8)), vec![0..8, 8..16]);
    }
}
