//! Running commands: the local executor, behind a trait the driver can fake.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// Longest command passed to `sh -c` directly.
const MAX_INLINE_COMMAND: usize = 64 * 1024;

/// One command to run for one instance.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub command: String,
    pub cwd: PathBuf,
    /// stdout and stderr both go here, interleaved as written.
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Set when the command could not be started at all.
    pub error: Option<String>,
}

impl JobResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.error.is_none()
    }
}

/// Starts jobs; the future resolves when the job has ended.
pub trait Executor {
    fn start(&self, job: Job) -> Pin<Box<dyn Future<Output = JobResult> + Send>>;
    /// Terminates every running job (whole process groups).
    fn terminate_all(&self, hard: bool);
}

/// Runs jobs as child processes of `sh -c`, each in its own process group.
#[derive(Default, Clone)]
pub struct LocalExecutor {
    groups: Arc<Mutex<HashSet<i32>>>,
}

impl LocalExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for LocalExecutor {
    fn start(&self, job: Job) -> Pin<Box<dyn Future<Output = JobResult> + Send>> {
        let groups = self.groups.clone();
        Box::pin(async move {
            let failed = |e: String| JobResult {
                exit_code: None,
                signal: None,
                error: Some(e),
            };
            if let Some(dir) = job.log.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                return failed(format!("cannot create {}: {e}", dir.display()));
            }
            let log = match std::fs::File::create(&job.log) {
                Ok(f) => f,
                Err(e) => return failed(format!("cannot create {}: {e}", job.log.display())),
            };
            let log2 = match log.try_clone() {
                Ok(f) => f,
                Err(e) => return failed(format!("cannot open {}: {e}", job.log.display())),
            };
            let mut cmd = tokio::process::Command::new("sh");
            // Linux refuses a single argument over 128 KiB (a gather over thousands of
            // outputs): such commands run from a script file next to the log instead.
            if job.command.len() > MAX_INLINE_COMMAND {
                let script = job.log.with_extension("sh");
                if let Err(e) = std::fs::write(&script, &job.command) {
                    return failed(format!("cannot write {}: {e}", script.display()));
                }
                cmd.arg(script);
            } else {
                cmd.arg("-c").arg(&job.command);
            }
            cmd.current_dir(&job.cwd)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .process_group(0)
                .kill_on_drop(true)
                .envs(job.env.iter().map(|(k, v)| (k, v)));
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => return failed(format!("cannot start `sh`: {e}")),
            };
            let pid = child.id().map(|p| p as i32);
            if let Some(p) = pid {
                groups.lock().unwrap().insert(p);
            }
            let status = child.wait().await;
            if let Some(p) = pid {
                groups.lock().unwrap().remove(&p);
            }
            match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    JobResult {
                        exit_code: s.code(),
                        signal: s.signal(),
                        error: None,
                    }
                }
                Err(e) => failed(format!("waiting for the command failed: {e}")),
            }
        })
    }

    fn terminate_all(&self, hard: bool) {
        let sig = if hard { libc::SIGKILL } else { libc::SIGTERM };
        for &pgid in self.groups.lock().unwrap().iter() {
            // SAFETY: kill(2) with a negative pid signals a process group we created.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

/// The running `flow` binary, exported to node commands as `FLOW_BIN` so built-in task
/// kinds can call back into it (`"$FLOW_BIN" exec-train ...`) without its path entering
/// any key. `FLOW_BIN` in flow's own environment wins (tests, wrappers).
pub fn flow_bin() -> std::path::PathBuf {
    std::env::var_os("FLOW_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| std::path::PathBuf::from("flow"))
}
