//! Commands, argument parsing and the error edge of the CLI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use flow_engine::disk::RealDisk;
use flow_engine::graph::{Graph, NodeId};
use flow_engine::project::Project;
use flow_engine::workflow::WorkflowSpec;
use flow_engine::yaml::Source;
use flow_tasks::TaskContext;
use flow_tasks::registry::{RegistryStore, RunIds};

mod cancel;
mod compare;
mod compare_preview;
mod exit_codes;
mod explain;
mod gc;
mod graph;
mod import;
mod launch;
mod logs;
mod metrics;
mod registry_sync;
mod reporter;
mod run;
mod slurm;
mod status;
mod train;

/// A content-hashed workflow engine for deep-learning experiments.
#[derive(Debug, Parser)]
#[command(name = "flow", version, about, long_about = None)]
pub struct Cli {
    /// Project root (default: nearest ancestor with `workflows/` or `.cache/`).
    #[arg(long, global = true, env = "FLOW_PROJECT", value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the DAG and run the stale nodes (`-n`: print the plan and run nothing).
    Run(Box<run::RunArgs>),
    /// Why a node is stale: the key-level diff against its last recorded run.
    Explain {
        /// Workflow file.
        workflow: PathBuf,
        /// Instance id (`train[lr=1e-4]`) or node name (all its instances).
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw the DAG with each node's state.
    Graph {
        /// Workflow file.
        workflow: PathBuf,
        #[arg(long, value_enum, default_value_t = graph::Format::Text)]
        format: graph::Format,
    },
    /// Cancel SLURM jobs in flight and their dependents; the next run treats them as stale.
    Cancel {
        /// Instance ids, node names, SLURM job ids (`123` or `123_4`).
        #[arg(required = true)]
        selectors: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per-epoch losses and COCO metrics of run directories (RF-DETR log.txt or
    /// metrics.csv), the best epoch over the regular and EMA tracks, and any problems.
    Metrics {
        /// Run directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Print the versioned metrics file(s) as JSON.
        #[arg(long)]
        json: bool,
        /// Write one run directory's versioned metrics file here (atomically) instead.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The experiment registry: every run's status (synced with SLURM in one sacct call
    /// when runs are in flight) and best metrics.
    Status(status::StatusArgs),
    /// Drop state (records, cached digests, logs) that no workflow reaches any more.
    Gc {
        /// Workflows whose state to keep (default: every file in `workflows/`).
        workflows: Vec<PathBuf>,
        /// Show what would be dropped; change nothing.
        #[arg(short = 'n', long = "dry-run")]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Launch experiments from configs (train + metrics each), on SLURM by default.
    Launch(launch::LaunchArgs),
    /// Leaderboard, plots and an HTML report over registered runs (incremental).
    Compare(compare::CompareArgs),
    /// Train one experiment in the foreground (registered like launched runs).
    Train(train::TrainArgs),
    /// Register run directories made outside flow, or a previous scripts' registry.json.
    Import(import::ImportArgs),
    /// Internal: what a `train` node runs (writes the run directory's config, applies the
    /// SLURM batch policy, starts the trainer).
    #[command(hide = true)]
    ExecTrain {
        #[arg(long)]
        run_dir: PathBuf,
        /// The resolved experiment config (YAML text).
        #[arg(long)]
        config: String,
    },
    /// Print a node's stdout/stderr.
    Logs {
        /// Instance id or node name.
        node: String,
        /// Workflow file, to resolve a node name to its instances (default: the logs in `.cache/logs/`).
        #[arg(long)]
        workflow: Option<PathBuf>,
        /// Keep printing as the log grows.
        #[arg(short, long)]
        follow: bool,
    },
}

/// Executors selectable on the command line.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum ExecutorArg {
    Local,
    Slurm,
}

/// A failed command: what to show and which exit code to end with.
pub struct Failure {
    report: miette::Report,
    code: u8,
}

impl Failure {
    fn invalid(report: impl Into<miette::Report>) -> Self {
        Failure {
            report: report.into(),
            code: exit_codes::INVALID_INPUT,
        }
    }

    fn internal(report: impl Into<miette::Report>) -> Self {
        Failure {
            report: report.into(),
            code: exit_codes::INTERNAL,
        }
    }

    fn msg(code: u8, msg: String) -> Self {
        Failure {
            report: miette::miette!("{msg}"),
            code,
        }
    }
}

type CmdResult = Result<u8, Failure>;

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(args) => run::run(cli.project.as_deref(), *args),
        Command::Explain {
            workflow,
            node,
            json,
        } => explain::explain(cli.project.as_deref(), &workflow, &node, json),
        Command::Graph { workflow, format } => {
            graph::graph(cli.project.as_deref(), &workflow, format)
        }
        Command::Cancel { selectors, json } => {
            cancel::cancel(cli.project.as_deref(), &selectors, json)
        }
        Command::Metrics { dirs, json, output } => metrics::metrics(&dirs, json, output.as_deref()),
        Command::Launch(args) => launch::launch(cli.project.as_deref(), args),
        Command::Train(args) => train::train(cli.project.as_deref(), args),
        Command::Compare(args) => compare::compare(cli.project.as_deref(), args),
        Command::Import(args) => import::import(cli.project.as_deref(), args),
        Command::ExecTrain { run_dir, config } => {
            let e = flow_tasks::train::exec::exec_train(&run_dir, &config);
            Err(Failure::msg(
                exit_codes::NODE_FAILED,
                format!("flow exec-train: {e}"),
            ))
        }
        Command::Status(args) => status::status(cli.project.as_deref(), args),
        Command::Gc {
            workflows,
            dry_run,
            json,
        } => gc::gc(cli.project.as_deref(), &workflows, dry_run, json),
        Command::Logs {
            node,
            workflow,
            follow,
        } => logs::logs(cli.project.as_deref(), workflow.as_deref(), &node, follow),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("{:?}", f.report);
            ExitCode::from(f.code)
        }
    }
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

pub fn init_miette() {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .terminal_links(false)
                .unicode(tty)
                .color(tty && std::env::var_os("NO_COLOR").is_none())
                .width(100)
                .build(),
        )
    }));
}

/// The project the command works in.
fn open_project(explicit: Option<&Path>, workflow: Option<&Path>) -> Result<Project, Failure> {
    let root = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let cwd =
                std::env::current_dir().map_err(|e| Failure::internal(miette::miette!("{e}")))?;
            match Project::discover(&cwd) {
                Ok(r) => r,
                // A workflow given by path locates its project too.
                Err(e) => match workflow
                    .and_then(|w| w.parent())
                    .and_then(|d| Project::discover(d).ok())
                {
                    Some(r) => r,
                    None => return Err(Failure::invalid(e)),
                },
            }
        }
    };
    Project::open(root).map_err(Failure::invalid)
}

/// Reads, checks and expands a workflow, for commands that only look (new training runs
/// get provisional ids; the registry is not written).
fn load_graph(project: &Project, workflow: &Path) -> Result<Graph, Failure> {
    let source = read_workflow(project, workflow)?;
    let ctx = task_context(project, RunIds::peek(RegistryStore::new(&project.root)));
    build_graph(project, source, ctx)
}

/// The task kinds' shared context for one command.
fn task_context(project: &Project, ids: RunIds) -> Arc<TaskContext> {
    Arc::new(TaskContext::new(&project.root, Arc::new(ids)))
}

/// Reads a workflow file.
fn read_workflow(project: &Project, workflow: &Path) -> Result<Source, Failure> {
    let path = resolve_workflow(project, workflow)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::msg(
            exit_codes::INVALID_INPUT,
            format!("cannot read workflow {}: {e}", path.display()),
        )
    })?;
    let name = path
        .strip_prefix(&project.root)
        .unwrap_or(&path)
        .to_string_lossy()
        .into_owned();
    Ok(Source::new(name, Arc::<str>::from(text)))
}

/// Checks and expands a workflow with the built-in task kinds.
fn build_graph(project: &Project, source: Source, ctx: Arc<TaskContext>) -> Result<Graph, Failure> {
    let tasks = flow_tasks::builtin(ctx);
    let spec = WorkflowSpec::parse(source, &tasks).map_err(Failure::invalid)?;
    tracing::debug!("workflow parsed");
    Graph::build(spec, &RealDisk::new(&project.root)).map_err(Failure::invalid)
}

/// A `--model-size` value, checked with a "did you mean" hint.
fn parse_model_size(
    name: Option<&str>,
) -> Result<Option<flow_tasks::experiment::ModelSize>, Failure> {
    use flow_tasks::experiment::ModelSize;
    name.map(|s| {
        ModelSize::parse(s).ok_or_else(|| {
            Failure::msg(
                exit_codes::INVALID_INPUT,
                format!(
                    "unknown model size `{s}`\n  help: {}",
                    flow_engine::diagnostic::choices_help(s, &ModelSize::NAMES)
                ),
            )
        })
    })
    .transpose()
}

/// A workflow path as given, or a name under `workflows/`.
fn resolve_workflow(project: &Project, workflow: &Path) -> Result<PathBuf, Failure> {
    let candidates = [
        workflow.to_path_buf(),
        project.root.join(workflow),
        project.root.join("workflows").join(workflow),
        project
            .root
            .join("workflows")
            .join(workflow)
            .with_extension("yaml"),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(std::path::absolute(c).unwrap_or_else(|_| c.clone()));
        }
    }
    Err(Failure::msg(
        exit_codes::INVALID_INPUT,
        format!(
            "workflow `{}` not found (looked in the current directory and in {}/workflows/)",
            workflow.display(),
            project.root.display()
        ),
    ))
}

/// Resolves node selectors to instances.
fn select(graph: &Graph, selectors: &[String]) -> Result<Vec<NodeId>, Failure> {
    let mut out = Vec::new();
    for s in selectors {
        let ids = graph
            .select(s)
            .map_err(|m| Failure::msg(exit_codes::INVALID_INPUT, m))?;
        out.extend(ids);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
