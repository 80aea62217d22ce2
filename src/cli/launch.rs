//! `flow launch`: the team's launcher. One experiment (a `train` node and its `metrics`
//! node) per config, run through the engine like any workflow: on SLURM by default,
//! make-like (a config whose run completed or is in flight launches nothing; `--new` forces
//! a fresh run), every run registered in `experiments/registry.json` before it starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use flow_engine::digest::Digester;
use flow_engine::disk::RealDisk;
use flow_engine::plan;
use flow_engine::project::Project;
use flow_engine::slurm::script::{BatchScript, Requeue, ScriptTask};
use flow_engine::state::State;
use flow_engine::submit::{MAX_REQUEUES, REQUEUE_SIGNAL_SECS, request_for};
use flow_engine::yaml::Source;
use flow_tasks::experiment::load_config;
use flow_tasks::policy::BatchPolicy;
use flow_tasks::registry::{RegistryStore, RunIds};

use super::run::{RunArgs, run_source};
use super::{CmdResult, ExecutorArg, Failure, build_graph, exit_codes, open_project, task_context};

/// Arguments of `flow launch`.
#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    /// One experiment config.
    #[arg(long, value_name = "F", required_unless_present = "configs")]
    config: Option<PathBuf>,
    /// Several experiment configs, launched together.
    #[arg(long, value_name = "F", num_args = 1.., conflicts_with = "config")]
    configs: Vec<PathBuf>,
    /// Print what would be launched (run ids, resources, the batch policy and the batch
    /// script from the SLURM executor's generator); launch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Launch fresh runs even where a run of the same config completed or is in flight.
    #[arg(long)]
    new: bool,
    /// Executor (default: slurm).
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// Mail address for SLURM job notifications.
    #[arg(long, value_name = "M")]
    mail_user: Option<String>,
    /// SLURM mail types, e.g. `END,FAIL`.
    #[arg(long, value_name = "TYPES")]
    mail_type: Option<String>,
    /// SLURM account.
    #[arg(long, value_name = "A")]
    account: Option<String>,
    /// SLURM partition.
    #[arg(long, value_name = "P")]
    partition: Option<String>,
    /// SLURM time limit (over the model-size policy).
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// SLURM: stay until the jobs end (default: submit and exit).
    #[arg(long)]
    wait: bool,
    /// Local executor: runs at once.
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn launch(project: Option<&Path>, args: LaunchArgs) -> CmdResult {
    let project = open_project(project, None)?;
    let mut configs: Vec<PathBuf> = match &args.config {
        Some(c) => vec![c.clone()],
        None => args.configs.clone(),
    };
    let executor = args.executor.unwrap_or(ExecutorArg::Slurm);
    if args.dry_run {
        let source = launch_workflow(&project, &configs)?;
        return dry_run(&project, source, &args, executor);
    }
    if !args.new {
        configs = without_current_runs(&project, &configs, args.json)?;
        if configs.is_empty() {
            return Ok(exit_codes::OK);
        }
    }
    let source = launch_workflow(&project, &configs)?;
    let run = run_args(&args, executor);
    let ids = RunIds::locked(RegistryStore::new(&project.root), args.new);
    let ctx = task_context(&project, ids);
    let code = run_source(&project, source, &run, ctx.clone())?;
    if !args.json {
        let reg = RegistryStore::new(&project.root)
            .read()
            .map_err(super::registry_sync::registry_failure)?;
        for (instance, a) in ctx.run_ids.allocations() {
            let status = reg
                .get(&a.run_id)
                .map_or("not registered", |e| e.status.as_str());
            println!("{instance}: run {} {status}", a.run_id);
        }
    }
    Ok(code)
}

/// Make-like relaunch: configs whose resolved config already has a completed or in-flight
/// run are reported and left out.
fn without_current_runs(
    project: &Project,
    configs: &[PathBuf],
    json: bool,
) -> Result<Vec<PathBuf>, Failure> {
    let ctx = task_context(project, RunIds::peek(RegistryStore::new(&project.root)));
    let source = launch_workflow(project, configs)?;
    let graph = build_graph(project, source, ctx.clone())?;
    let allocations = ctx.run_ids.allocations();
    let mut keep = Vec::new();
    // Train nodes come first per config, in config order.
    let trains = graph
        .nodes
        .iter()
        .filter(|n| graph.node_spec_of(n).task == "train");
    for (config, inst) in configs.iter().zip(trains) {
        let current = allocations.get(&inst.id).filter(|a| {
            a.existing
                && (a.entry.status.in_flight()
                    || (a.entry.status == flow_tasks::registry::Status::Completed
                        && project.root.join(&a.entry.output_dir).is_dir()))
        });
        match current {
            Some(a) => {
                if !json {
                    let best = a
                        .entry
                        .best
                        .as_ref()
                        .and_then(|b| b.mask_map)
                        .map(|m| format!(", mask mAP {m:.4}"))
                        .unwrap_or_default();
                    println!(
                        "{}: run {} is already {}{best}: nothing to launch (--new forces a fresh run)",
                        config.display(),
                        a.run_id,
                        a.entry.status.as_str()
                    );
                }
            }
            None => keep.push(config.clone()),
        }
    }
    Ok(keep)
}

/// The `flow run` arguments a launch amounts to (its SLURM flags are the command line's
/// layer of the request).
fn run_args(args: &LaunchArgs, executor: ExecutorArg) -> RunArgs {
    RunArgs {
        workflow: PathBuf::from(LAUNCH_SOURCE),
        executor: Some(executor),
        jobs: args.jobs,
        json: args.json,
        wait: args.wait,
        account: args.account.clone(),
        partition: args.partition.clone(),
        time: args.time.clone(),
        mail_user: args.mail_user.clone(),
        mail_type: args.mail_type.clone(),
        ..Default::default()
    }
}

/// What `provenance.workflow` says for launched runs.
const LAUNCH_SOURCE: &str = "flow launch";

/// The workflow `flow launch` runs: per config a `train` node named after the experiment
/// and a `metrics` node that needs it.
fn launch_workflow(project: &Project, configs: &[PathBuf]) -> Result<Source, Failure> {
    let mut yaml = String::from("version: 1\nnodes:\n");
    let mut names: Vec<String> = Vec::new();
    for path in configs {
        let rel = relative(project, path)?;
        let text = std::fs::read_to_string(project.root.join(&rel)).map_err(|e| {
            Failure::msg(
                exit_codes::INVALID_INPUT,
                format!("cannot read experiment config {}: {e}", path.display()),
            )
        })?;
        let config = load_config(&Source::new(rel.clone(), text)).map_err(Failure::invalid)?;
        let base: String = config
            .experiment
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = base.trim_start_matches('-').to_string();
        let mut name = if base.is_empty() {
            "experiment".to_string()
        } else {
            base
        };
        let mut n = 2;
        while names.contains(&name) {
            name = format!(
                "{}-{n}",
                name.trim_end_matches(char::is_numeric)
                    .trim_end_matches('-')
            );
            n += 1;
        }
        let q = serde_json::to_string(&rel).unwrap_or_default();
        let _ = write!(
            yaml,
            "  {name}:\n    task: train\n    config: {q}\n  {name}-metrics:\n    task: metrics\n    needs: [{name}]\n"
        );
        names.push(name);
    }
    Ok(Source::new(LAUNCH_SOURCE, yaml))
}

/// A config path relative to the project root (it must be inside the project).
pub(super) fn relative(project: &Project, path: &Path) -> Result<String, Failure> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let abs = abs.canonicalize().map_err(|e| {
        Failure::msg(
            exit_codes::INVALID_INPUT,
            format!("cannot read experiment config {}: {e}", path.display()),
        )
    })?;
    let root = project.root.canonicalize().unwrap_or(project.root.clone());
    abs.strip_prefix(&root)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| {
            Failure::msg(
                exit_codes::INVALID_INPUT,
                format!(
                    "experiment config {} is outside the project {}\n  help: copy it into configs/experiments/",
                    path.display(),
                    project.root.display()
                ),
            )
        })
}

/// `--dry-run`: per experiment its run, resources, batch policy and batch script.
fn dry_run(
    project: &Project,
    source: Source,
    args: &LaunchArgs,
    executor: ExecutorArg,
) -> CmdResult {
    let ctx = task_context(project, RunIds::peek(RegistryStore::new(&project.root)));
    let graph = build_graph(project, source, ctx.clone())?;
    let state = State::peek(&project.cache_dir()).map_err(Failure::internal)?;
    let disk = RealDisk::new(&project.root);
    let digester = Digester::new(&disk, &state.files);
    let all = vec![true; graph.nodes.len()];
    let none = vec![false; graph.nodes.len()];
    let plan = plan::plan(&graph, &state, &digester, &all, &none)
        .map_err(|e| Failure::internal(miette::miette!("{e}")))?;
    let allocations = ctx.run_ids.allocations();
    let command_line = run_args(args, executor).slurm_layer();
    let mut docs = Vec::new();
    for (i, inst) in graph.nodes.iter().enumerate() {
        let Some(alloc) = allocations.get(&inst.id) else {
            continue;
        };
        let stale = plan.decisions[i].as_ref().is_some_and(|d| d.is_stale());
        let hp = &alloc.entry.hyperparameters;
        let batch = hp
            .get("training.batch_size")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        let accum = hp
            .get("training.grad_accum_steps")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        let halved = BatchPolicy::halved(batch, accum);
        let (slurm_batch, slurm_accum) = halved.unwrap_or((batch, accum));
        let section = request_for(&graph, i, &project.settings.slurm, &command_line);
        let script = match executor {
            ExecutorArg::Slurm => BatchScript {
                job_name: format!("flow-launch-{}", alloc.run_id),
                project_root: project.root.clone(),
                output_dir: project.cache_dir().join("slurm").join("dry-run"),
                resources: section.resources.clone(),
                tasks: vec![ScriptTask {
                    node: inst.id.clone(),
                    key: "(dry run)".to_string(),
                    command: inst.command.clone().unwrap_or_default(),
                    marker: project.cache_dir().join("slurm/dry-run/0.exit"),
                    log: Some(project.log_path(&inst.id)),
                    attempt: 1,
                }],
                array: None,
                dependencies: Vec::new(),
                requeue: Some(Requeue {
                    signal_secs: REQUEUE_SIGNAL_SECS,
                    max_requeues: MAX_REQUEUES,
                }),
                preamble: section.preamble.clone(),
            }
            .render()
            .map_err(|e| Failure::msg(exit_codes::INVALID_INPUT, e.to_string()))?,
            ExecutorArg::Local => inst.command.clone().unwrap_or_default(),
        };
        let r = &section.resources;
        if args.json {
            docs.push(serde_json::json!({
                "instance": inst.id,
                "run_id": alloc.run_id,
                "new": !alloc.existing,
                "would_launch": stale,
                "status": (!stale).then(|| alloc.entry.status.as_str()),
                "model_size": alloc.entry.model_size,
                "resources": r,
                "batch": {
                    "policy": if matches!(executor, ExecutorArg::Slurm) && halved.is_some() { "halve" } else { "keep" },
                    "batch_size": batch,
                    "grad_accum_steps": accum,
                    "slurm_batch_size": slurm_batch,
                    "slurm_grad_accum_steps": slurm_accum,
                },
                "script": script,
            }));
            continue;
        }
        if stale {
            println!(
                "{}: would launch run {}{}",
                inst.id,
                alloc.run_id,
                if alloc.existing { " (again)" } else { " (new)" }
            );
        } else {
            println!(
                "{}: run {} is {}: nothing to launch (--new forces a fresh run)",
                inst.id,
                alloc.run_id,
                alloc.entry.status.as_str()
            );
            continue;
        }
        if matches!(executor, ExecutorArg::Slurm) {
            println!(
                "  resources: {} GPU(s){}, {} CPUs, mem {}, time {}",
                r.gpus.unwrap_or(0),
                r.gpu_type
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default(),
                r.cpus_per_task.map_or("-".into(), |c| c.to_string()),
                r.mem.as_deref().unwrap_or("-"),
                r.time.as_deref().unwrap_or("-"),
            );
            if halved.is_some() {
                println!(
                    "  batch policy ({}): batch_size {batch} -> {}, grad_accum_steps {accum} -> {} (effective batch {} either way; {}=keep disables)",
                    BatchPolicy::Halve.as_str(),
                    slurm_batch,
                    slurm_accum,
                    batch * accum,
                    BatchPolicy::ENV
                );
            } else {
                println!(
                    "  batch policy: batch_size {batch} kept (odd or 1: halving would change the effective batch)"
                );
            }
            println!("  batch script:");
        } else {
            println!("  command:");
        }
        for line in script.lines() {
            println!("    {line}");
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(docs));
    }
    Ok(exit_codes::OK)
}
