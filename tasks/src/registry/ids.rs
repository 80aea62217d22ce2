//! Run ids for the training instances of one command.
//!
//! A run id names the run directory (`checkpoints/<id>/`), which is one of the node's
//! outputs, so it must be known when the graph is built: it is looked up in the registry by
//! the resolved config's key (relaunching is make-like), or allocated once
//! (`<name>-<YYYYMMDD-HHMMSS>`, `-2`, `-3` on collision) and registered before anything
//! runs, so retries and resumes reuse it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::clock;
use super::entry::Entry;
use super::store::{Registry, RegistryError, RegistryLock, RegistryStore};

/// One training instance's run.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub run_id: String,
    /// Already in the registry (a relaunch, a retry); else new in this command.
    pub existing: bool,
    /// The entry to register when it is new.
    pub entry: Entry,
}

/// Run-id lookup and allocation against one snapshot of the registry, read (and, for
/// commands that run, locked) on first use, so workflows without training nodes never
/// touch the registry.
#[derive(Debug)]
pub struct RunIds {
    store: RegistryStore,
    /// Hold the registry lock from the snapshot until [`RunIds::register`], so concurrent
    /// launches allocate one after another; off for read-only commands (`-n`, `graph`).
    locking: bool,
    /// `--new`: allocate fresh runs even where the registry has one for the same config.
    fresh: bool,
    now: i64,
    inner: Mutex<Option<Inner>>,
}

#[derive(Debug)]
struct Inner {
    snapshot: Registry,
    lock: Option<RegistryLock>,
    allocations: BTreeMap<String, Allocation>,
}

impl RunIds {
    /// For commands that will run what they plan: the registry is locked on first use.
    pub fn locked(store: RegistryStore, fresh: bool) -> RunIds {
        RunIds::new(store, true, fresh)
    }

    /// For commands that only look: new runs get provisional ids and nothing is written.
    pub fn peek(store: RegistryStore) -> RunIds {
        RunIds::new(store, false, false)
    }

    fn new(store: RegistryStore, locking: bool, fresh: bool) -> Self {
        RunIds {
            store,
            locking,
            fresh,
            now: clock::unix_now(),
            inner: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, RegistryError> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let lock = if self.locking {
                Some(self.store.lock()?)
            } else {
                None
            };
            let snapshot = self.store.read()?;
            *guard = Some(Inner {
                snapshot,
                lock,
                allocations: BTreeMap::new(),
            });
        }
        Ok(f(guard.as_mut().expect("initialised above")))
    }

    /// The run of `instance`, whose resolved config has `experiment_key`; `entry` makes
    /// the registry entry of a new run from its id.
    pub fn run_for(
        &self,
        instance: &str,
        experiment_key: &str,
        name: &str,
        entry: impl FnOnce(&str) -> Entry,
    ) -> Result<Allocation, RegistryError> {
        let (fresh, now) = (self.fresh, self.now);
        let checkpoints = self
            .store
            .project_root()
            .join(crate::train::CHECKPOINTS_DIR);
        self.with(|inner| {
            if let Some(a) = inner.allocations.get(instance) {
                return a.clone();
            }
            let existing = (!fresh)
                .then(|| inner.snapshot.latest_for_key(experiment_key))
                .flatten();
            let allocation = match existing {
                Some(e) => Allocation {
                    run_id: e.id.clone(),
                    existing: true,
                    entry: e.clone(),
                },
                None => {
                    let base = format!("{name}-{}", clock::id_stamp(now));
                    // A directory left by a run the registry no longer knows is never
                    // reused: its checkpoints would be mixed with the new run's.
                    let taken = |id: &str| {
                        inner.snapshot.get(id).is_some()
                            || inner.allocations.values().any(|a| a.run_id == id)
                            || checkpoints.join(id).exists()
                    };
                    let mut id = base.clone();
                    let mut n = 2;
                    while taken(&id) {
                        id = format!("{base}-{n}");
                        n += 1;
                    }
                    Allocation {
                        entry: entry(&id),
                        run_id: id,
                        existing: false,
                    }
                }
            };
            inner
                .allocations
                .insert(instance.to_string(), allocation.clone());
            allocation
        })
    }

    /// Every allocation by instance id (empty when no training node was resolved).
    pub fn allocations(&self) -> BTreeMap<String, Allocation> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(|i| i.allocations.clone())
            .unwrap_or_default()
    }

    /// Registers the new runs of `instances` (those about to run) and releases the lock.
    /// Returns the ids registered.
    pub fn register(&self, instances: &[&str]) -> Result<Vec<String>, RegistryError> {
        self.register_with(instances, |_| {})
    }

    /// [`RunIds::register`], letting the caller complete each new entry first (what only
    /// the executor knows, such as the GPUs it gives the run).
    pub fn register_with(
        &self,
        instances: &[&str],
        mut complete: impl FnMut(&mut Entry),
    ) -> Result<Vec<String>, RegistryError> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(inner) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(lock) = inner.lock.take() else {
            return Ok(Vec::new());
        };
        // A run that is run again (failed before, or reached from another workflow) now
        // belongs to this instance.
        let mut reg = inner.snapshot.clone();
        let mut rerun = false;
        for i in instances {
            if let Some(a) = inner.allocations.get(*i).filter(|a| a.existing)
                && let Some(e) = reg.get_mut(&a.run_id)
                && e.instance.as_deref() != Some(*i)
            {
                e.instance = Some(i.to_string());
                rerun = true;
            }
        }
        let new: Vec<Entry> = instances
            .iter()
            .filter_map(|i| inner.allocations.get(*i))
            .filter(|a| !a.existing)
            .map(|a| {
                let mut e = a.entry.clone();
                complete(&mut e);
                e
            })
            .collect();
        if new.is_empty() && !rerun {
            return Ok(Vec::new());
        }
        // The lock was held since the snapshot: nobody else changed the registry.
        let ids = new.iter().map(|e| e.id.clone()).collect();
        reg.experiments.extend(new);
        self.store.write(&lock, &reg)?;
        inner.snapshot = reg;
        Ok(ids)
    }

    /// Releases the lock without registering anything.
    pub fn release(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inner) = guard.as_mut() {
            inner.lock.take();
        }
    }
}
