//! Batch scripts: one node, or a fan-out as one job array (DESIGN §6).
//!
//! The script is what a user reads under `.cache/` to learn what was submitted, so it is
//! plain bash with the node ids and keys in comments, and it is deterministic (same input,
//! same bytes), which also makes it snapshot-testable. Safety rules:
//!
//! - `#SBATCH` lines hold only validated values ([`Resources::sbatch_flags`]), numbers, and
//!   paths checked for characters sbatch would misread; sbatch stops reading `#SBATCH`
//!   lines at the first command, and every later line that holds a user value is either a
//!   bash-quoted assignment (one line, `$'...'` for control characters) or a comment with
//!   control characters escaped. So no node id, key, path or command can add an option.
//! - The node's command runs with `sh -c`, exactly as the local executor runs it; it was
//!   already built with every parameter shell-quoted (see `template`).
//! - The command runs in the background while the script waits, so that SLURM's signals
//!   (TERM on cancel or timeout, USR1 ahead of the time limit) are handled at once, not
//!   after the command ends.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use shell_quote::Bash;

use super::resources::{ResourceError, Resources};

/// Variables SLURM sets that make trainers think they are one rank of a distributed run
/// (RF-DETR 1.4 turns DDP on when `SLURM_PROCID` is set; Lightning takes its rank and world
/// size from them). flow's jobs are single-task, so the node's command runs without them.
pub const RANK_VARS: &[&str] = &[
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_NTASKS",
    "SLURM_NPROCS",
];

/// One node the script runs (the only one, or one array task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTask {
    /// The instance id, exported as `FLOW_NODE`.
    pub node: String,
    /// The (possibly provisional) key, exported as `FLOW_KEY`.
    pub key: String,
    /// The shell command, run with `sh -c` in the project root.
    pub command: String,
    /// Absolute path of the node's exit marker ([`super::marker::ExitMarker`]).
    pub marker: PathBuf,
    /// Absolute path the command's stdout and stderr go to (truncated on a submission's
    /// first run, appended to by requeued runs); `None`: SLURM's job output file.
    pub log: Option<PathBuf>,
    /// `FLOW_ATTEMPT` of this submission's first run (1, or more when flow resubmits a
    /// failed chain); each requeue adds one (`SLURM_RESTART_COUNT`).
    pub attempt: u32,
}

/// Job array options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArrayOptions {
    /// At most this many tasks run at once (`--array=0-K%T`).
    pub throttle: Option<u32>,
}

/// A `--dependency` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyKind {
    /// Start after the jobs completed successfully (the usual edge).
    AfterOk,
    /// Array task N starts after task N of the other array succeeded (one-to-one edges).
    AfterCorr,
    /// Start after the jobs ended, whatever their outcome.
    AfterAny,
    /// Start after the jobs failed.
    AfterNotOk,
}

impl DependencyKind {
    /// SLURM's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyKind::AfterOk => "afterok",
            DependencyKind::AfterCorr => "aftercorr",
            DependencyKind::AfterAny => "afterany",
            DependencyKind::AfterNotOk => "afternotok",
        }
    }
}

/// A job, or one task of an array job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobRef {
    /// The job id (for an array, the array job id).
    pub job: u64,
    /// The array task index, for one task of an array.
    pub task: Option<u32>,
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.task {
            Some(t) => write!(f, "{}_{t}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

/// One dependency clause; several clauses must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The condition.
    pub kind: DependencyKind,
    /// The jobs (or array tasks) it applies to; a clause with none is left out.
    pub jobs: Vec<JobRef>,
}

/// Requeueing before the time limit (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue {
    /// SLURM sends USR1 to the batch shell this many seconds before the time limit
    /// (`--signal=B:USR1@N`; SLURM may send it up to a minute earlier); the script then runs
    /// `scontrol requeue` for its own job.
    pub signal_secs: u32,
    /// Requeues allowed per submission (compared with `SLURM_RESTART_COUNT`); once spent,
    /// the job runs into its time limit and ends `TIMEOUT`.
    pub max_requeues: u32,
}

/// Everything one batch script is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchScript {
    /// `--job-name`; characters sbatch or `squeue` output would trip over become `_`.
    pub job_name: String,
    /// Absolute; the script `cd`s here and exports it as `FLOW_PROJECT`.
    pub project_root: PathBuf,
    /// Absolute directory (under `.cache/slurm/`) of SLURM's own output file, `<job>.log`
    /// or `<array job>_<task>.log`, which holds what the preamble and the script print.
    /// It must exist when the job starts: SLURM does not create it, and a job whose output
    /// file cannot be opened fails without running ([`BatchScript::write`] creates it).
    pub output_dir: PathBuf,
    /// The merged resource request; validated when rendering.
    pub resources: Resources,
    /// One task for a plain job; one per array index (0, 1, ...) for an array.
    pub tasks: Vec<ScriptTask>,
    /// `Some`: submit as a job array (even of one task).
    pub array: Option<ArrayOptions>,
    /// `--dependency` clauses; when any, `--kill-on-invalid-dep=yes` too, so a dependent of
    /// a failed job is cancelled instead of pending forever.
    pub dependencies: Vec<Dependency>,
    /// Requeue before the time limit (training jobs); `None`: run into it.
    pub requeue: Option<Requeue>,
    /// The job environment preamble (module loads, virtualenv activation), verbatim, run
    /// in the project root before the command.
    pub preamble: Option<String>,
}

/// A batch script that cannot be written safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ScriptError {
    /// A resource value failed validation.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Resources(#[from] ResourceError),
    /// No task given.
    #[error("a batch script needs at least one node")]
    NoTasks,
    /// Several tasks without [`BatchScript::array`].
    #[error("a plain batch job runs one node, not {0}; submit them as an array")]
    NotAnArray(usize),
    /// A path the job uses is relative (the job's working directory is not flow's).
    #[error("{what} must be an absolute path: {path:?}")]
    RelativePath {
        /// Which path.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A path sbatch would misread.
    #[error("{what} {path:?} cannot be written into an #SBATCH line ({why})")]
    UnsafePath {
        /// Which path.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A value with a NUL character.
    #[error("{what} contains a NUL character, which bash cannot hold: {value:?}")]
    Nul {
        /// Which value.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Writing the script or creating its directories failed.
    #[error("cannot write {path:?}: {message}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A `%0` throttle.
    #[error("invalid array throttle %{0}: it must be at least 1")]
    Throttle(u32),
    #[error(
        "invalid requeue signal time {secs} s: it must be between 1 and 65535 s and below the time limit{}",
        limit.map(|l| format!(" ({l} s)")).unwrap_or_default()
    )]
    /// The requeue signal would come never or at once.
    RequeueSignal {
        /// The requested lead time.
        secs: u32,
        /// The time limit in seconds, if set.
        limit: Option<u64>,
    },
}

/// Quotes one word for bash, always on one line: bare when it is plain, in single quotes
/// when it holds no control character, else as `$'...'` with escapes (so a newline in a
/// value never starts a new line of the script).
fn bash_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./=,+:@%-".contains(c))
    {
        return s.to_string();
    }
    if !s.chars().any(char::is_control) {
        return format!("'{}'", s.replace('\'', "'\\''"));
    }
    String::from_utf8_lossy(&Bash::quote_vec(s)).into_owned()
}

/// Text for a comment line: control characters (newlines above all) escaped.
fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn no_nul(what: &'static str, value: &str) -> Result<(), ScriptError> {
    if value.contains('\0') {
        return Err(ScriptError::Nul {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn absolute<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, ScriptError> {
    if !path.is_absolute() {
        return Err(ScriptError::RelativePath {
            what,
            path: path.to_path_buf(),
        });
    }
    match path.to_str() {
        Some(s) => {
            no_nul(what, s)?;
            Ok(s)
        }
        None => Err(ScriptError::UnsafePath {
            what,
            path: path.to_path_buf(),
            why: "it is not valid UTF-8",
        }),
    }
}

/// A directory for `--output`/`--error`: `%` doubled (SLURM expands `%j` etc. in these
/// paths), double-quoted when it holds anything beyond a plain path character (sbatch
/// splits `#SBATCH` lines at whitespace unless quoted).
fn sbatch_dir(what: &'static str, path: &Path) -> Result<String, ScriptError> {
    let s = absolute(what, path)?;
    let unsafe_path = |why| ScriptError::UnsafePath {
        what,
        path: path.to_path_buf(),
        why,
    };
    if s.chars().any(|c| c.is_control()) {
        return Err(unsafe_path("it contains a control character"));
    }
    if s.contains(['"', '\\']) {
        return Err(unsafe_path("it contains a double quote or a backslash"));
    }
    let s = s.trim_end_matches('/').replace('%', "%%");
    Ok(s)
}

fn quote_sbatch_value(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./,+=@:%-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("\"{s}\"")
    }
}

/// `--job-name`: keeps letters, digits and `_.-=,+[]`, replaces the rest with `_`.
pub fn sanitize_job_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-=,+[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if s.is_empty() { "flow".into() } else { s }
}

impl BatchScript {
    /// Whether this is a job array.
    pub fn is_array(&self) -> bool {
        self.array.is_some()
    }

    /// The `--array` value, e.g. `0-4%2`.
    pub fn array_spec(&self) -> Option<String> {
        let opts = self.array?;
        let last = self.tasks.len().saturating_sub(1);
        let mut s = if last == 0 {
            "0".to_string()
        } else {
            format!("0-{last}")
        };
        if let Some(t) = opts.throttle {
            write!(s, "%{t}").unwrap();
        }
        Some(s)
    }

    /// Renders the script and writes it to `path` (temp file + rename, so `sbatch` never
    /// reads half a script), creating `path`'s directory and `output_dir`. Returns the text.
    pub fn write(&self, path: &Path) -> Result<String, ScriptError> {
        let text = self.render()?;
        let io = |p: &Path, e: std::io::Error| ScriptError::Write {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&self.output_dir).map_err(|e| io(&self.output_dir, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io(dir, e))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(|e| io(path, e))?;
        tmp.persist(path).map_err(|e| io(path, e.error))?;
        Ok(text)
    }

    /// Renders the script; fails, before anything is written or submitted, on a value that
    /// cannot be written safely.
    pub fn render(&self) -> Result<String, ScriptError> {
        if self.tasks.is_empty() {
            return Err(ScriptError::NoTasks);
        }
        if self.array.is_none() && self.tasks.len() > 1 {
            return Err(ScriptError::NotAnArray(self.tasks.len()));
        }
        if let Some(ArrayOptions { throttle: Some(0) }) = self.array {
            return Err(ScriptError::Throttle(0));
        }
        let flags = self.resources.sbatch_flags()?;
        if let Some(rq) = self.requeue {
            let limit = self.resources.time_limit()?.map(|d| d.as_secs());
            let too_late = limit.is_some_and(|l| l > 0 && u64::from(rq.signal_secs) >= l);
            if rq.signal_secs == 0 || rq.signal_secs > 65535 || too_late {
                return Err(ScriptError::RequeueSignal {
                    secs: rq.signal_secs,
                    limit,
                });
            }
        }
        let root = absolute("the project root", &self.project_root)?;
        let out_dir = sbatch_dir("the SLURM output directory", &self.output_dir)?;
        for t in &self.tasks {
            no_nul("a node id", &t.node)?;
            no_nul("a node key", &t.key)?;
            no_nul("a node command", &t.command)?;
            absolute("an exit marker path", &t.marker)?;
            if let Some(log) = &t.log {
                absolute("a log path", log)?;
            }
        }
        if let Some(p) = &self.preamble {
            no_nul("the job preamble", p)?;
        }

        let mut s = String::new();
        let sbatch = |s: &mut String, flag: &str| writeln!(s, "#SBATCH {flag}").unwrap();
        s.push_str("#!/bin/bash\n");
        sbatch(
            &mut s,
            &format!("--job-name={}", sanitize_job_name(&self.job_name)),
        );
        let pattern = if self.is_array() { "%A_%a" } else { "%j" };
        let output = quote_sbatch_value(&format!("{out_dir}/{pattern}.log"));
        sbatch(&mut s, &format!("--output={output}"));
        sbatch(&mut s, &format!("--error={output}"));
        for flag in &flags {
            sbatch(&mut s, flag);
        }
        if let Some(spec) = self.array_spec() {
            sbatch(&mut s, &format!("--array={spec}"));
        }
        let clauses: Vec<String> = self
            .dependencies
            .iter()
            .filter(|d| !d.jobs.is_empty())
            .map(|d| {
                let mut c = d.kind.as_str().to_string();
                for j in &d.jobs {
                    write!(c, ":{j}").unwrap();
                }
                c
            })
            .collect();
        if !clauses.is_empty() {
            sbatch(&mut s, &format!("--dependency={}", clauses.join(",")));
            sbatch(&mut s, "--kill-on-invalid-dep=yes");
        }
        if let Some(rq) = self.requeue {
            sbatch(&mut s, &format!("--signal=B:USR1@{}", rq.signal_secs));
        }
        sbatch(&mut s, "--requeue");
        sbatch(&mut s, "--open-mode=append");
        s.push_str("#\n");
        let what = if self.is_array() {
            format!("a job array of {} nodes", self.tasks.len())
        } else {
            "the batch job of one node".to_string()
        };
        writeln!(s, "# Generated by flow: {what}. It is rewritten on every").unwrap();
        s.push_str("# submission; change the workflow or configs/flow.yaml instead.\n");
        writeln!(s, "# project: {}", comment_text(root)).unwrap();
        if self.is_array() {
            for (i, t) in self.tasks.iter().enumerate() {
                writeln!(s, "# task {i}: {}", comment_text(&t.node)).unwrap();
                writeln!(s, "#   key {}", comment_text(&t.key)).unwrap();
            }
        } else {
            let t = &self.tasks[0];
            writeln!(s, "# node: {}", comment_text(&t.node)).unwrap();
            writeln!(s, "# key: {}", comment_text(&t.key)).unwrap();
        }

        s.push_str("\n# The node this job runs, as bash assignments.\n");
        for (i, t) in self.tasks.iter().enumerate() {
            writeln!(s, "flow_task_{i}() {{").unwrap();
            writeln!(s, "    FLOW_NODE={}", bash_quote(&t.node)).unwrap();
            writeln!(s, "    FLOW_KEY={}", bash_quote(&t.key)).unwrap();
            writeln!(s, "    flow_attempt_base={}", t.attempt.max(1)).unwrap();
            writeln!(
                s,
                "    flow_marker={}",
                bash_quote(&t.marker.to_string_lossy())
            )
            .unwrap();
            let log = t
                .log
                .as_ref()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(s, "    flow_log={}", bash_quote(&log)).unwrap();
            writeln!(s, "    flow_command={}", bash_quote(&t.command)).unwrap();
            s.push_str("}\n");
        }
        if self.is_array() {
            s.push_str("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
            for i in 0..self.tasks.len() {
                writeln!(s, "{i}) flow_task_{i} ;;").unwrap();
            }
            s.push_str(
                "*)\n    echo \"flow: no node for array task '${SLURM_ARRAY_TASK_ID:-}'\" >&2\n    exit 2\n    ;;\nesac\n",
            );
        } else {
            s.push_str("flow_task_0\n");
        }

        let root_q = bash_quote(root);
        let mut body = BODY.replace("@@ROOT@@", &root_q).replace(
            "@@BIN@@",
            &bash_quote(&crate::executor::flow_bin().to_string_lossy()),
        );
        let (usr1, usr1_trap) = match self.requeue {
            Some(rq) => (
                USR1.replace("@@MAX@@", &rq.max_requeues.to_string()),
                "trap flow_on_usr1 USR1\n".to_string(),
            ),
            None => (String::new(), String::new()),
        };
        // Every job has a requeue budget, for SLURM's own requeues (preemption, node
        // failure) too: a job that requeues itself shares it with them.
        let budget = self
            .requeue
            .map(|rq| rq.max_requeues)
            .or(self.resources.max_requeues)
            .unwrap_or(crate::submit::MAX_REQUEUES);
        body = body.replace("@@BUDGET@@", &budget.to_string());
        body = body.replace("@@USR1@@\n", &usr1);
        body = body.replace("@@USR1_TRAP@@\n", &usr1_trap);
        let preamble = match self.preamble.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(p) => {
                let mut p = p.to_string();
                if !p.ends_with('\n') {
                    p.push('\n');
                }
                // The preamble may `cd` or `set -eu`; flow's own lines below expect neither.
                format!(
                    "# --- job environment preamble ---\n{p}# --- end of preamble ---\n\
                     set +eu\ncd {root_q} || exit 1\n"
                )
            }
            None => String::new(),
        };
        body = body.replace("@@PREAMBLE@@\n", &preamble);
        let unset: Vec<String> = RANK_VARS.iter().map(|v| format!("-u {v}")).collect();
        body = body.replace("@@UNSET@@", &unset.join(" "));
        s.push_str(&body);
        Ok(s)
    }
}

const USR1: &str = r#"# Near the time limit (--signal=B:USR1@N) the job requeues itself: it keeps its job id,
# so afterok dependents stay valid, and runs again as attempt FLOW_ATTEMPT + 1.
flow_on_usr1() {
    flow_trapped=1
    if [ "${SLURM_RESTART_COUNT:-0}" -lt @@MAX@@ ]; then
        echo "flow: time limit near: requeueing job ${SLURM_JOB_ID:-} (attempt $FLOW_ATTEMPT)" >&2
        flow_requeued=1
        if ! scontrol requeue "${SLURM_JOB_ID:-}"; then flow_requeued=0; fi
    else
        echo "flow: time limit near; the requeue budget (@@MAX@@) is spent" >&2
    fi
}
"#;

const BODY: &str = r#"
FLOW_PROJECT=@@ROOT@@
FLOW_BIN=@@BIN@@
FLOW_ATTEMPT=$((flow_attempt_base + ${SLURM_RESTART_COUNT:-0}))
export FLOW_NODE FLOW_KEY FLOW_PROJECT FLOW_BIN FLOW_ATTEMPT
if [ "$FLOW_ATTEMPT" -gt 1 ]; then export FLOW_RESUME=1; fi
if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    flow_job_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
else
    flow_job_id=${SLURM_JOB_ID:-}
fi
flow_child=
flow_status=
flow_trapped=0
flow_terminated=0
flow_requeued=0
flow_spent=0

# The exit marker: exit code and end time, written atomically (temp file + mv), so the
# outcome is known even when accounting is down. None when the job requeued itself.
flow_write_marker() {
    if [ "$flow_requeued" = 1 ]; then return 0; fi
    flow_tmp="$flow_marker.tmp.$$"
    if [ "$flow_spent" = 1 ]; then
        printf '{"version":2,"exit_code":%d,"end_time":%d,"attempt":%d,"job_id":"%s","budget_spent":{"requeues":%d,"max_requeues":%d}}\n' \
            "$1" "$(date +%s)" "$FLOW_ATTEMPT" "$flow_job_id" "${SLURM_RESTART_COUNT:-0}" @@BUDGET@@ >"$flow_tmp" &&
            mv -f "$flow_tmp" "$flow_marker"
        return
    fi
    printf '{"exit_code":%d,"end_time":%d,"attempt":%d,"job_id":"%s"}\n' \
        "$1" "$(date +%s)" "$FLOW_ATTEMPT" "$flow_job_id" >"$flow_tmp" &&
        mv -f "$flow_tmp" "$flow_marker"
}
# SLURM sends TERM on scancel, at the time limit and when requeueing: pass it on and let
# the command end (it has KillWait seconds). A terminated job never counts as a success.
flow_on_term() {
    flow_trapped=1
    flow_terminated=1
    if [ -z "$flow_child" ]; then exit 143; fi
    kill -TERM "$flow_child" 2>/dev/null
}
@@USR1@@
mkdir -p "$(dirname "$flow_marker")"
rm -f "$flow_marker"
trap 'flow_write_marker $?' EXIT
trap flow_on_term TERM
@@USR1_TRAP@@
# SLURM requeues a job on its own too (preemption, node failure), each time with the same
# job id; past the requeue budget the job ends here, without running the command, and its
# marker says so (flow records it `preempted` or `node_fail`).
if [ "${SLURM_RESTART_COUNT:-0}" -gt @@BUDGET@@ ]; then
    echo "flow: job ${SLURM_JOB_ID:-} was requeued ${SLURM_RESTART_COUNT} times; the requeue budget (@@BUDGET@@) is spent" >&2
    flow_spent=1
    exit 75
fi
cd @@ROOT@@ || exit 1
@@PREAMBLE@@

# The command runs in the background, so that signals are handled while it runs, and
# without SLURM's rank variables, so that single-GPU trainers do not start distributed mode.
if [ -n "$flow_log" ]; then
    mkdir -p "$(dirname "$flow_log")"
    if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then : >"$flow_log"; fi
    env @@UNSET@@ sh -c "$flow_command" </dev/null >>"$flow_log" 2>&1 &
else
    env @@UNSET@@ sh -c "$flow_command" </dev/null &
fi
flow_child=$!
while :; do
    flow_trapped=0
    wait "$flow_child"
    flow_rc=$?
    # 127, or -1 from bash 5.2: the wait a signal interrupted had collected the status.
    if [ -n "$flow_status" ] && { [ "$flow_rc" = 127 ] || [ "$flow_rc" -lt 0 ]; }; then break; fi
    flow_status=$flow_rc
    # wait also returns when a trapped signal arrives; the command may still be running.
    if [ "$flow_trapped" = 0 ]; then break; fi
done
case $flow_status in '' | -*) flow_status=1 ;; esac
if [ "$flow_terminated" = 1 ] && [ "$flow_status" = 0 ]; then flow_status=143; fi
exit "$flow_status"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn task(i: usize) -> ScriptTask {
        ScriptTask {
            node: format!("train[lr={i}]"),
            key: format!("key{i}"),
            command: format!("echo {i}"),
            marker: PathBuf::from(format!("/p/.cache/slurm/markers/{i}.json")),
            log: Some(PathBuf::from(format!("/p/.cache/logs/train/lr={i}.log"))),
            attempt: 1,
        }
    }

    fn script(n: usize) -> BatchScript {
        BatchScript {
            job_name: "train".into(),
            project_root: "/p".into(),
            output_dir: "/p/.cache/slurm/train".into(),
            resources: Resources::default(),
            tasks: (0..n).map(task).collect(),
            array: (n > 1).then_some(ArrayOptions::default()),
            dependencies: vec![],
            requeue: None,
            preamble: None,
        }
    }

    fn sbatch_lines(text: &str) -> Vec<&str> {
        // What sbatch reads: #SBATCH lines before the first command.
        text.lines()
            .skip(1)
            .take_while(|l| l.trim().is_empty() || l.starts_with('#'))
            .filter(|l| l.starts_with("#SBATCH"))
            .collect()
    }

    #[test]
    fn plain_job_has_no_array_or_dependency() {
        let text = script(1).render().unwrap();
        assert_eq!(
            sbatch_lines(&text),
            [
                "#SBATCH --job-name=train",
                "#SBATCH --output=/p/.cache/slurm/train/%j.log",
                "#SBATCH --error=/p/.cache/slurm/train/%j.log",
                "#SBATCH --requeue",
                "#SBATCH --open-mode=append",
            ]
        );
        assert!(!text.contains("case \"${SLURM_ARRAY_TASK_ID"));
        assert!(!text.contains("USR1"));
        assert_eq!(script(1).render().unwrap(), text, "deterministic");
    }

    #[test]
    fn array_with_throttle_dependencies_and_requeue() {
        let mut s = script(5);
        s.array = Some(ArrayOptions { throttle: Some(2) });
        s.dependencies = vec![
            Dependency {
                kind: DependencyKind::AfterOk,
                jobs: vec![
                    JobRef { job: 7, task: None },
                    JobRef {
                        job: 8,
                        task: Some(3),
                    },
                ],
            },
            Dependency {
                kind: DependencyKind::AfterCorr,
                jobs: vec![JobRef { job: 9, task: None }],
            },
            Dependency {
                kind: DependencyKind::AfterAny,
                jobs: vec![],
            },
        ];
        s.requeue = Some(Requeue {
            signal_secs: 300,
            max_requeues: 3,
        });
        s.resources.time = Some("1:00:00".into());
        let text = s.render().unwrap();
        let lines = sbatch_lines(&text);
        assert!(lines.contains(&"#SBATCH --array=0-4%2"), "{lines:?}");
        assert!(lines.contains(&"#SBATCH --output=/p/.cache/slurm/train/%A_%a.log"));
        assert!(lines.contains(&"#SBATCH --dependency=afterok:7:8_3,aftercorr:9"));
        assert!(lines.contains(&"#SBATCH --kill-on-invalid-dep=yes"));
        assert!(lines.contains(&"#SBATCH --signal=B:USR1@300"));
        assert!(lines.contains(&"#SBATCH --time=1:00:00"));
        assert!(text.contains("4) flow_task_4 ;;"));
        assert!(text.contains("-lt 3 ]"));
        assert!(text.contains("trap flow_on_usr1 USR1"));
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let mut s = script(2);
        s.array = None;
        assert_eq!(s.render(), Err(ScriptError::NotAnArray(2)));
        let mut s = script(1);
        s.tasks.clear();
        assert_eq!(s.render(), Err(ScriptError::NoTasks));
        let mut s = script(3);
        s.array = Some(ArrayOptions { throttle: Some(0) });
        assert_eq!(s.render(), Err(ScriptError::Throttle(0)));
        let mut s = script(1);
        s.project_root = "p".into();
        assert!(matches!(s.render(), Err(ScriptError::RelativePath { .. })));
        let mut s = script(1);
        s.output_dir = "/p/x\ny".into();
        assert!(matches!(s.render(), Err(ScriptError::UnsafePath { .. })));
        let mut s = script(1);
        s.output_dir = "/p/\"x".into();
        assert!(matches!(s.render(), Err(ScriptError::UnsafePath { .. })));
        let mut s = script(1);
        s.tasks[0].command = "echo a\0b".into();
        assert!(matches!(s.render(), Err(ScriptError::Nul { .. })));
        let mut s = script(1);
        s.requeue = Some(Requeue {
            signal_secs: 120,
            max_requeues: 1,
        });
        s.resources.time = Some("2".into());
        assert!(matches!(
            s.render(),
            Err(ScriptError::RequeueSignal {
                secs: 120,
                limit: Some(120)
            })
        ));
        let mut s = script(1);
        s.resources.partition = Some("a\nb".into());
        assert!(matches!(s.render(), Err(ScriptError::Resources(_))));
    }

    #[test]
    fn output_paths_with_spaces_and_percent() {
        let mut s = script(1);
        s.output_dir = "/home/me/My Projects/100%/.cache/slurm/x/".into();
        let text = s.render().unwrap();
        assert!(
            text.contains(
                "#SBATCH --output=\"/home/me/My Projects/100%%/.cache/slurm/x/%j.log\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn hostile_node_ids_stay_in_comments_and_quotes() {
        let mut s = script(1);
        s.tasks[0].node = "x\n#SBATCH --account=bogus\n$(touch /tmp/pwned)".into();
        s.tasks[0].key = "k\r\n#SBATCH --qos=evil".into();
        let text = s.render().unwrap();
        assert!(!text.contains("\n#SBATCH --account=bogus"));
        assert!(!text.contains("\n#SBATCH --qos=evil"));
        assert!(text.contains("# node: x\\n#SBATCH --account=bogus\\n$(touch /tmp/pwned)\n"));
        assert_eq!(sbatch_lines(&text).len(), 5);
        // Every line outside the header is either ours or a one-line quoted assignment.
        assert!(text.contains("FLOW_NODE=$'x\\n#SBATCH --account=bogus\\n$(touch /tmp/pwned)'"));
        assert!(text.contains("FLOW_KEY=$'k\\r\\n#SBATCH --qos=evil'"));
    }

    #[test]
    fn bash_quoting_is_one_line_and_round_trips() {
        assert_eq!(bash_quote(""), "''");
        assert_eq!(bash_quote("/p/a-b_c.d=1,2"), "/p/a-b_c.d=1,2");
        assert_eq!(bash_quote("train[lr=1]"), "'train[lr=1]'");
        assert_eq!(bash_quote("it's $(x) `y`"), "'it'\\''s $(x) `y`'");
        assert_eq!(bash_quote("a\nb"), "$'a\\nb'");
        let tricky = "a'b\"c\\d\n\t$(rm -rf /)`id`${HOME}!x\r\u{1b}[0m é";
        let q = bash_quote(tricky);
        assert!(!q.contains(['\n', '\r']));
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s' {q}"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), tricky);
    }

    #[test]
    fn write_creates_the_directories_and_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut s = script(1);
        s.project_root = root.to_path_buf();
        s.output_dir = root.join(".cache/slurm/train");
        let path = root.join(".cache/slurm/scripts/train.sh");
        let text = s.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert!(s.output_dir.is_dir());
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // Nothing is written when rendering fails.
        s.resources.qos = Some("a b".into());
        let other = root.join("other/x.sh");
        assert!(matches!(s.write(&other), Err(ScriptError::Resources(_))));
        assert!(!other.exists());
    }

    #[test]
    fn job_names_are_sanitized() {
        assert_eq!(
            sanitize_job_name("train[lr=1e-4,s=a b]"),
            "train[lr=1e-4,s=a_b]"
        );
        assert_eq!(sanitize_job_name("a\nb#c\"d"), "a_b_c_d");
        assert_eq!(sanitize_job_name(""), "flow");
        assert_eq!(sanitize_job_name(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn preamble_is_verbatim_between_two_cds() {
        let mut s = script(1);
        s.preamble = Some("module load cuda/12\nsource .venv/bin/activate".into());
        let text = s.render().unwrap();
        assert!(text.contains(
            "cd /p || exit 1\n# --- job environment preamble ---\nmodule load cuda/12\nsource .venv/bin/activate\n# --- end of preamble ---\nset +eu\ncd /p || exit 1\n"
        ));
    }
}
