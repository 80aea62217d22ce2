//! The trainer's checkpoint format: safetensors with the training state as JSON in the header
//! metadata. A full checkpoint (`checkpoint`, `checkpointNNNN`) holds `model.*`, `ema.*`,
//! `optim.exp_avg.*` and `optim.exp_avg_sq.*` tensors plus [`TrainState`], which is all that
//! `--resume` needs to continue exactly; the best-weights files hold the model's variables
//! under their plain names (loadable with `VarStore::load`) and a short metadata record.
//!
//! Files are written to a temporary name and renamed, so a crash never leaves a truncated
//! checkpoint under a name that resume would trust.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use thiserror::Error;

use super::early_stop::EarlyStopping;
use super::policy::BestTracker;

/// The metadata key holding the format name.
pub const FORMAT_KEY: &str = "format";
/// The format name of full checkpoints.
pub const FORMAT: &str = "flow-train-checkpoint";
/// The format version; newer versions are refused.
pub const VERSION: u32 = 1;

/// Checkpoint errors, naming the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Not a checkpoint this trainer understands.
    #[error("checkpoint {path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Everything besides tensors that a resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Format version.
    pub version: u32,
    /// Epochs completed (the next epoch to run, 0-based).
    pub epochs_done: u32,
    /// Optimizer steps taken (the schedule's position).
    pub optimizer_step: u64,
    /// EMA updates done.
    pub ema_updates: u64,
    /// Best values per track.
    pub best: BestTracker,
    /// Early-stopping state.
    pub early_stopping: EarlyStopping,
    /// Whether early stopping already ended the run.
    pub stopped: bool,
    /// The model size and class count, to refuse a mismatched resume clearly.
    pub model: String,
}

struct View1 {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &View1 {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_view(t: &Tensor) -> Result<View1, String> {
    let t = t.detach().to_device(tch::Device::Cpu).contiguous();
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        k => return Err(format!("unsupported tensor kind {k:?}")),
    };
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)
        .map_err(|e| e.to_string())?;
    Ok(View1 {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Writes `tensors` with `metadata` to `path` atomically.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let io = |message: String| CheckpointError::Io {
        path: path.to_owned(),
        message,
    };
    let views: Vec<(String, View1)> = tensors
        .iter()
        .map(|(n, t)| to_view(t).map(|v| (n.clone(), v)))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::tensor::serialize_to_file(
        views.iter().map(|(n, v)| (n.as_str(), v)),
        &Some(metadata),
        &tmp,
    )
    .map_err(|e| io(format!("cannot write: {e:?}")))?;
    std::fs::rename(&tmp, path).map_err(|e| io(format!("cannot rename into place: {e}")))
}

/// Tensors by name.
pub type Tensors = HashMap<String, Tensor>;
/// Header metadata.
pub type Metadata = HashMap<String, String>;

/// Reads every tensor and the metadata of `path`.
pub fn read(path: &Path) -> Result<(Tensors, Metadata), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let fmt = |message: String| CheckpointError::Format {
        path: path.to_owned(),
        message,
    };
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| fmt(format!("not safetensors: {e:?}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| fmt(format!("not safetensors: {e:?}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        out.insert(name, from_view(&view).map_err(fmt)?);
    }
    Ok((out, metadata))
}

fn from_view(v: &TensorView<'_>) -> Result<Tensor, String> {
    let kind = match v.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        d => return Err(format!("unsupported dtype {d:?}")),
    };
    let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(v.data(), &shape, kind).map_err(|e| e.to_string())
}

/// The training state stored in a full checkpoint's metadata, checked for format and version.
pub fn state_of(
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<TrainState, CheckpointError> {
    let fmt = |message: String| CheckpointError::Format {
        path: path.to_owned(),
        message,
    };
    if metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
        return Err(fmt(format!(
            "not a full flow-train checkpoint (metadata `{FORMAT_KEY}` is not `{FORMAT}`)"
        )));
    }
    let state: TrainState = serde_json::from_str(
        metadata
            .get("state")
            .ok_or_else(|| fmt("no `state` in the metadata".into()))?,
    )
    .map_err(|e| fmt(format!("unreadable state: {e}")))?;
    if state.version > VERSION {
        return Err(fmt(format!(
            "written by a newer flow-train (format version {}, this one reads up to {VERSION})",
            state.version
        )));
    }
    Ok(state)
}

/// Metadata of a full checkpoint.
pub fn full_metadata(state: &TrainState) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(FORMAT_KEY.to_owned(), FORMAT.to_owned());
    m.insert(
        "state".to_owned(),
        serde_json::to_string(state).unwrap_or_default(),
    );
    m
}
