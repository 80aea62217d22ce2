//! `experiments/registry.json`: read, and changed only under a lock with an atomic replace.
//!
//! Every change is a read-modify-write under an exclusive lock on a sibling lock file, and
//! the new text replaces the old by rename after an fsync: concurrent `flow` processes never
//! lose an entry, and a crash leaves either the old or the new registry, never a torn one.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::Entry;

/// The registry format this build reads and writes.
pub const REGISTRY_VERSION: u32 = 1;

/// Errors reading or writing the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{column}: the registry is not valid: {message}\n  help: flow writes this file itself; restore it from version control or a backup, or move it away to start a new registry (`flow import checkpoints/*` registers existing run directories again)"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: registry format version {found} is newer than this flow reads ({REGISTRY_VERSION})\n  help: upgrade flow"
    )]
    Version { path: PathBuf, found: u32 },
}

/// The registry file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub version: u32,
    pub experiments: Vec<Entry>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.experiments.iter().find(|e| e.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.experiments.iter_mut().find(|e| e.id == id)
    }

    /// The newest run of a resolved config.
    pub fn latest_for_key(&self, experiment_key: &str) -> Option<&Entry> {
        self.experiments
            .iter()
            .rev()
            .find(|e| e.experiment_key == experiment_key)
    }
}

/// Where a project keeps its registry.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    path: PathBuf,
    lock_path: PathBuf,
}

/// Holds the registry's lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RegistryLock {
    _file: File,
}

impl RegistryStore {
    pub fn new(project_root: &Path) -> Self {
        let dir = project_root.join("experiments");
        RegistryStore {
            path: dir.join("registry.json"),
            lock_path: dir.join(".registry.lock"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The project the registry belongs to.
    pub fn project_root(&self) -> &Path {
        self.path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
    }

    /// Takes the exclusive lock (waits for other writers; they hold it for milliseconds).
    pub fn lock(&self) -> Result<RegistryLock, RegistryError> {
        let io = |what, source| RegistryError::Io {
            what,
            path: self.lock_path.clone(),
            source,
        };
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| io("open", e))?;
        file.lock().map_err(|e| io("lock", e))?;
        Ok(RegistryLock { _file: file })
    }

    /// Reads the registry (empty when there is none yet); no lock needed for a snapshot.
    pub fn read(&self) -> Result<Registry, RegistryError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Registry {
                    version: REGISTRY_VERSION,
                    experiments: Vec::new(),
                });
            }
            Err(source) => {
                return Err(RegistryError::Io {
                    what: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let reg: Registry = serde_json::from_str(&text).map_err(|e| RegistryError::Corrupt {
            path: self.path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if reg.version > REGISTRY_VERSION {
            return Err(RegistryError::Version {
                path: self.path.clone(),
                found: reg.version,
            });
        }
        Ok(reg)
    }

    /// Replaces the registry atomically; call with the lock held.
    pub fn write(&self, _lock: &RegistryLock, reg: &Registry) -> Result<(), RegistryError> {
        let io = |what, source| RegistryError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        let mut text = serde_json::to_string_pretty(&Registry {
            version: REGISTRY_VERSION,
            experiments: reg.experiments.clone(),
        })
        .map_err(|e| io("serialize", std::io::Error::other(e)))?;
        text.push('\n');
        crate::atomic::write_atomic_durable(&self.path, text.as_bytes()).map_err(|e| io("write", e))
    }

    /// Read, change and write back under the lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut Registry) -> T) -> Result<T, RegistryError> {
        let lock = self.lock()?;
        let mut reg = self.read()?;
        let out = change(&mut reg);
        self.write(&lock, &reg)?;
        Ok(out)
    }

    /// [`RegistryStore::update`] for changes that can fail: nothing is written unless the
    /// change succeeds, so a failed import leaves the registry as it was.
    pub fn try_update<T, E>(
        &self,
        change: impl FnOnce(&mut Registry) -> Result<T, E>,
    ) -> Result<Result<T, E>, RegistryError> {
        let lock = self.lock()?;
        let mut reg = self.read()?;
        let out = change(&mut reg);
        if out.is_ok() {
            self.write(&lock, &reg)?;
        }
        Ok(out)
    }
}
