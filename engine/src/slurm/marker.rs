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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMarker {
    /// The node command's exit status as the shell saw it (128 + N when killed by signal N;
    /// 143 when SLURM terminated the job, even if the command then exited 0).
    pub exit_code: i32,
    /// Unix seconds.
    pub end_time: u64,
    /// `FLOW_ATTEMPT` of the run that wrote it.
    pub attempt: u32,
    /// `123` or `123_4` (array task); empty when the script ran outside SLURM.
    pub job_id: String,
}

impl ExitMarker {
    /// Whether the node's command succeeded (its outputs still have to be checked).
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Parses a marker's text.
    pub fn parse(text: &str) -> Result<ExitMarker, serde_json::Error> {
        serde_json::from_str(text.trim())
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
                exit_code: 3,
                end_time: 1_700_000_000,
                attempt: 2,
                job_id: "12_4".into()
            }
        );
        assert!(!m.success());
        assert!(ExitMarker::parse("{\"exit_code\":0").is_err());
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
}
