//! Parsed run metrics cached by the log file's metadata, so `flow status` on a thousand
//! runs re-reads only the logs that changed since the last call.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::BestMetrics;
use crate::metrics::{Track, read_run_dir};

const CACHE_VERSION: u32 = 1;

/// What status views need of one run's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedMetrics {
    /// (file name, size, mtime ns, inode) of the log it was read from.
    stamp: Option<(String, u64, i64, u64)>,
    pub best: Option<BestMetrics>,
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    runs: BTreeMap<String, CachedMetrics>,
}

/// The cache, loaded from and saved to `.cache/registry-metrics.json`.
#[derive(Debug)]
pub struct MetricsCache {
    path: PathBuf,
    file: CacheFile,
    dirty: bool,
    /// Logs parsed by this instance (for reports and benchmarks).
    pub parsed: usize,
}

impl MetricsCache {
    pub fn load(cache_dir: &Path) -> Self {
        let path = cache_dir.join("registry-metrics.json");
        let file = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<CacheFile>(&t).ok())
            .filter(|f| f.version == CACHE_VERSION)
            .unwrap_or_default();
        MetricsCache {
            path,
            file,
            dirty: false,
            parsed: 0,
        }
    }

    /// The metrics of the run directory `dir` (absolute), parsed again only if its log
    /// changed; `key` names it in the cache (the project-relative directory).
    pub fn get(&mut self, key: &str, dir: &Path) -> CachedMetrics {
        let stamp = stamp(dir);
        if let Some(c) = self.file.runs.get(key)
            && c.stamp == stamp
            && stamp.is_some()
        {
            return c.clone();
        }
        self.parsed += 1;
        let m = read_run_dir(dir);
        let best = (!m.epochs.is_empty()).then(|| BestMetrics {
            mask_map: m.best.map(|b| b.mask_map),
            bbox_map: m.best.and_then(|b| b.bbox_map),
            best_epoch: m.best.map(|b| b.epoch),
            track: m.best.map(|b| {
                match b.track {
                    Track::Regular => "regular",
                    Track::Ema => "ema",
                }
                .to_string()
            }),
            epochs: m.epochs.len() as u32,
        });
        let c = CachedMetrics {
            stamp,
            best,
            problems: m.problems.iter().map(|p| p.to_string()).collect(),
        };
        self.file.runs.insert(key.to_string(), c.clone());
        self.dirty = true;
        c
    }

    /// Writes the cache back if it changed (best effort: it is only a cache).
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.file.version = CACHE_VERSION;
        if let Ok(text) = serde_json::to_string(&self.file)
            && let Some(dir) = self.path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = crate::atomic::write_atomic(&self.path, text.as_bytes());
        }
        self.dirty = false;
    }
}

/// The metadata of the file [`read_run_dir`] would read.
fn stamp(dir: &Path) -> Option<(String, u64, i64, u64)> {
    ["metrics.csv", "log.txt"].iter().find_map(|name| {
        let m = std::fs::metadata(dir.join(name)).ok()?;
        Some((
            name.to_string(),
            m.len(),
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            m.ino(),
        ))
    })
}
