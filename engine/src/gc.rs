//! Garbage collection of state: records no workflow reaches any more, and cached digests
//! of files no kept record mentions.

use std::collections::HashSet;

use crate::journal::Entry;
use crate::state::State;

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Instance ids whose records were dropped, sorted.
    pub dropped_nodes: Vec<String>,
    /// Cached file digests dropped.
    pub dropped_files: usize,
    pub kept_nodes: usize,
    pub kept_files: usize,
}

/// Keeps the records of `reachable` instance ids and the digests their manifests and
/// outputs mention; returns the live entries and what was dropped. Pure, so it can run
/// inside the journal's compaction under the commit lock.
pub fn collect(entries: Vec<Entry>, reachable: &HashSet<String>) -> (Vec<Entry>, GcReport) {
    let mut state = State::default();
    for e in entries {
        state.apply(e);
    }
    let mut report = GcReport::default();
    let mut dropped: Vec<String> = state
        .nodes
        .keys()
        .filter(|id| !reachable.contains(*id))
        .cloned()
        .collect();
    dropped.sort();
    for id in &dropped {
        state.nodes.remove(id);
    }
    state.jobs.retain(|id, _| reachable.contains(id));
    let manifests: Vec<_> = state.nodes.values().map(|r| r.manifest.parse()).collect();
    let mentioned: HashSet<&str> = manifests
        .iter()
        .flat_map(|m| m.inputs.keys())
        .chain(state.nodes.values().flat_map(|r| r.outputs.keys()))
        .map(String::as_str)
        .collect();
    let before = state.files.len();
    // Files inside output directories are cached under their own paths.
    let dirs: Vec<String> = mentioned.iter().map(|p| format!("{p}/")).collect();
    state.files.retain(|path, _| {
        mentioned.contains(path.as_str()) || dirs.iter().any(|d| path.starts_with(d.as_str()))
    });
    report.dropped_files = before - state.files.len();
    report.kept_nodes = state.nodes.len();
    report.kept_files = state.files.len();
    report.dropped_nodes = dropped;
    (state.entries(), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::FileMeta;
    use crate::key::Manifest;
    use crate::state::{FileRecord, NodeRecord, RunStatus};

    fn node(id: &str, input: &str) -> Entry {
        let mut manifest = Manifest::default();
        manifest.inputs.insert(input.into(), "d".into());
        Entry::Node(NodeRecord {
            id: id.into(),
            key: "k".into(),
            check: None,
            status: RunStatus::Ok,
            exit_code: Some(0),
            error: None,
            started_at: 0,
            duration_ms: 0,
            manifest: crate::key::StoredManifest::new(&manifest),
            outputs: [(format!("out/{id}"), "o".to_string())].into(),
            attempt: None,
        })
    }

    fn file(path: &str) -> Entry {
        Entry::File(FileRecord {
            path: path.into(),
            meta: FileMeta {
                size: 0,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: 0,
                is_dir: false,
            },
            digest: "d".into(),
        })
    }

    #[test]
    fn drops_unreachable_records_and_their_files() {
        let entries = vec![
            node("a", "in/a"),
            node("old", "in/old"),
            node("a", "in/a"),
            file("in/a"),
            file("in/old"),
            file("out/a"),
            file("out/old"),
        ];
        let reachable: HashSet<String> = ["a".to_string()].into();
        let (live, report) = collect(entries, &reachable);
        assert_eq!(report.dropped_nodes, vec!["old"]);
        assert_eq!(report.dropped_files, 2);
        assert_eq!(report.kept_nodes, 1);
        assert_eq!(
            live.len(),
            3,
            "one node record (deduplicated) and two files"
        );
    }
}
