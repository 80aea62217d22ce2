//! Size presets of the RF-DETR-Seg family (spec/rfdetr.md §1) and the `tiny` preset for CPU
//! tests and the demo. Every component is built from this one config, so the preset alone
//! decides the variable names, shapes and parameter count.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// The model sizes flow knows: the six published RF-DETR-Seg sizes plus `tiny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSize {
    /// Scaled-down preset (same architecture, small width/depth/resolution) for CPU tests.
    Tiny,
    /// RFDETRSegNano.
    Nano,
    /// RFDETRSegSmall.
    Small,
    /// RFDETRSegMedium.
    Medium,
    /// RFDETRSegLarge.
    Large,
    /// RFDETRSegXLarge.
    #[serde(rename = "xlarge")]
    XLarge,
    /// RFDETRSeg2XLarge.
    #[serde(rename = "2xlarge")]
    XXLarge,
}

impl ModelSize {
    /// The six published sizes, smallest first (tiny is not one of them).
    pub const PUBLISHED: [ModelSize; 6] = [
        ModelSize::Nano,
        ModelSize::Small,
        ModelSize::Medium,
        ModelSize::Large,
        ModelSize::XLarge,
        ModelSize::XXLarge,
    ];

    /// The name as written in experiment configs (`model_size:`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSize::Tiny => "tiny",
            ModelSize::Nano => "nano",
            ModelSize::Small => "small",
            ModelSize::Medium => "medium",
            ModelSize::Large => "large",
            ModelSize::XLarge => "xlarge",
            ModelSize::XXLarge => "2xlarge",
        }
    }
}

impl fmt::Display for ModelSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelSize {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tiny" => Ok(ModelSize::Tiny),
            "nano" => Ok(ModelSize::Nano),
            "small" => Ok(ModelSize::Small),
            "medium" => Ok(ModelSize::Medium),
            "large" => Ok(ModelSize::Large),
            "xlarge" => Ok(ModelSize::XLarge),
            "2xlarge" | "xxlarge" => Ok(ModelSize::XXLarge),
            other => Err(ModelError::UnknownSize(other.to_owned())),
        }
    }
}

/// Every architectural number of one model. Field names follow the reference's arguments
/// (`rfdetr/config.py`) so that a reader of both can match them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which preset this came from.
    pub size: ModelSize,
    /// Object classes; the classification heads have `num_classes + 1` outputs, as in the
    /// reference (whose category ids are used raw and start at 1).
    pub num_classes: i64,
    /// Square training/eval resolution in pixels.
    pub resolution: i64,
    /// ViT patch size (12 for every seg size).
    pub patch_size: i64,
    /// Windows per side: the token grid is split into `num_windows²` windows.
    pub num_windows: i64,
    /// Side of the learned positional-embedding grid (resolution / patch).
    pub positional_encoding_size: i64,
    /// ViT width.
    pub vit_width: i64,
    /// ViT depth.
    pub vit_layers: i64,
    /// ViT attention heads.
    pub vit_heads: i64,
    /// ViT MLP expansion.
    pub vit_mlp_ratio: i64,
    /// 1-based ViT stages whose outputs feed the projector; the layers with these 0-based
    /// indexes (those below the last stage) attend globally, all others within windows.
    pub out_feature_indexes: Vec<i64>,
    /// Decoder width (also the projector's output channels).
    pub hidden_dim: i64,
    /// Decoder self-attention heads.
    pub sa_heads: i64,
    /// Decoder deformable cross-attention heads.
    pub ca_heads: i64,
    /// Sampling points per head of the deformable attention.
    pub dec_n_points: i64,
    /// Decoder FFN width.
    pub dim_feedforward: i64,
    /// Decoder layers (also the number of seg-head blocks).
    pub dec_layers: i64,
    /// Queries per group.
    pub num_queries: i64,
    /// Detections kept by post-processing.
    pub num_select: i64,
    /// Query groups while training (group DETR); inference uses one.
    pub group_detr: i64,
    /// Bottlenecks in the projector's C2f.
    pub projector_blocks: i64,
    /// Mask logits are predicted at input / this ratio.
    pub mask_downsample_ratio: i64,
}

impl ModelConfig {
    /// The preset of `size` with `num_classes` object classes.
    pub fn preset(size: ModelSize, num_classes: i64) -> Result<Self, ModelError> {
        if num_classes < 1 {
            return Err(ModelError::InvalidConfig(format!(
                "num_classes must be at least 1, got {num_classes}"
            )));
        }
        // (resolution, windows, decoder layers, queries) per spec/rfdetr.md §1.
        let (resolution, num_windows, dec_layers, num_queries) = match size {
            ModelSize::Tiny => (96, 2, 2, 10),
            ModelSize::Nano => (312, 1, 4, 100),
            ModelSize::Small => (384, 2, 4, 100),
            ModelSize::Medium => (432, 2, 5, 200),
            ModelSize::Large => (504, 2, 5, 200),
            ModelSize::XLarge => (624, 2, 6, 300),
            ModelSize::XXLarge => (768, 2, 6, 300),
        };
        let patch_size = 12;
        let mut cfg = ModelConfig {
            size,
            num_classes,
            resolution,
            patch_size,
            num_windows,
            positional_encoding_size: resolution / patch_size,
            vit_width: 384,
            vit_layers: 12,
            vit_heads: 6,
            vit_mlp_ratio: 4,
            out_feature_indexes: vec![3, 6, 9, 12],
            hidden_dim: 256,
            sa_heads: 8,
            ca_heads: 16,
            dec_n_points: 2,
            dim_feedforward: 2048,
            dec_layers,
            num_queries,
            num_select: num_queries,
            group_detr: 13,
            projector_blocks: 3,
            mask_downsample_ratio: 4,
        };
        if size == ModelSize::Tiny {
            cfg.vit_width = 64;
            cfg.vit_layers = 8;
            cfg.vit_heads = 2;
            cfg.out_feature_indexes = vec![2, 4, 6, 8];
            cfg.hidden_dim = 64;
            cfg.sa_heads = 2;
            cfg.ca_heads = 4;
            cfg.dim_feedforward = 128;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the modules rely on (divisibility of widths by heads, ...).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if self.vit_width % self.vit_heads != 0 {
            return bad(format!(
                "vit_width {} not divisible by vit_heads {}",
                self.vit_width, self.vit_heads
            ));
        }
        if self.hidden_dim % self.sa_heads != 0 || self.hidden_dim % self.ca_heads != 0 {
            return bad(format!(
                "hidden_dim {} not divisible by sa_heads {} and ca_heads {}",
                self.hidden_dim, self.sa_heads, self.ca_heads
            ));
        }
        if self.hidden_dim % 2 != 0 {
            return bad(format!(
                "hidden_dim {} must be even (C2f splits it)",
                self.hidden_dim
            ));
        }
        if self.out_feature_indexes.is_empty()
            || self.out_feature_indexes.windows(2).any(|w| w[0] >= w[1])
            || self.out_feature_indexes[0] < 1
            || *self.out_feature_indexes.last().unwrap_or(&0) > self.vit_layers
        {
            return bad(format!(
                "out_feature_indexes {:?} must be increasing stages in 1..={}",
                self.out_feature_indexes, self.vit_layers
            ));
        }
        for (name, v) in [
            ("resolution", self.resolution),
            ("patch_size", self.patch_size),
            ("num_windows", self.num_windows),
            ("positional_encoding_size", self.positional_encoding_size),
            ("dec_layers", self.dec_layers),
            ("num_queries", self.num_queries),
            ("num_select", self.num_select),
            ("group_detr", self.group_detr),
            ("dec_n_points", self.dec_n_points),
            ("mask_downsample_ratio", self.mask_downsample_ratio),
        ] {
            if v < 1 {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        Ok(())
    }

    /// Logits per query: the classes plus the reference's extra "no object" slot.
    pub fn num_logits(&self) -> i64 {
        self.num_classes + 1
    }

    /// Whether 0-based ViT layer `i` attends within its window (otherwise globally).
    pub fn is_windowed_layer(&self, i: i64) -> bool {
        let last = *self.out_feature_indexes.last().unwrap_or(&0);
        i <= last && !self.out_feature_indexes.contains(&i)
    }

    /// Input sides must be multiples of this (patch × windows).
    pub fn block_size(&self) -> i64 {
        self.patch_size * self.num_windows
    }
}
