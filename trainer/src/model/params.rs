//! Parameter inventory of a `VarStore`: names, shapes and trainable counts, for the parity
//! checks against the reference (spec/rfdetr-seg-params/) and `flow-train summary`.

use std::collections::BTreeMap;

use tch::nn::VarStore;

/// (shape, trainable) of every variable, by name.
pub fn named_shapes(vs: &VarStore) -> BTreeMap<String, (Vec<i64>, bool)> {
    // `Path::add` marks exactly the trainable variables as requiring gradients.
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, (t.size(), t.requires_grad())))
        .collect()
}

/// Number of trainable scalars (the reference's `n_parameters`).
pub fn trainable_count(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Trainable scalars per top-level module, grouped by the first name components
/// (`backbone.0.encoder`, `backbone.0.projector`, `transformer.decoder`, ...).
pub fn breakdown(vs: &VarStore) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (name, (shape, trainable)) in named_shapes(vs) {
        if !trainable {
            continue;
        }
        let parts: Vec<&str> = name.split('.').collect();
        let depth = match parts[0] {
            "backbone" => 3,
            "transformer" => 2,
            _ => 1,
        };
        let key = parts[..depth.min(parts.len() - 1).max(1)].join(".");
        *out.entry(key).or_insert(0) += shape.iter().product::<i64>();
    }
    out
}
