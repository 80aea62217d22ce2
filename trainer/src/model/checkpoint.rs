//! Reads RF-DETR checkpoints written by `torch.save` (zip container: `<name>/data.pkl`, the
//! pickled object, and `<name>/data/<key>`, the raw little-endian storages) into named
//! tensors, with the restricted reader of [`super::pickle`]: nothing in the file is executed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tch::Tensor;
use thiserror::Error;

use super::pickle::{self, PickleError, TensorRef, Value};

/// Why a checkpoint could not be read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The checkpoint.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a zip container (e.g. the legacy pre-1.6 torch format).
    #[error("{path} is not a torch.save zip checkpoint: {source}")]
    Zip {
        /// The checkpoint.
        path: PathBuf,
        /// The cause.
        source: zip::result::ZipError,
    },
    /// The container lacks an entry the format requires.
    #[error("{path}: missing entry `{entry}` in the zip container")]
    MissingEntry {
        /// The checkpoint.
        path: PathBuf,
        /// The entry.
        entry: String,
    },
    /// The pickle could not be decoded.
    #[error("{path}: data.pkl: {source}")]
    Pickle {
        /// The checkpoint.
        path: PathBuf,
        /// The cause.
        source: PickleError,
    },
    /// The pickle decoded, but not into a state dict.
    #[error("{path}: {reason}")]
    NotAStateDict {
        /// The checkpoint.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A tensor's view does not fit its storage, or its dtype/byte order is unsupported.
    #[error("{path}: tensor `{name}`: {reason}")]
    BadTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// A state dict read from a checkpoint, by name (sorted).
pub type StateDict = BTreeMap<String, Tensor>;

fn read_entry(
    zip: &mut zip::ZipArchive<File>,
    path: &Path,
    entry: &str,
) -> Result<Vec<u8>, CheckpointError> {
    let mut file = zip
        .by_name(entry)
        .map_err(|_| CheckpointError::MissingEntry {
            path: path.to_owned(),
            entry: entry.to_owned(),
        })?;
    let mut buf = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut buf)
        .map_err(|source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(buf)
}

fn build_tensor(t: &TensorRef, bytes: &[u8]) -> Result<Tensor, String> {
    let elem = t.storage.kind.element_size();
    let numel = usize::try_from(t.storage.numel).map_err(|_| "negative storage size".to_owned())?;
    if bytes.len() < numel * elem {
        return Err(format!(
            "storage `{}` has {} bytes, needs {}",
            t.storage.key,
            bytes.len(),
            numel * elem
        ));
    }
    if t.size.iter().any(|&s| s < 0) || t.stride.iter().any(|&s| s < 0) || t.offset < 0 {
        return Err(format!(
            "negative size, stride or offset: {:?} {:?} {}",
            t.size, t.stride, t.offset
        ));
    }
    let kind = t.storage.kind.kind();
    if t.size.contains(&0) {
        return Ok(Tensor::zeros(t.size.as_slice(), (kind, tch::Device::Cpu)));
    }
    let last = t.offset
        + t.size
            .iter()
            .zip(&t.stride)
            .map(|(s, st)| (s - 1) * st)
            .sum::<i64>();
    if last >= t.storage.numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) exceeds its storage of {} elements",
            t.offset, t.size, t.stride, t.storage.numel
        ));
    }
    let storage = Tensor::from_data_size(&bytes[..numel * elem], &[t.storage.numel], kind);
    Ok(storage
        .as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset)
        .contiguous())
}

/// Reads the state dict of a `torch.save` checkpoint: the dict under `model` (RF-DETR's
/// training checkpoints; other entries such as `args` are skipped) or, when the file is a
/// bare state dict, the file itself. Non-tensor entries of the state dict are errors.
pub fn read_state_dict(path: &Path) -> Result<StateDict, CheckpointError> {
    let file = File::open(path).map_err(|source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|source| CheckpointError::Zip {
        path: path.to_owned(),
        source,
    })?;
    let Some(pkl) = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .map(str::to_owned)
    else {
        return Err(CheckpointError::MissingEntry {
            path: path.to_owned(),
            entry: "<archive>/data.pkl".into(),
        });
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    // Absent in files of older torch versions, which always wrote little-endian.
    if let Ok(order) = read_entry(&mut zip, path, &format!("{prefix}byteorder"))
        && order.trim_ascii() != b"little"
    {
        return Err(CheckpointError::NotAStateDict {
            path: path.to_owned(),
            reason: format!(
                "byte order `{}` is not supported",
                String::from_utf8_lossy(&order)
            ),
        });
    }
    let data = read_entry(&mut zip, path, &pkl)?;
    let root = pickle::parse(&data).map_err(|source| CheckpointError::Pickle {
        path: path.to_owned(),
        source,
    })?;
    let items = match (root.get("model"), &root) {
        (Some(Value::Dict(items)), _) => items,
        (Some(_), _) => {
            return Err(CheckpointError::NotAStateDict {
                path: path.to_owned(),
                reason: "`model` is not a dict".into(),
            });
        }
        (None, Value::Dict(items)) => items,
        (None, _) => {
            return Err(CheckpointError::NotAStateDict {
                path: path.to_owned(),
                reason: "the pickled object is not a dict".into(),
            });
        }
    };
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = StateDict::new();
    for (k, v) in items {
        let Value::Str(name) = k else {
            return Err(CheckpointError::NotAStateDict {
                path: path.to_owned(),
                reason: format!("non-string key {k:?}"),
            });
        };
        let Value::Tensor(t) = v else {
            return Err(CheckpointError::BadTensor {
                path: path.to_owned(),
                name: name.clone(),
                reason: "the entry is not a tensor".into(),
            });
        };
        if !storages.contains_key(&t.storage.key) {
            let bytes = read_entry(&mut zip, path, &format!("{prefix}data/{}", t.storage.key))?;
            storages.insert(t.storage.key.clone(), bytes);
        }
        let tensor = build_tensor(t, &storages[&t.storage.key]).map_err(|reason| {
            CheckpointError::BadTensor {
                path: path.to_owned(),
                name: name.clone(),
                reason,
            }
        })?;
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}
