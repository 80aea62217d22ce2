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
    /// The root directory, opened once: stats resolve project-relative paths from it
    /// (`fstatat`) instead of walking the root's absolute path again for every file.
    root_fd: Option<std::os::fd::OwnedFd>,
}

impl RealDisk {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root_fd = open_dir(&root);
        RealDisk { root, root_fd }
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

/// Opens a directory for `fstatat`; `None` where that is not possible (stats then use paths).
fn open_dir(dir: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path; the returned descriptor is owned here.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a non-negative `fd` was just opened and is owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `stat` of `path` relative to the directory `dir` (following symlinks, as `meta_of`).
fn meta_at(dir: &std::os::fd::OwnedFd, path: &str) -> Option<io::Result<Option<FileMeta>>> {
    use std::os::fd::AsRawFd;
    let c = std::ffi::CString::new(path).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c` is NUL-terminated, `st` is writable memory of the right type, and `dir`
    // is an open descriptor for the call's duration.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), 0) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Some(match e.kind() {
            io::ErrorKind::NotFound => Ok(None),
            _ => Err(e),
        });
    }
    // SAFETY: fstatat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(Ok(Some(FileMeta {
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        inode: st.st_ino,
        is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
    })))
}

impl Disk for RealDisk {
    fn stat(&self, path: &str) -> io::Result<Option<FileMeta>> {
        if let Some(fd) = &self.root_fd
            && let Some(meta) = meta_at(fd, path)
        {
            return meta;
        }
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
mod tests {
    use super::*;

    #[test]
    fn stats_relative_to_the_root_match_stats_by_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), b"abc").unwrap();
        let disk = RealDisk::new(dir.path());
        assert!(disk.root_fd.is_some());
        for p in ["sub/a.txt", "sub", "sub/missing", "missing/a.txt"] {
            let by_path = meta_of(&dir.path().join(p)).unwrap();
            assert_eq!(disk.stat(p).unwrap(), by_path, "{p}");
        }
        assert!(disk.stat("sub").unwrap().unwrap().is_dir);
        assert_eq!(disk.stat("sub/a.txt").unwrap().unwrap().size, 3);
    }
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
