//! The exit marker a batch script leaves for each node (DESIGN §6).
//!
//! Accounting can be down and `squeue` forgets finished jobs after a few minutes, so every
//! batch script writes, from its EXIT trap, one small JSON file per node into the node's
//! `.cache/` folder: the exit code and the end time. The script writes it to a temporary
//! name and renames it, so a reader sees either no marker or a complete one. A job that
//! requeues itself writes none (it will run again), nor does one killed outright (SIGKILL
//! after ignoring TERM for KillWait seconds, a node crash): sacct tells those apart.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a finished batch script recorded about its node.
///
/// Version 1 (no `version` field) has the exit code, end time, attempt and job id; version
/// 2 adds the optional `budget_spent`. A newer version is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMarker {
    /// The format version ([`ExitMarker::VERSION`] at most); 1 when absent.
    #[serde(default = "version_one")]
    pub version: u32,
    /// The node command's exit status as the shell saw it (128 + N when killed by signal N;
    /// 143 when SLURM terminated the job, even if the command then exited 0).
    pub exit_code: i32,
    /// Unix seconds.
    pub end_time: u64,
    /// `FLOW_ATTEMPT` of the run that wrote it.
    pub attempt: u32,
    /// `123` or `123_4` (array task); empty when the script ran outside SLURM.
    pub job_id: String,
    /// Set when the run ended at its start, without running the command, because SLURM had
    /// requeued the job more often than its budget allows (preemption, node failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_spent: Option<BudgetSpent>,
}

fn version_one() -> u32 {
    1
}

/// The requeue budget a job ran out of ([`ExitMarker::budget_spent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpent {
    /// `SLURM_RESTART_COUNT`: how often the job had been requeued, by itself or by SLURM.
    pub requeues: u32,
    /// The budget (`max_requeues`).
    pub max_requeues: u32,
}

impl ExitMarker {
    /// The newest format version this build reads.
    pub const VERSION: u32 = 2;

    /// Whether the node's command succeeded (its outputs still have to be checked).
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Whether SLURM terminated the job (SIGTERM on cancel, time limit, preemption, node
    /// failure or requeue: exit status 143), so SLURM's own state says how it ended.
    pub fn terminated(&self) -> bool {
        self.exit_code == 143
    }

    /// Parses a marker's text; a version newer than [`ExitMarker::VERSION`] is an error.
    pub fn parse(text: &str) -> Result<ExitMarker, serde_json::Error> {
        let m: ExitMarker = serde_json::from_str(text.trim())?;
        if m.version > ExitMarker::VERSION {
            return Err(serde::de::Error::custom(format!(
                "exit marker version {} is newer than this flow reads ({}); upgrade flow",
                m.version,
                ExitMarker::VERSION
            )));
        }
        Ok(m)
    }

    /// Reads the marker at `path`: `Ok(None)` when there is none (the job has not ended, or
    /// requeued itself).
    pub fn read(path: &Path) -> std::io::Result<Option<ExitMarker>> {
        match std::fs::read_to_string(path) {
            Ok(text) => ExitMarker::parse(&text)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What a submission's jobs were told about requeueing near their time limit, kept beside
/// its batch script as `requeue.json`, so that reconciliation can say why a job still ended
/// `timeout` (the budget was spent, or the requeue came too late) without parsing the
/// script. Only submissions whose jobs requeue themselves have one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueNote {
    /// [`RequeueNote::VERSION`]; a newer one is refused.
    pub version: u32,
    /// `--signal=B:USR1@N`: seconds before the time limit.
    pub signal_secs: u32,
    /// Requeues each job may do (compared with `SLURM_RESTART_COUNT`).
    pub max_requeues: u32,
    /// `FLOW_ATTEMPT` of each task's first run, by array index (one entry for a plain job),
    /// so a marker's attempt tells how often the job was requeued.
    pub first_attempts: Vec<u32>,
}

impl RequeueNote {
    /// The format version this build writes and reads.
    pub const VERSION: u32 = 1;

    /// Where the note of the submission whose script is `script` lives.
    pub fn path_for(script: &Path) -> std::path::PathBuf {
        script.with_file_name("requeue.json")
    }

    /// Writes the note atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Reads the note at `path`: `Ok(None)` when there is none; an error for garbage or a
    /// newer version.
    pub fn read(path: &Path) -> std::io::Result<Option<RequeueNote>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let note: RequeueNote = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if note.version > RequeueNote::VERSION {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} has version {}; this flow reads version {} (upgrade flow)",
                    path.display(),
                    note.version,
                    RequeueNote::VERSION
                ),
            ));
        }
        Ok(Some(note))
    }

    /// Requeues the job of task `index` had done when it wrote `marker`, and whether that
    /// spent its budget.
    pub fn requeues(&self, index: usize, marker: &ExitMarker) -> (u32, bool) {
        let first = self.first_attempts.get(index).copied().unwrap_or(1);
        let done = marker.attempt.saturating_sub(first);
        (done, done >= self.max_requeues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_script_writes() {
        let m = ExitMarker::parse(
            "{\"exit_code\":3,\"end_time\":1700000000,\"attempt\":2,\"job_id\":\"12_4\"}\n",
        )
        .unwrap();
        assert_eq!(
            m,
            ExitMarker {
                version: 1,
                exit_code: 3,
                end_time: 1_700_000_000,
                attempt: 2,
                job_id: "12_4".into(),
                budget_spent: None,
            }
        );
        // Version 2: a run that ended because its requeue budget was spent.
        let m = ExitMarker::parse(
            r#"{"version":2,"exit_code":75,"end_time":1,"attempt":3,"job_id":"9","budget_spent":{"requeues":2,"max_requeues":1}}"#,
        )
        .unwrap();
        assert_eq!(
            m.budget_spent,
            Some(BudgetSpent {
                requeues: 2,
                max_requeues: 1
            })
        );
        let err = ExitMarker::parse(
            r#"{"version":3,"exit_code":0,"end_time":1,"attempt":1,"job_id":"9"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("version 3"), "{err}");
        assert!(!m.success());
        assert!(ExitMarker::parse("{\"exit_code\":0").is_err());
        let m = ExitMarker::parse(r#"{"exit_code":143,"end_time":1,"attempt":3,"job_id":"7"}"#)
            .unwrap();
        assert!(m.terminated() && !m.success());
    }

    #[test]
    fn read_missing_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        assert_eq!(ExitMarker::read(&p).unwrap(), None);
        std::fs::write(&p, "half").unwrap();
        assert!(ExitMarker::read(&p).is_err());
        std::fs::write(
            &p,
            r#"{"exit_code":0,"end_time":1,"attempt":1,"job_id":""}"#,
        )
        .unwrap();
        assert!(ExitMarker::read(&p).unwrap().unwrap().success());
    }

    #[test]
    fn requeue_note_round_trips_and_refuses_newer_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = RequeueNote::path_for(&dir.path().join("job.sh"));
        assert_eq!(RequeueNote::read(&p).unwrap(), None);
        let note = RequeueNote {
            version: RequeueNote::VERSION,
            signal_secs: 300,
            max_requeues: 2,
            first_attempts: vec![1, 1],
        };
        note.write(&p).unwrap();
        assert_eq!(RequeueNote::read(&p).unwrap(), Some(note.clone()));
        let m = |attempt| ExitMarker {
            version: 1,
            exit_code: 143,
            end_time: 1,
            attempt,
            job_id: "5_1".into(),
            budget_spent: None,
        };
        assert_eq!(note.requeues(1, &m(2)), (1, false));
        assert_eq!(note.requeues(1, &m(3)), (2, true));
        std::fs::write(
            &p,
            r#"{"version":2,"signal_secs":1,"max_requeues":1,"first_attempts":[]}"#,
        )
        .unwrap();
        assert!(
            RequeueNote::read(&p)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }
}
