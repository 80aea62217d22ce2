//! Copies a checkpoint's state dict into a model's `VarStore`. Variable names are the
//! reference's names unchanged (`.`-separated paths), so the mapping is the identity; what
//! this adds is the check that both sides agree, reported as missing, unexpected and
//! mis-shaped names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use thiserror::Error;

use super::checkpoint::{CheckpointError, StateDict, read_state_dict};
use super::config::{ModelConfig, ModelSize};
use super::error::ModelError;
use super::rfdetr::{KP_ACTIVE_MASK, RfDetrSeg};

/// How strict a load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadPolicy {
    /// Variables the checkpoint lacks keep their values instead of failing the load.
    pub allow_missing: bool,
    /// Checkpoint tensors the model lacks are ignored instead of failing the load.
    pub allow_unexpected: bool,
}

/// A shape disagreement between model and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Variable name.
    pub name: String,
    /// Shape in the model.
    pub model: Vec<i64>,
    /// Shape in the checkpoint.
    pub checkpoint: Vec<i64>,
}

/// Names that do not line up, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incompatibility {
    /// In the model, not in the checkpoint.
    pub missing: Vec<String>,
    /// In the checkpoint, not in the model.
    pub unexpected: Vec<String>,
    /// In both with different shapes.
    pub mismatched: Vec<Mismatch>,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if let Some(m) = self.mismatched.first() {
            parts.push(format!(
                "{} with a different shape (first: `{}`: model {:?}, checkpoint {:?})",
                self.mismatched.len(),
                m.name,
                m.model,
                m.checkpoint
            ));
        }
        if let Some(n) = self.missing.first() {
            parts.push(format!(
                "{} missing from the checkpoint (first: `{n}`)",
                self.missing.len()
            ));
        }
        if let Some(n) = self.unexpected.first() {
            parts.push(format!(
                "{} not in the model (first: `{n}`)",
                self.unexpected.len()
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Why weights could not be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint does not fit the model (wrong size or class count?).
    #[error("checkpoint does not fit the model: {0}")]
    Incompatible(Incompatibility),
    /// The model to load into could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The checkpoint has no `class_embed.bias`, so its class count is unknown.
    #[error("{0}: no `class_embed.bias`, cannot tell the number of classes")]
    UnknownClassCount(PathBuf),
    /// The imported weights could not be written.
    #[error("cannot write {path}: {source}")]
    Save {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: tch::TchError,
    },
    /// libtorch failed to copy a tensor.
    #[error("copying `{name}`: {source}")]
    Copy {
        /// Variable name.
        name: String,
        /// The cause.
        source: tch::TchError,
    },
}

/// What a successful load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables overwritten.
    pub loaded: usize,
    /// Tolerated differences (empty under the strict policy).
    pub skipped: Incompatibility,
}

/// Buffers the model has but older checkpoints (RF-DETR ≤ 1.5) lack; never required.
const OPTIONAL: &[&str] = &[KP_ACTIVE_MASK];

/// Compares names and shapes of `vs` and `state`.
pub fn compare(vs: &VarStore, state: &StateDict) -> Incompatibility {
    let vars: BTreeMap<String, tch::Tensor> = vs.variables().into_iter().collect();
    let mut inc = Incompatibility::default();
    for (name, var) in &vars {
        match state.get(name) {
            None if OPTIONAL.contains(&name.as_str()) => {}
            None => inc.missing.push(name.clone()),
            Some(t) if t.size() != var.size() => inc.mismatched.push(Mismatch {
                name: name.clone(),
                model: var.size(),
                checkpoint: t.size(),
            }),
            Some(_) => {}
        }
    }
    inc.unexpected = state
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .cloned()
        .collect();
    inc
}

/// Copies `state` into the variables of `vs` (converting dtypes), after checking that the
/// two agree under `policy`; shape mismatches are always errors. Nothing is copied when the
/// check fails.
pub fn load_state_dict(
    vs: &VarStore,
    state: &StateDict,
    policy: LoadPolicy,
) -> Result<LoadReport, ImportError> {
    let inc = compare(vs, state);
    if !inc.mismatched.is_empty()
        || (!policy.allow_missing && !inc.missing.is_empty())
        || (!policy.allow_unexpected && !inc.unexpected.is_empty())
    {
        return Err(ImportError::Incompatible(inc));
    }
    let mut loaded = 0;
    for (name, var) in vs.variables() {
        if let Some(src) = state.get(&name) {
            tch::no_grad(|| var.shallow_clone().f_copy_(&src.to_device(var.device()))).map_err(
                |source| ImportError::Copy {
                    name: name.clone(),
                    source,
                },
            )?;
            loaded += 1;
        }
    }
    Ok(LoadReport {
        loaded,
        skipped: inc,
    })
}

/// Reads an RF-DETR checkpoint and loads it into `vs` (see [`load_state_dict`]).
pub fn import_checkpoint(
    vs: &VarStore,
    path: &Path,
    policy: LoadPolicy,
) -> Result<LoadReport, ImportError> {
    let state = read_state_dict(path)?;
    load_state_dict(vs, &state, policy)
}

/// The class count a checkpoint was trained with (its `class_embed.bias` has one more
/// entry), so that the model can be built to fit before loading.
pub fn infer_num_classes(state: &StateDict) -> Option<i64> {
    state
        .get("class_embed.bias")
        .and_then(|b| b.size().first().map(|n| n - 1))
}

/// What `flow-train import-weights` does: reads an RF-DETR checkpoint, builds the `size`
/// model with `num_classes` classes (by default the checkpoint's own count), loads the
/// weights under `policy` and writes them in the trainer's format (safetensors, same names)
/// to `output`.
pub fn import_to_safetensors(
    input: &Path,
    output: &Path,
    size: ModelSize,
    num_classes: Option<i64>,
    policy: LoadPolicy,
) -> Result<(ModelConfig, LoadReport), ImportError> {
    let state = read_state_dict(input)?;
    let num_classes = match num_classes {
        Some(n) => n,
        None => infer_num_classes(&state)
            .ok_or_else(|| ImportError::UnknownClassCount(input.to_owned()))?,
    };
    let cfg = ModelConfig::preset(size, num_classes)?;
    let vs = VarStore::new(tch::Device::Cpu);
    RfDetrSeg::new(&vs.root(), &cfg)?;
    let report = load_state_dict(&vs, &state, policy)?;
    vs.save(output).map_err(|source| ImportError::Save {
        path: output.to_owned(),
        source,
    })?;
    Ok((cfg, report))
}
