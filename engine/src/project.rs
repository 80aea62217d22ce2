//! The project: its root directory, its `.cache/`, and `configs/flow.yaml`.

use std::path::{Path, PathBuf};

use crate::diagnostic::SpecError;
use crate::fields::Fields;
use crate::workflow::EXECUTORS;
use crate::yaml::{self, Source};

const SETTINGS_KEYS: &[&str] = &["executor", "jobs", "gpus", "slurm"];

/// Project-wide settings from `configs/flow.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub executor: Option<String>,
    pub jobs: Option<u32>,
    pub gpus: Option<u32>,
    /// Project-wide SLURM defaults, the lowest layer under the workflow's and nodes'.
    pub slurm: crate::slurm_config::SlurmSection,
}

/// A located project.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub settings: Settings,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProjectError {
    #[error("no flow project found at or above {start}")]
    #[diagnostic(help(
        "run flow inside a project (a directory with `workflows/` or `.cache/`), or pass --project DIR"
    ))]
    NotFound { start: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Spec(#[from] Box<SpecError>),
}

impl Project {
    /// The nearest ancestor of `start` holding `workflows/` or `.cache/`.
    pub fn discover(start: &Path) -> Result<PathBuf, ProjectError> {
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join("workflows").is_dir() || d.join(".cache").is_dir() {
                return Ok(d.to_path_buf());
            }
            dir = d.parent();
        }
        Err(ProjectError::NotFound { start })
    }

    /// Opens a project at `root`, reading its settings if present.
    pub fn open(root: PathBuf) -> Result<Project, ProjectError> {
        let root = std::path::absolute(&root).unwrap_or(root);
        let path = root.join("configs").join("flow.yaml");
        let settings = match std::fs::read_to_string(&path) {
            Ok(text) => parse_settings(Source::new("configs/flow.yaml", text))
                .map_err(|e| ProjectError::Spec(Box::new(e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(source) => return Err(ProjectError::Read { path, source }),
        };
        Ok(Project { root, settings })
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join(".cache")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.cache_dir().join("logs")
    }

    /// The log file of an instance: `.cache/logs/<node>/<matrix values>.log`.
    pub fn log_path(&self, id: &str) -> PathBuf {
        let slug = crate::graph::instance_slug(id);
        let slug = if slug.len() > 200 {
            let hash = blake3::hash(slug.as_bytes()).to_hex();
            let cut = slug
                .char_indices()
                .take_while(|(i, _)| *i < 180)
                .last()
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0);
            format!("{}-{}", &slug[..cut], &hash[..16])
        } else {
            slug
        };
        self.logs_dir().join(format!("{slug}.log"))
    }
}

fn parse_settings(source: Source) -> Result<Settings, SpecError> {
    let doc = yaml::parse(&source)?;
    let f = Fields::new(&source, &doc, "configs/flow.yaml", SETTINGS_KEYS)?;
    let executor = f.string("executor")?;
    if let Some((e, span)) = &executor
        && !EXECUTORS.contains(&e.as_str())
    {
        return Err(SpecError::at(
            &source,
            *span,
            format!("unknown executor `{e}`"),
            crate::diagnostic::choices_help(e, EXECUTORS),
        ));
    }
    let slurm = match f.get("slurm") {
        Some(s) => crate::slurm_config::read_section(&source, s, "slurm")?,
        None => Default::default(),
    };
    Ok(Settings {
        executor: executor.map(|(e, _)| e),
        jobs: f.u32("jobs")?.map(|(n, _)| n),
        gpus: f.u32("gpus")?.map(|(n, _)| n),
        slurm,
    })
}
