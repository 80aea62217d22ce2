//! `flow run`: plan, print or execute.

use std::path::Path;

use clap::Args;
use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::executor::LocalExecutor;
use flow_engine::graph::Graph;
use flow_engine::plan::{self, Decision, Plan};
use flow_engine::run::{RunOptions, execute};
use flow_engine::scheduler::Limits;
use flow_engine::state::State;

use super::reporter::ConsoleReporter;
use flow_engine::project::Project;
use flow_tasks::registry::{RegistryStore, RunIds};

use super::registry_sync::{adopt_records, register_runs, sync_registry};
use super::{
    CmdResult, ExecutorArg, Failure, build_graph, exit_codes, open_project, read_workflow, select,
    task_context,
};

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Workflow file (a path, or a name under `workflows/`).
    pub(super) workflow: std::path::PathBuf,
    /// Print the plan with reasons; run nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub(super) dry_run: bool,
    /// Jobs to run at once (default: configs/flow.yaml `jobs`, else the number of CPUs).
    #[arg(short, long, value_name = "N")]
    pub(super) jobs: Option<usize>,
    /// GPU slots shared by nodes that declare `resources: {gpus: N}`.
    #[arg(long, value_name = "N")]
    pub(super) gpus: Option<u32>,
    /// Executor (default: the workflow's, else configs/flow.yaml's, else local).
    #[arg(long, value_enum)]
    pub(super) executor: Option<ExecutorArg>,
    /// Only these nodes (ids or names) and what they need.
    #[arg(long = "target", value_name = "NODE")]
    pub(super) targets: Vec<String>,
    /// Run these nodes (ids or names) even if fresh.
    #[arg(long = "force", value_name = "NODE")]
    pub(super) force: Vec<String>,
    /// After a failure keep running everything that does not depend on it.
    #[arg(short, long)]
    pub(super) keep_going: bool,
    /// Print the plan (with -n) or the run's summary as JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// SLURM: stay, show progress and reconcile until every submitted job has ended
    /// (default: submit and exit; a later `flow run` reconciles).
    #[arg(long)]
    pub(super) wait: bool,
    /// SLURM, with --wait: submit a failed chain again up to N times.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(super) retries: u32,
    /// SLURM account (over the node's, the workflow's and configs/flow.yaml's).
    #[arg(long, value_name = "A")]
    pub(super) account: Option<String>,
    /// SLURM partition.
    #[arg(long, value_name = "P")]
    pub(super) partition: Option<String>,
    /// SLURM quality of service.
    #[arg(long, value_name = "Q")]
    pub(super) qos: Option<String>,
    /// SLURM time limit (`D-HH:MM:SS`, `HH:MM:SS` or minutes).
    #[arg(long, value_name = "T")]
    pub(super) time: Option<String>,
    /// Mail address for SLURM job notifications.
    #[arg(long, value_name = "M")]
    pub(super) mail_user: Option<String>,
    /// SLURM mail types, e.g. `END,FAIL`.
    #[arg(long, value_name = "TYPES")]
    pub(super) mail_type: Option<String>,
    /// At most this many tasks of one job array run at once (`--array=...%N`).
    #[arg(long, value_name = "N")]
    pub(super) throttle: Option<u32>,
}

impl RunArgs {
    /// The command line's SLURM layer, the highest.
    pub(super) fn slurm_layer(&self) -> flow_engine::slurm_config::SlurmSection {
        flow_engine::slurm_config::SlurmSection {
            resources: flow_engine::slurm::Resources {
                account: self.account.clone(),
                partition: self.partition.clone(),
                qos: self.qos.clone(),
                time: self.time.clone(),
                mail_user: self.mail_user.clone(),
                mail_type: self.mail_type.clone(),
                ..Default::default()
            },
            throttle: self.throttle,
            ..Default::default()
        }
    }
}

pub fn run(project: Option<&Path>, args: RunArgs) -> CmdResult {
    tracing::debug!("started");
    let project = open_project(project, Some(&args.workflow))?;
    let source = read_workflow(&project, &args.workflow)?;
    let store = RegistryStore::new(&project.root);
    let ids = if args.dry_run {
        RunIds::peek(store)
    } else {
        RunIds::locked(store, false)
    };
    run_source(&project, source, &args, task_context(&project, ids))
}

/// `flow run` on a workflow already read (`flow launch` builds one in memory), with the
/// task kinds' context (whose run ids lock the registry unless this is a dry run).
pub(super) fn run_source(
    project: &Project,
    source: flow_engine::yaml::Source,
    args: &RunArgs,
    ctx: std::sync::Arc<flow_tasks::TaskContext>,
) -> CmdResult {
    let cache = project.cache_dir();
    // The workflow and the journal are independent: read them on both cores at once.
    let (graph, state) = std::thread::scope(|scope| {
        let state = scope.spawn(|| {
            if args.dry_run {
                State::peek(&cache)
            } else {
                State::load(&cache)
            }
        });
        let graph = build_graph(project, source, ctx.clone());
        tracing::debug!("graph built");
        (graph, state.join().expect("state loader does not panic"))
    });
    let graph = graph?;
    let mut state = state.map_err(Failure::internal)?;
    let executor = args
        .executor
        .map(|e| match e {
            ExecutorArg::Local => "local",
            ExecutorArg::Slurm => "slurm",
        })
        .or(graph.spec.executor.as_ref().map(|(e, _)| e.as_str()))
        .or(project.settings.executor.as_deref())
        .unwrap_or("local");
    let slurm = executor == "slurm";
    let command_line = args.slurm_layer();
    if slurm {
        command_line
            .resources
            .validate()
            .map_err(Failure::invalid)?;
    }
    let targets = select(&graph, &args.targets)?;
    let forced_ids = select(&graph, &args.force)?;
    let selected = if targets.is_empty() {
        vec![true; graph.nodes.len()]
    } else {
        let mut with_forced = targets.clone();
        with_forced.extend(&forced_ids);
        graph.with_ancestors(&with_forced)
    };
    let mut forced = vec![false; graph.nodes.len()];
    for id in forced_ids {
        forced[id] = true;
    }

    let disk = RealDisk::new(&project.root);
    if args.dry_run {
        let digester = Digester::new(&disk, &state.files);
        let plan = plan::plan(&graph, &state, &digester, &selected, &forced)
            .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
        print_plan(&project.root, &graph, &plan, args.json);
        drop(digester);
        leak((graph, state, plan));
        return Ok(exit_codes::OK);
    }

    // New training runs are registered before anything slow (reconciliation, hashing
    // inputs), so the registry lock taken while the graph was built is held for
    // milliseconds: `flow status` and other launches never wait behind a long plan.
    let request = slurm.then_some((&project.settings.slurm, &command_line));
    register_runs(&ctx, &graph, &selected, request, args.json)?;
    adopt_records(&ctx, &graph, &mut state);
    std::fs::create_dir_all(&cache).map_err(|e| {
        Failure::internal(miette::miette!("cannot create {}: {e}", cache.display()))
    })?;
    if state.dropped > 0 {
        eprintln!(
            "warning: dropped {} torn or corrupt journal line(s) from {}; the nodes they recorded will re-run",
            state.dropped,
            cache.join("journal").display()
        );
    }
    let files = std::mem::take(&mut state.files);
    let digester = Digester::new(&disk, &files);
    let slurm_cli = flow_engine::slurm::SystemSlurm::default();
    let mut counts = super::slurm::Counts::default();
    if !state.jobs.is_empty() {
        super::slurm::reconcile_and_report(
            project,
            &mut state,
            &digester,
            &slurm_cli,
            &mut counts,
            args.json,
        )?;
    }
    let plan = plan::plan(&graph, &state, &digester, &selected, &forced)
        .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    tracing::debug!("planned");
    if slurm {
        let journal_before = journal_len(&cache);
        let code = super::slurm::run(super::slurm::SlurmRun {
            project,
            graph: &graph,
            plan,
            state: &mut state,
            digester: &digester,
            cli: &slurm_cli,
            command_line,
            wait: args.wait,
            retries: args.retries,
            json: args.json,
            counts,
            selected: &selected,
        });
        sync_registry(project, &state, &Default::default())?;
        release_state(&cache, journal_before, state);
        return code;
    }

    let jobs = args
        .jobs
        .or(project.settings.jobs.map(|j| j as usize))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let gpus = args
        .gpus
        .or(project.settings.gpus)
        .unwrap_or_else(detect_gpus);
    for id in plan.stale() {
        let inst = &graph.nodes[id];
        if inst.gpus > gpus {
            return Err(Failure::msg(
                exit_codes::INVALID_INPUT,
                format!(
                    "`{}` needs {} GPU(s) but {gpus} are available; pass --gpus N or set `gpus:` in configs/flow.yaml",
                    inst.id, inst.gpus
                ),
            ));
        }
    }
    let stale = plan.stale().count();
    if stale == 0 {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"ran": [], "up_to_date": [], "failed": [], "skipped": [], "interrupted": false})
            );
        } else {
            println!(
                "nothing to do: all {} selected nodes are fresh",
                count_selected(&plan)
            );
        }
        // Record what planning hashed (inputs whose metadata changed, same content), so
        // the next run does not hash them again.
        let new_files: Vec<flow_engine::journal::Entry> = digester
            .take_new()
            .into_iter()
            .map(flow_engine::journal::Entry::File)
            .collect();
        if !new_files.is_empty()
            && let Err(e) = flow_engine::journal::Journal::new(&cache).append(&new_files)
        {
            tracing::debug!("cannot record file digests: {e}");
        }
        drop(digester);
        leak((graph, state, plan, files));
        return Ok(exit_codes::OK);
    }
    if !args.json {
        println!(
            "running {stale} of {} nodes ({} fresh)",
            count_selected(&plan),
            count_selected(&plan) - stale
        );
    }
    let options = RunOptions {
        limits: Limits { jobs, gpus },
        keep_going: args.keep_going,
    };
    let journal_before = journal_len(&cache);
    let summary = run_local(
        project, &graph, &plan, &mut state, &digester, &options, args.json,
    );
    sync_registry(project, &state, &Default::default())?;
    drop(digester);
    release_state(&cache, journal_before, (state, files));
    leak((graph, plan));
    let summary = summary?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ran": summary.ran,
                "up_to_date": summary.up_to_date,
                "failed": summary.failed,
                "skipped": summary.skipped,
                "waiting": summary.waiting,
                "interrupted": summary.interrupted,
            })
        );
    } else {
        let succeeded = summary.ran.len() - summary.failed.len();
        let mut line = format!("done: {succeeded} succeeded");
        if !summary.up_to_date.is_empty() {
            line.push_str(&format!(
                ", {} up to date after upstream re-ran with identical outputs",
                summary.up_to_date.len()
            ));
        }
        if !summary.failed.is_empty() {
            line.push_str(&format!(", {} failed", summary.failed.len()));
        }
        if !summary.skipped.is_empty() {
            line.push_str(&format!(", {} skipped", summary.skipped.len()));
        }
        println!("{line}");
    }
    Ok(if summary.interrupted {
        exit_codes::INTERRUPTED
    } else if summary.failed.is_empty() && summary.skipped.is_empty() {
        exit_codes::OK
    } else {
        exit_codes::NODE_FAILED
    })
}

/// Ends a run that found the journal at `journal_before` bytes. When it wrote enough for a
/// snapshot, frees `state` (the run's copy of the records) and loads the state again, which
/// leaves one for the next command; otherwise leaks it like the rest of what the run built.
fn release_state<T>(cache: &Path, journal_before: u64, state: T) {
    if State::wrote_enough_to_snapshot(journal_len(cache).saturating_sub(journal_before)) {
        // The reload builds a second state: this one goes first, or a big sweep's peak
        // memory would double at its very end.
        drop(state);
        State::leave_snapshot(cache);
    } else {
        leak(state);
    }
}

/// The journal's size in bytes (0 when there is none yet).
fn journal_len(cache: &Path) -> u64 {
    std::fs::metadata(flow_engine::journal::Journal::new(cache).path())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Skips freeing what the command built (tens of thousands of instances and records): the
/// process is about to exit, and freeing it all costs more than the no-op run's own work.
fn leak<T>(value: T) {
    std::mem::forget(value);
}

fn count_selected(plan: &Plan) -> usize {
    plan.decisions.iter().filter(|d| d.is_some()).count()
}

/// Runs the stale instances of `plan` on this machine, reporting to the console.
pub fn run_local(
    project: &flow_engine::project::Project,
    graph: &Graph,
    plan: &Plan,
    state: &mut State,
    digester: &Digester<'_>,
    options: &RunOptions,
    json: bool,
) -> Result<flow_engine::run::RunSummary, Failure> {
    let mut reporter = ConsoleReporter::new(json);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    let executor = LocalExecutor::new();
    let summary = rt.block_on(execute(
        project,
        graph,
        plan,
        state,
        digester,
        &executor,
        options,
        &mut reporter,
    ));
    // A wait for another process's claim may still be blocked in flock; do not wait for it.
    rt.shutdown_background();
    reporter.finish();
    summary.map_err(Failure::internal)
}

/// GPUs visible to this process: CUDA_VISIBLE_DEVICES, else /dev/nvidiaN devices.
fn detect_gpus() -> u32 {
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v.split(',').filter(|s| !s.trim().is_empty()).count() as u32;
    }
    std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("nvidia")
                        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u32
        })
        .unwrap_or(0)
}

fn print_plan(root: &Path, graph: &Graph, plan: &Plan, json: bool) {
    let previews = super::compare_preview::compare_previews(root, graph, plan);
    if json {
        let nodes: Vec<serde_json::Value> = plan
            .decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.as_ref().map(|d| {
                    let mut v = serde_json::to_value(d).unwrap_or_default();
                    v["id"] = graph.nodes[i].id.clone().into();
                    if let Some((_, p)) = previews.iter().find(|(n, _)| *n == i) {
                        v["outputs"] = p.clone().into();
                    }
                    v
                })
            })
            .collect();
        let stale = plan.stale().count();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "stale": stale,
                "fresh": count_selected(plan) - stale,
                "nodes": nodes,
            }))
            .unwrap_or_default()
        );
        return;
    }
    let stale = plan.stale().count();
    let total = count_selected(plan);
    if stale == 0 {
        println!("nothing to do: all {total} selected nodes are fresh");
        return;
    }
    // One buffered writer: stdout alone writes line by line, a syscall per line of a plan
    // that can list tens of thousands of nodes.
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let _ = writeln!(
        out,
        "{stale} of {total} nodes would run ({} fresh):",
        total - stale
    );
    for (i, d) in plan.decisions.iter().enumerate() {
        if let Some(Decision::Stale { reasons }) = d {
            let _ = writeln!(out, "  {}", graph.nodes[i].id);
            for r in reasons {
                let _ = writeln!(out, "      {r}");
            }
            if let Some((_, p)) = previews.iter().find(|(n, _)| *n == i) {
                let _ = writeln!(out, "      {p}");
            }
        }
    }
    let _ = out.flush();
}
