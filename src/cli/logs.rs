//! `flow logs`: a node's stdout and stderr.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{CmdResult, Failure, exit_codes, load_graph, open_project, select};

pub fn logs(
    project: Option<&Path>,
    workflow: Option<&Path>,
    node: &str,
    follow: bool,
) -> CmdResult {
    let project = open_project(project, workflow)?;
    let ids: Vec<String> = match workflow {
        Some(w) => {
            let graph = load_graph(&project, w)?;
            select(&graph, &[node.to_string()])?
                .into_iter()
                .map(|i| graph.nodes[i].id.clone())
                .collect()
        }
        None => ids_from_logs(&project.logs_dir(), node),
    };
    let paths: Vec<PathBuf> = ids
        .iter()
        .map(|id| project.log_path(id))
        .filter(|p| p.is_file())
        .collect();
    if paths.is_empty() {
        return Err(Failure::msg(
            exit_codes::INVALID_INPUT,
            format!(
                "no log for `{node}` yet (logs live in {})",
                project.logs_dir().display()
            ),
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let many = paths.len() > 1;
    let mut offsets = Vec::new();
    for (id, p) in ids.iter().zip(&paths) {
        if many {
            let _ = writeln!(stdout, "==> {id} <==");
        }
        let bytes = std::fs::read(p).map_err(|e| Failure::internal(miette::miette!("{e}")))?;
        let _ = stdout.write_all(&bytes);
        offsets.push(bytes.len() as u64);
    }
    if follow {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(250));
            for (p, off) in paths.iter().zip(offsets.iter_mut()) {
                if let Ok(mut f) = std::fs::File::open(p) {
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    if len < *off {
                        *off = 0; // the node re-ran and its log was recreated
                    }
                    if len > *off && f.seek(SeekFrom::Start(*off)).is_ok() {
                        let mut buf = Vec::new();
                        if f.read_to_end(&mut buf).is_ok() {
                            let _ = stdout.write_all(&buf);
                            let _ = stdout.flush();
                            *off += buf.len() as u64;
                        }
                    }
                }
            }
        }
    }
    Ok(exit_codes::OK)
}

/// Without a workflow: an exact id, or every instance log of a node name.
fn ids_from_logs(logs: &Path, node: &str) -> Vec<String> {
    if node.contains('[') || logs.join(format!("{node}.log")).is_file() {
        return vec![node.to_string()];
    }
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(logs.join(node)) {
        let mut names: Vec<String> = dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter_map(|n| n.strip_suffix(".log").map(String::from))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| format!("{node}[{n}]")));
    }
    out
}
