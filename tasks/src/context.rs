//! What the built-in task kinds share within one command: the project, the registry's
//! run ids, and configs read once however many instances use them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use flow_engine::yaml::Source;

use crate::registry::RunIds;

/// Shared by the task kinds of one command.
#[derive(Debug)]
pub struct TaskContext {
    pub root: PathBuf,
    pub run_ids: Arc<RunIds>,
    configs: Mutex<HashMap<String, Arc<Result<Source, String>>>>,
    git_commit: OnceLock<Option<String>>,
}

impl TaskContext {
    pub fn new(root: &Path, run_ids: Arc<RunIds>) -> Self {
        TaskContext {
            root: root.to_path_buf(),
            run_ids,
            configs: Mutex::new(HashMap::new()),
            git_commit: OnceLock::new(),
        }
    }

    /// A project-relative (or absolute) file's text, read once per command.
    pub fn source(&self, path: &str) -> Arc<Result<Source, String>> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        configs
            .entry(path.to_string())
            .or_insert_with(|| {
                Arc::new(
                    std::fs::read_to_string(self.root.join(path))
                        .map(|text| Source::new(path, text))
                        .map_err(|e| e.to_string()),
                )
            })
            .clone()
    }

    /// The project's git commit (HEAD), for provenance; `None` outside a repository.
    pub fn git_commit(&self) -> Option<String> {
        self.git_commit.get_or_init(|| git_head(&self.root)).clone()
    }
}

/// Reads `.git/HEAD` (following one symbolic ref, loose or packed) without running git.
pub(crate) fn git_head(root: &Path) -> Option<String> {
    let git = root.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if let Ok(commit) = std::fs::read_to_string(git.join(reference)) {
        return Some(commit.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (commit, name) = l.split_once(' ')?;
        (name == reference).then(|| commit.to_string())
    })
}
