//! The filesystem as the planner sees it: stat, hash, list, glob.
//!
//! Behind a trait so planning and freshness logic are tested on an in-memory disk.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What flow compares to decide whether a file may have changed since it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMeta {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_dir: bool,
}

/// A blake3 digest, hex-encoded.
pub type Digest = String;

/// Filesystem access the planner needs; paths are relative to the project root.
pub trait Disk: Sync {
    /// `Ok(None)` when nothing exists at `path`.
    fn stat(&self, path: &str) -> io::Result<Option<FileMeta>>;
    /// blake3 of a regular file's content.
    fn hash_file(&self, path: &str) -> io::Result<Digest>;
    /// Every regular file below a directory, as project-relative paths, sorted.
    fn walk(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Project-relative paths of regular files matching a glob, sorted.
    fn glob(&self, pattern: &str) -> io::Result<Vec<String>>;
}

/// The real filesystem under a project root.
pub struct RealDisk {
    root: PathBuf,
}

impl RealDisk {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RealDisk { root: root.into() }
    }

    fn abs(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }
}

/// Stats a path without following a final symlink's target.
pub fn meta_of(path: &Path) -> io::Result<Option<FileMeta>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileMeta {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
            is_dir: m.is_dir(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hashes a file; large files are memory-mapped and hashed on several threads.
pub fn hash_path(path: &Path) -> io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let size = std::fs::metadata(path)?.len();
    if size > 16 * 1024 * 1024 {
        hasher.update_mmap_rayon(path)?;
    } else {
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, &mut hasher)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

impl Disk for RealDisk {
    fn stat(&self, path: &str) -> io::Result<Option<FileMeta>> {
        meta_of(&self.abs(path))
    }

    fn hash_file(&self, path: &str) -> io::Result<Digest> {
        hash_path(&self.abs(path))
    }

    fn walk(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(self.abs(dir))
            .follow_links(true)
            .sort_by_file_name()
        {
            let entry = entry.map_err(io::Error::other)?;
            if entry.file_type().is_file() {
                out.push(self.rel(entry.path()));
            }
        }
        Ok(out)
    }

    fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(io::Error::other)?
            .compile_matcher();
        // Walk only below the pattern's literal prefix.
        let base: PathBuf = Path::new(pattern)
            .components()
            .take_while(|c| {
                !c.as_os_str()
                    .to_string_lossy()
                    .contains(['*', '?', '[', '{'])
            })
            .collect();
        let start = self.abs(&base.to_string_lossy());
        if !start.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&start)
            .follow_links(true)
            .sort_by_file_name()
        {
            let entry = entry.map_err(io::Error::other)?;
            if entry.file_type().is_file() {
                let rel = self.rel(entry.path());
                if matcher.is_match(&rel) {
                    out.push(rel);
                }
            }
        }
        Ok(out)
    }
}

/// True when a path contains glob syntax.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

#[cfg(test)]
pub mod fake {
    //! An in-memory disk for planner tests.
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct MemDisk {
        files: Mutex<BTreeMap<String, (Vec<u8>, FileMeta)>>,
        clock: Mutex<i64>,
        pub hashes: Mutex<usize>,
    }

    impl MemDisk {
        pub fn write(&self, path: &str, content: &[u8]) {
            let mut clock = self.clock.lock().unwrap();
            *clock += 1;
            let mut files = self.files.lock().unwrap();
            let inode = files
                .get(path)
                .map(|f| f.1.inode)
                .unwrap_or(files.len() as u64 + 1);
            files.insert(
                path.to_string(),
                (
                    content.to_vec(),
                    FileMeta {
                        size: content.len() as u64,
                        mtime_ns: *clock,
                        ctime_ns: *clock,
                        inode,
                        is_dir: false,
                    },
                ),
            );
        }

        pub fn remove(&self, path: &str) {
            self.files.lock().unwrap().remove(path);
        }
    }

    impl Disk for MemDisk {
        fn stat(&self, path: &str) -> io::Result<Option<FileMeta>> {
            let files = self.files.lock().unwrap();
            if let Some(f) = files.get(path) {
                return Ok(Some(f.1));
            }
            let prefix = format!("{path}/");
            Ok(files
                .keys()
                .any(|k| k.starts_with(&prefix))
                .then_some(FileMeta {
                    size: 0,
                    mtime_ns: 0,
                    ctime_ns: 0,
                    inode: 0,
                    is_dir: true,
                }))
        }

        fn hash_file(&self, path: &str) -> io::Result<Digest> {
            *self.hashes.lock().unwrap() += 1;
            let files = self.files.lock().unwrap();
            let (content, _) = files
                .get(path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            Ok(blake3::hash(content).to_hex().to_string())
        }

        fn walk(&self, dir: &str) -> io::Result<Vec<String>> {
            let prefix = format!("{dir}/");
            Ok(self
                .files
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect())
        }

        fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
            let m = globset::Glob::new(pattern).unwrap().compile_matcher();
            Ok(self
                .files
                .lock()
                .unwrap()
                .keys()
                .filter(|k| m.is_match(k.as_str()))
                .cloned()
                .collect())
        }
    }
}
