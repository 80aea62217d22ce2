//! The reference's optimizer parameter groups (spec §2; `util/get_param_dicts.py`,
//! `backbone/backbone.py`): every trainable variable gets its own base learning rate and
//! weight decay from its name.
//!
//! - Encoder (`backbone.0.encoder.*`): `lr_encoder · 0.8^(L+2−layer_id) · 0.7²`, with
//!   layer_id 0 for the embeddings, n+1 for ViT block n and L+2 for the rest (L ViT layers;
//!   14 for the published sizes); no weight decay on biases, norms, gammas, positional
//!   encodings and embeddings.
//! - Decoder (`transformer.decoder.*`): `lr · 0.7`.
//! - Everything else: `lr`.

/// Layer-wise decay of the encoder's rate.
pub const LAYER_DECAY: f64 = 0.8;
/// The reference's component decay, applied squared to the encoder and once to the decoder.
pub const COMPONENT_DECAY: f64 = 0.7;

/// Name fragments of encoder variables without weight decay (the reference's list).
pub const NO_DECAY: [&str; 6] = [
    "gamma",
    "pos_embed",
    "rel_pos",
    "bias",
    "norm",
    "embeddings",
];

/// Rate and decay of one variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamGroup {
    /// Base learning rate (before the schedule's factor).
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
}

/// The encoder layer id of `name` (see the module docs), `vit_layers` being L.
pub fn encoder_layer_id(name: &str, vit_layers: i64) -> i64 {
    if name.contains(".embeddings.") {
        return 0;
    }
    if let Some(pos) = name.find(".layer.") {
        let rest = &name[pos + ".layer.".len()..];
        if let Some(n) = rest.split('.').next().and_then(|s| s.parse::<i64>().ok()) {
            return n + 1;
        }
    }
    vit_layers + 2
}

/// The group of variable `name`.
pub fn param_group(
    name: &str,
    lr: f64,
    lr_encoder: f64,
    weight_decay: f64,
    vit_layers: i64,
) -> ParamGroup {
    if name.starts_with("backbone.0.encoder.") {
        let id = encoder_layer_id(name, vit_layers);
        let scale = LAYER_DECAY.powi((vit_layers + 2 - id) as i32) * COMPONENT_DECAY.powi(2);
        let no_decay = NO_DECAY.iter().any(|k| name.contains(k));
        ParamGroup {
            lr: lr_encoder * scale,
            weight_decay: if no_decay { 0.0 } else { weight_decay },
        }
    } else if name.starts_with("transformer.decoder.") {
        ParamGroup {
            lr: lr * COMPONENT_DECAY,
            weight_decay,
        }
    } else {
        ParamGroup { lr, weight_decay }
    }
}
