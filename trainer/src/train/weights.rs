//! Initial weights for fine-tuning (`model.pretrain_weights`, `--weights`).

use std::path::Path;

use tch::nn::VarStore;

use super::checkpoint;
use super::run::TrainError;
use crate::model::checkpoint::{StateDict, read_state_dict};
use crate::model::import::{LoadPolicy, load_state_dict};

/// Loads initial weights (fine-tuning): the trainer's safetensors or an RF-DETR
/// `torch.save` checkpoint. Tensors the model lacks are ignored; every model variable must be
/// in the file, except that class heads of another class count are left freshly initialised
/// (as the reference re-initialises them when fine-tuning on a new dataset).
pub fn load_weights(vs: &VarStore, path: &Path) -> Result<(), TrainError> {
    let err = |message: String| TrainError::Weights {
        path: path.to_owned(),
        message,
    };
    let mut state: StateDict = if path.extension().is_some_and(|e| e == "safetensors") {
        checkpoint::read(path)?.0.into_iter().collect()
    } else {
        read_state_dict(path).map_err(|e| err(e.to_string()))?
    };
    let vars = vs.variables();
    let heads: Vec<String> = vars
        .iter()
        .filter(|(name, v)| {
            name.contains("class_embed") && state.get(*name).is_some_and(|t| t.size() != v.size())
        })
        .map(|(name, _)| name.clone())
        .collect();
    if !heads.is_empty() {
        eprintln!(
            "{}: {} class-head tensors have another class count; they keep their fresh initialisation",
            path.display(),
            heads.len()
        );
        for name in heads {
            state.insert(name.clone(), vars[&name].detach().copy());
        }
    }
    load_state_dict(
        vs,
        &state,
        LoadPolicy {
            allow_missing: false,
            allow_unexpected: true,
        },
    )
    .map(|_| ())
    .map_err(|e| err(e.to_string()))
}
