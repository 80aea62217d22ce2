//! The experiment registry (`experiments/registry.json`, DESIGN §5): every training run
//! with its config, status, metrics and provenance, kept in step with the engine's state.

mod clock;
mod entry;
mod ids;
mod import;
mod metrics_cache;
mod store;
mod sync;

pub use clock::{id_stamp, rfc3339, unix_now};
pub use entry::{BestMetrics, Entry, Provenance, Status};
pub use ids::{Allocation, RunIds};
pub use import::{Imported, import_legacy_registry, import_run_dir};
pub use metrics_cache::{CachedMetrics, MetricsCache};
pub use store::{REGISTRY_VERSION, Registry, RegistryError, RegistryLock, RegistryStore};
pub use sync::{LiveStatus, sync};

#[cfg(test)]
mod tests;
