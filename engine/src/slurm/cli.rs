//! Talking to SLURM through its command-line tools, behind a trait that tests can fake.
//!
//! flow drives SLURM only through `sbatch`, `sacct`, `squeue`, `scontrol` and `scancel`,
//! as a user would; no library binding, so it works with whatever SLURM the cluster runs.
//! Every call goes through [`SlurmCli::run`], so a fake can answer without a cluster and
//! count calls (the executor's targets are O(1) sbatch calls per fan-out and one sacct
//! call per poll).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::sacct::{
    JobId, JobStatus, ParseError, SACCT_FORMAT, SQUEUE_FORMAT, SacctRecord, SlurmState,
    parse_max_array_size, parse_sacct, parse_squeue,
};
use super::script::JobRef;

/// The SLURM tools flow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    Sbatch,
    Sacct,
    Squeue,
    Scontrol,
    Scancel,
}

impl Program {
    /// The executable's name.
    pub fn name(self) -> &'static str {
        match self {
            Program::Sbatch => "sbatch",
            Program::Sacct => "sacct",
            Program::Squeue => "squeue",
            Program::Scontrol => "scontrol",
            Program::Scancel => "scancel",
        }
    }
}

/// How one call ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit status; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output (lossily decoded).
    pub stdout: String,
    /// Standard error, where SLURM's tools put their messages.
    pub stderr: String,
}

impl CmdOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A successful call that printed `stdout`.
    pub fn ok(stdout: impl Into<String>) -> CmdOutput {
        CmdOutput {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed call (exit status `code`) that printed `stderr`.
    pub fn failed(code: i32, stderr: impl Into<String>) -> CmdOutput {
        CmdOutput {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// Runs SLURM's tools. Implementations must be usable from several threads (the executor
/// polls while it submits).
pub trait SlurmCli: Send + Sync {
    /// Runs `program` with `args` and returns what it printed; `Err` only when it could not
    /// be started at all.
    fn run(&self, program: Program, args: &[String]) -> std::io::Result<CmdOutput>;

    /// `sbatch ARGS`.
    fn sbatch(&self, args: &[String]) -> std::io::Result<CmdOutput> {
        self.run(Program::Sbatch, args)
    }
    /// `sacct ARGS`.
    fn sacct(&self, args: &[String]) -> std::io::Result<CmdOutput> {
        self.run(Program::Sacct, args)
    }
    /// `squeue ARGS`.
    fn squeue(&self, args: &[String]) -> std::io::Result<CmdOutput> {
        self.run(Program::Squeue, args)
    }
    /// `scontrol ARGS`.
    fn scontrol(&self, args: &[String]) -> std::io::Result<CmdOutput> {
        self.run(Program::Scontrol, args)
    }
    /// `scancel ARGS`.
    fn scancel(&self, args: &[String]) -> std::io::Result<CmdOutput> {
        self.run(Program::Scancel, args)
    }
}

/// The real tools, found on `PATH` (or in `bin_dir`), run with `std::process::Command`.
#[derive(Debug, Clone, Default)]
pub struct SystemSlurm {
    /// Where the tools are; `None`: `PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl SlurmCli for SystemSlurm {
    fn run(&self, program: Program, args: &[String]) -> std::io::Result<CmdOutput> {
        let exe = match &self.bin_dir {
            Some(dir) => dir.join(program.name()),
            None => PathBuf::from(program.name()),
        };
        let out = Command::new(exe).args(args).stdin(Stdio::null()).output()?;
        Ok(CmdOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A scripted stand-in for tests: answers each program from a queue of canned outputs
/// (the last one repeats; a program with none answers as not installed) and records every
/// call, so tests can assert how many `sbatch` or `sacct` calls were made.
#[derive(Debug, Default)]
pub struct FakeSlurm {
    answers: Mutex<HashMap<Program, VecDeque<CmdOutput>>>,
    calls: Mutex<Vec<(Program, Vec<String>)>>,
}

impl FakeSlurm {
    /// A fake with no answers yet (every tool "not installed").
    pub fn new() -> FakeSlurm {
        FakeSlurm::default()
    }

    /// Queues `output` as the next answer of `program`.
    pub fn answer(&self, program: Program, output: CmdOutput) -> &FakeSlurm {
        self.answers
            .lock()
            .unwrap()
            .entry(program)
            .or_default()
            .push_back(output);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<(Program, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }

    /// How many times `program` was run.
    pub fn count(&self, program: Program) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == program)
            .count()
    }
}

impl SlurmCli for FakeSlurm {
    fn run(&self, program: Program, args: &[String]) -> std::io::Result<CmdOutput> {
        self.calls.lock().unwrap().push((program, args.to_vec()));
        let mut answers = self.answers.lock().unwrap();
        let queue = answers.entry(program).or_default();
        let answer = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        answer.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not installed (FakeSlurm)", program.name()),
            )
        })
    }
}

/// A SLURM call that went wrong.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SlurmError {
    /// The tool could not be started (not installed, not on PATH).
    #[error("cannot run `{}`: {source}", program.name())]
    #[diagnostic(help("is SLURM installed and on PATH on this machine?"))]
    Spawn {
        /// Which tool.
        program: Program,
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// The tool ran and refused; `message` is SLURM's own (its stderr).
    #[error("`{}` failed{}: {message}", program.name(), code.map(|c| format!(" (exit {c})")).unwrap_or_default())]
    Failed {
        /// Which tool.
        program: Program,
        /// Its exit status (`None`: killed by a signal).
        code: Option<i32>,
        /// Its stderr (or stdout when stderr was empty), trimmed.
        message: String,
    },
    /// The tool succeeded but its output is not what flow asked for.
    #[error("`{}` printed something flow does not understand: {output:?}", program.name())]
    Unexpected {
        /// Which tool.
        program: Program,
        /// What it printed.
        output: String,
    },
}

fn call(cli: &dyn SlurmCli, program: Program, args: &[String]) -> Result<CmdOutput, SlurmError> {
    let out = cli
        .run(program, args)
        .map_err(|source| SlurmError::Spawn { program, source })?;
    if !out.success() {
        let message = match out.stderr.trim() {
            "" => out.stdout.trim().to_string(),
            e => e.to_string(),
        };
        return Err(SlurmError::Failed {
            program,
            code: out.code,
            message,
        });
    }
    Ok(out)
}

/// Submits a batch script with `sbatch --parsable` and returns the job id (for an array,
/// the array job id). A rejection carries SLURM's message (`Invalid account or
/// account/partition combination specified`).
pub fn submit(cli: &dyn SlurmCli, script: &Path) -> Result<u64, SlurmError> {
    let args = vec![
        "--parsable".to_string(),
        script.to_string_lossy().into_owned(),
    ];
    let out = call(cli, Program::Sbatch, &args)?;
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let first = out.stdout.lines().next().unwrap_or("").trim();
    let id = first.split(';').next().unwrap_or("");
    id.parse().map_err(|_| SlurmError::Unexpected {
        program: Program::Sbatch,
        output: out.stdout.clone(),
    })
}

fn id_list(jobs: &[u64]) -> String {
    let ids: Vec<String> = jobs.iter().map(u64::to_string).collect();
    ids.join(",")
}

/// The arguments of the one batched sacct call for `jobs` (array job ids cover all their
/// tasks; with `-j`, sacct looks back to the epoch, not just today).
pub fn sacct_args(jobs: &[u64]) -> Vec<String> {
    vec![
        "-X".into(),
        "-P".into(),
        "-n".into(),
        format!("--format={SACCT_FORMAT}"),
        "-j".into(),
        id_list(jobs),
    ]
}

/// The arguments of the squeue fallback: one line per array task, finished jobs included
/// while slurmctld still remembers them.
pub fn squeue_args(jobs: &[u64]) -> Vec<String> {
    vec![
        "-h".into(),
        "-r".into(),
        "--states=all".into(),
        "-o".into(),
        SQUEUE_FORMAT.into(),
        "-j".into(),
        id_list(jobs),
    ]
}

/// One batched `sacct` call for `jobs` (no call when empty).
pub fn sacct(
    cli: &dyn SlurmCli,
    jobs: &[u64],
) -> Result<(Vec<SacctRecord>, Vec<ParseError>), SlurmError> {
    if jobs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let out = call(cli, Program::Sacct, &sacct_args(jobs))?;
    let parsed = parse_sacct(&out.stdout);
    Ok((parsed.records, parsed.errors))
}

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The batched `sacct` call: every job SLURM's accounting knows, finished ones too.
    Sacct,
    /// sacct failed (accounting down); squeue only knows queued and recently ended jobs.
    Squeue,
}

/// What SLURM says about one job or array task (or range of pending tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The job, task or pending task range the line is about.
    pub id: JobId,
    /// Its state (map it with [`SlurmState::status`]).
    pub state: SlurmState,
    /// The full sacct record, when it came from sacct.
    pub sacct: Option<SacctRecord>,
}

/// One poll's answer for all jobs asked about.
#[derive(Debug, Clone)]
pub struct Observation {
    /// sacct, or the squeue fallback.
    pub source: Source,
    /// One entry per line SLURM printed.
    pub jobs: Vec<Observed>,
    /// Why sacct was not used, when it was not.
    pub sacct_error: Option<String>,
    /// Lines that did not parse.
    pub unparsed: Vec<ParseError>,
    /// Jobs sacct reports `PREEMPTED` or `NODE_FAIL` that squeue could not be asked about:
    /// SLURM may have requeued them already, so they have not ended for sure.
    pub unsettled: Vec<u64>,
    /// Pending jobs (or tasks) that SLURM or an administrator holds, with squeue's reason
    /// (`JobHeldAdmin`, `launch failed requeued held`): they would wait forever.
    pub held: Vec<(JobId, String)>,
}

impl Observation {
    /// What SLURM says about `job` (task `task` for arrays); `None`: not visible (yet, or
    /// any more). Combine with [`super::sacct::JobStatus::resolve`].
    pub fn get(&self, job: JobRef) -> Option<&Observed> {
        self.jobs.iter().find(|o| o.id.covers(job.job, job.task))
    }
}

/// One poll of `jobs`: one sacct call; only if it fails (its exit status says so, whatever
/// its message), one squeue call instead (DESIGN §6).
///
/// Accounting lags slurmctld: a job that was preempted or lost its node shows `PREEMPTED` or
/// `NODE_FAIL` in sacct for a moment after slurmctld has requeued it (same job id, pending
/// again). So when sacct reports either, one squeue call asks slurmctld, and a requeued
/// job's live state takes precedence; if squeue cannot answer, those jobs are
/// [`Observation::unsettled`].
pub fn observe(cli: &dyn SlurmCli, jobs: &[u64]) -> Result<Observation, SlurmError> {
    let sacct_error = match sacct(cli, jobs) {
        Ok((records, unparsed)) => {
            let mut obs = Observation {
                source: Source::Sacct,
                jobs: records
                    .into_iter()
                    .map(|r| Observed {
                        id: r.id.clone(),
                        state: r.state.clone(),
                        sacct: Some(r),
                    })
                    .collect(),
                sacct_error: None,
                unparsed,
                unsettled: Vec::new(),
                held: Vec::new(),
            };
            settle_requeues(cli, &mut obs);
            return Ok(obs);
        }
        Err(e @ SlurmError::Unexpected { .. }) => return Err(e),
        Err(e) => e.to_string(),
    };
    let out = cli
        .squeue(&squeue_args(jobs))
        .map_err(|source| SlurmError::Spawn {
            program: Program::Squeue,
            source,
        })?;
    // squeue fails when none of the ids is known any more; that is an empty answer.
    let text = if out.success() {
        out.stdout
    } else if out.stderr.contains("Invalid job id") {
        String::new()
    } else {
        return Err(SlurmError::Failed {
            program: Program::Squeue,
            code: out.code,
            message: out.stderr.trim().to_string(),
        });
    };
    let parsed = parse_squeue(&text);
    Ok(Observation {
        source: Source::Squeue,
        // Held jobs are looked for among the requeued ones only, as with sacct ([`held`]).
        held: Vec::new(),
        jobs: parsed
            .records
            .into_iter()
            .map(|r| Observed {
                id: r.id,
                state: r.state,
                sacct: None,
            })
            .collect(),
        sacct_error: Some(sacct_error),
        unparsed: parsed.errors,
        unsettled: Vec::new(),
    })
}

/// Asks squeue (one call) about the jobs sacct reports preempted or node-failed (see
/// [`observe`]): the ones slurmctld has requeued (pending or running again) are put first
/// in `obs.jobs`, so [`Observation::get`] finds their live state, and the ones SLURM or an
/// administrator holds go to [`Observation::held`].
fn settle_requeues(cli: &dyn SlurmCli, obs: &mut Observation) {
    let mut ids: Vec<u64> = obs
        .jobs
        .iter()
        .filter(|o| matches!(o.state.status(), JobStatus::Preempted | JobStatus::NodeFail))
        .map(|o| o.id.job)
        .collect();
    if ids.is_empty() {
        return;
    }
    ids.sort_unstable();
    ids.dedup();
    let text = match cli.squeue(&squeue_args(&ids)) {
        Ok(out) if out.success() => out.stdout,
        // Every id forgotten: none was requeued.
        Ok(out) if out.stderr.contains("Invalid job id") => String::new(),
        _ => {
            obs.unsettled = ids;
            return;
        }
    };
    let records = parse_squeue(&text).records;
    obs.held = records
        .iter()
        .filter(|r| r.held())
        .map(|r| (r.id.clone(), r.reason.clone().unwrap_or_default()))
        .collect();
    let live: Vec<Observed> = records
        .into_iter()
        .filter(|r| matches!(r.state.status(), JobStatus::Pending | JobStatus::Running))
        .map(|r| Observed {
            id: r.id,
            state: r.state,
            sacct: None,
        })
        .collect();
    obs.jobs.splice(0..0, live);
}

/// The pending jobs (or tasks) among `jobs` that SLURM or an administrator holds, with
/// squeue's reason, from one `squeue` call (none when `jobs` is empty). sacct does not say
/// why a job waits (its `Reason` lags), so reconciliation asks this about the jobs SLURM
/// requeued that are pending again, which SLURM may hold after too many requeues. An
/// answer squeue cannot give is no hold.
pub fn held(cli: &dyn SlurmCli, jobs: &[u64]) -> Vec<(JobId, String)> {
    if jobs.is_empty() {
        return Vec::new();
    }
    match cli.squeue(&squeue_args(jobs)) {
        Ok(out) if out.success() => parse_squeue(&out.stdout)
            .records
            .into_iter()
            .filter(|r| r.held())
            .map(|r| (r.id, r.reason.unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    }
}

/// How each run of `jobs` ended, oldest first, from one `sacct -D` call (every run of a
/// requeued job has its own record: `PREEMPTED`, `NODE_FAIL`, `REQUEUED`, then the last).
pub fn run_history(
    cli: &dyn SlurmCli,
    jobs: &[u64],
) -> Result<Vec<(JobId, SlurmState)>, SlurmError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let args = vec![
        "-D".to_string(),
        "-X".to_string(),
        "-P".to_string(),
        "-n".to_string(),
        "--format=JobID,State".to_string(),
        "-j".to_string(),
        id_list(jobs),
    ];
    let out = call(cli, Program::Sacct, &args)?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let (id, state) = l.split_once('|')?;
            Some((JobId::parse(id.trim())?, SlurmState::parse(state)))
        })
        .collect())
}

/// The cluster's `MaxArraySize` (`scontrol show config`).
pub fn max_array_size(cli: &dyn SlurmCli) -> Result<u32, SlurmError> {
    let args = vec!["show".to_string(), "config".to_string()];
    let out = call(cli, Program::Scontrol, &args)?;
    parse_max_array_size(&out.stdout).ok_or_else(|| SlurmError::Unexpected {
        program: Program::Scontrol,
        output: "no MaxArraySize line in `scontrol show config`".into(),
    })
}

/// Cancels jobs or array tasks with one `scancel` call (no call when empty).
pub fn cancel(cli: &dyn SlurmCli, jobs: &[JobRef]) -> Result<(), SlurmError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let args: Vec<String> = jobs.iter().map(JobRef::to_string).collect();
    call(cli, Program::Scancel, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_parses_the_job_id() {
        let fake = FakeSlurm::new();
        fake.answer(Program::Sbatch, CmdOutput::ok("42\n"))
            .answer(Program::Sbatch, CmdOutput::ok("43;flowdev\n"));
        assert_eq!(submit(&fake, Path::new("/p/a.sh")).unwrap(), 42);
        assert_eq!(submit(&fake, Path::new("/p/b.sh")).unwrap(), 43);
        assert_eq!(
            fake.calls()[0],
            (
                Program::Sbatch,
                vec!["--parsable".to_string(), "/p/a.sh".to_string()]
            )
        );
        assert_eq!(fake.count(Program::Sbatch), 2);
    }

    #[test]
    fn submit_rejection_carries_slurms_message() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sbatch,
            CmdOutput::failed(
                1,
                "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
            ),
        );
        let err = submit(&fake, Path::new("/p/a.sh")).unwrap_err().to_string();
        assert_eq!(
            err,
            "`sbatch` failed (exit 1): sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
        );
        let fake = FakeSlurm::new();
        fake.answer(Program::Sbatch, CmdOutput::ok("Submitted batch job 5\n"));
        assert!(matches!(
            submit(&fake, Path::new("/a")),
            Err(SlurmError::Unexpected { .. })
        ));
        let none = FakeSlurm::new();
        assert!(matches!(
            submit(&none, Path::new("/a")),
            Err(SlurmError::Spawn { .. })
        ));
    }

    #[test]
    fn one_sacct_call_per_poll() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::ok(
                "13|11_0|COMPLETED|0:0|00:00:02|cpu=1\n11|11_[1-4%2]|PENDING|0:0|00:00:00|\n",
            ),
        );
        let obs = observe(&fake, &[11, 12]).unwrap();
        assert_eq!(obs.source, Source::Sacct);
        assert_eq!(fake.count(Program::Sacct), 1);
        assert_eq!(fake.count(Program::Squeue), 0);
        assert_eq!(
            fake.calls()[0].1,
            [
                "-X",
                "-P",
                "-n",
                "--format=JobIDRaw,JobID,State,ExitCode,Elapsed,AllocTRES",
                "-j",
                "11,12"
            ]
        );
        let get = |job, task| obs.get(JobRef { job, task }).map(|o| o.state.status());
        assert_eq!(get(11, Some(0)), Some(JobStatus::Completed));
        assert_eq!(get(11, Some(3)), Some(JobStatus::Pending));
        assert_eq!(get(12, None), None);
        // Nothing to ask about: no call.
        observe(&fake, &[]).unwrap();
        assert_eq!(fake.count(Program::Sacct), 1);
    }

    #[test]
    fn squeue_is_the_fallback_when_accounting_is_down() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::failed(
                1,
                "sacct: error: Problem talking to the database: Connection refused",
            ),
        )
        .answer(Program::Squeue, CmdOutput::ok("7_0|RUNNING\n7_1|PENDING\n"));
        let obs = observe(&fake, &[7]).unwrap();
        assert_eq!(obs.source, Source::Squeue);
        assert!(obs.sacct_error.unwrap().contains("Connection refused"));
        assert_eq!(obs.jobs.len(), 2);
        assert_eq!(fake.calls()[1].1[..3], ["-h", "-r", "--states=all"]);
        // Every id forgotten: squeue fails with "Invalid job id", which is no jobs.
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::failed(1, "accounting storage is disabled"),
        )
        .answer(
            Program::Squeue,
            CmdOutput::failed(1, "slurm_load_jobs error: Invalid job id specified"),
        );
        assert!(observe(&fake, &[7]).unwrap().jobs.is_empty());
    }

    #[test]
    fn the_fallback_is_decided_by_sacct_exit_status_not_its_message() {
        // A failure whose message flow has never seen: still squeue.
        let fake = FakeSlurm::new();
        fake.answer(Program::Sacct, CmdOutput::failed(1, ""))
            .answer(Program::Squeue, CmdOutput::ok("7|RUNNING\n"));
        let obs = observe(&fake, &[7]).unwrap();
        assert_eq!(obs.source, Source::Squeue);
        // Success with alarming words on stderr: sacct's answer stands.
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput {
                code: Some(0),
                stdout: "7|7|COMPLETED|0:0|00:00:01|cpu=1\n".into(),
                stderr: "sacct: error: accounting storage is disabled\n".into(),
            },
        );
        let obs = observe(&fake, &[7]).unwrap();
        assert_eq!(obs.source, Source::Sacct);
        assert_eq!(fake.count(Program::Squeue), 0);
    }

    #[test]
    fn preempted_or_node_failed_jobs_that_slurm_requeued_are_pending() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::ok(
                "7|7|PREEMPTED|0:15|00:00:09|cpu=1\n8|8|NODE_FAIL|0:0|00:00:03|cpu=1\n9|9|NODE_FAIL|0:0|00:00:03|cpu=1\n",
            ),
        )
        .answer(Program::Squeue, CmdOutput::ok("7|PENDING\n8|RUNNING\n9|NODE_FAIL\n"));
        let obs = observe(&fake, &[7, 8, 9]).unwrap();
        let get = |job| {
            obs.get(JobRef { job, task: None })
                .map(|o| o.state.status())
        };
        assert_eq!(get(7), Some(JobStatus::Pending));
        assert_eq!(get(8), Some(JobStatus::Running));
        assert_eq!(get(9), Some(JobStatus::NodeFail), "not requeued: it ended");
        assert_eq!(fake.calls()[1].1.last().unwrap(), "7,8,9");
        assert!(obs.unsettled.is_empty());
        // Without an answer from slurmctld, they are not taken as ended.
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::ok("7|7|PREEMPTED|0:15|00:00:09|cpu=1\n"),
        )
        .answer(
            Program::Squeue,
            CmdOutput::failed(
                1,
                "slurm_load_jobs error: Unable to contact slurm controller",
            ),
        );
        assert_eq!(observe(&fake, &[7]).unwrap().unsettled, vec![7]);
        // Nothing preempted: no squeue call.
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::ok("7|7|TIMEOUT|0:0|00:01:09|cpu=1\n"),
        );
        observe(&fake, &[7]).unwrap();
        assert_eq!(fake.count(Program::Squeue), 0);
    }

    #[test]
    fn jobs_slurm_or_an_admin_holds_are_reported_with_squeues_reason() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Squeue,
            CmdOutput::ok(
                "7|PENDING|JobHeldAdmin\n8|PENDING|launch failed requeued held\n9|PENDING|JobHeldUser\n10|PENDING|Priority\n11|RUNNING|None\n",
            ),
        );
        let held: Vec<(u64, String)> = held(&fake, &[7, 8, 9, 10, 11])
            .into_iter()
            .map(|(id, r)| (id.job, r))
            .collect();
        assert_eq!(
            held,
            [
                (7, "JobHeldAdmin".to_string()),
                (8, "launch failed requeued held".to_string())
            ],
            "a user's own hold is not SLURM's"
        );
        assert_eq!(fake.calls()[0].1[4], "%i|%T|%r");
        assert!(super::held(&fake, &[]).is_empty());
        assert_eq!(fake.count(Program::Squeue), 1, "no call for no jobs");
        // A preempted job that SLURM requeued and holds: the settling squeue call says so.
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Sacct,
            CmdOutput::ok("7|7|PREEMPTED|0:15|00:00:09|cpu=1\n"),
        )
        .answer(Program::Squeue, CmdOutput::ok("7|PENDING|JobHeldAdmin\n"));
        let obs = observe(&fake, &[7]).unwrap();
        assert_eq!(obs.held.len(), 1);
        // squeue unreachable: no hold is assumed.
        let fake = FakeSlurm::new();
        assert!(super::held(&fake, &[7]).is_empty());
    }

    #[test]
    fn max_array_size_and_cancel() {
        let fake = FakeSlurm::new();
        fake.answer(
            Program::Scontrol,
            CmdOutput::ok("MaxArraySize            = 1001\n"),
        )
        .answer(Program::Scancel, CmdOutput::ok(""));
        assert_eq!(max_array_size(&fake).unwrap(), 1001);
        cancel(
            &fake,
            &[
                JobRef { job: 5, task: None },
                JobRef {
                    job: 6,
                    task: Some(2),
                },
            ],
        )
        .unwrap();
        cancel(&fake, &[]).unwrap();
        assert_eq!(
            fake.calls()[1],
            (Program::Scancel, vec!["5".into(), "6_2".into()])
        );
        assert_eq!(fake.count(Program::Scancel), 1);
    }
}
