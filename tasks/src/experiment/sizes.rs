//! Model-size presets: the reference's resolution and pretrained weights per size.

use std::fmt;

/// An RF-DETR-Seg model size; `tiny` is a scaled-down preset for CPU tests and the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelSize {
    Nano,
    Small,
    Medium,
    Large,
    XLarge,
    XXLarge,
    Tiny,
}

impl ModelSize {
    /// Every size, in the order users see them.
    pub const ALL: [ModelSize; 7] = [
        ModelSize::Nano,
        ModelSize::Small,
        ModelSize::Medium,
        ModelSize::Large,
        ModelSize::XLarge,
        ModelSize::XXLarge,
        ModelSize::Tiny,
    ];

    /// The names accepted in `experiment.model_size`.
    pub const NAMES: [&'static str; 7] = [
        "nano", "small", "medium", "large", "xlarge", "2xlarge", "tiny",
    ];

    /// The name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSize::Nano => "nano",
            ModelSize::Small => "small",
            ModelSize::Medium => "medium",
            ModelSize::Large => "large",
            ModelSize::XLarge => "xlarge",
            ModelSize::XXLarge => "2xlarge",
            ModelSize::Tiny => "tiny",
        }
    }

    /// Parses a size name exactly as written in configs.
    pub fn parse(name: &str) -> Option<ModelSize> {
        ModelSize::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The reference's training resolution (spec/rfdetr.md §1); tiny uses 96.
    pub fn default_resolution(self) -> u32 {
        match self {
            ModelSize::Nano => 312,
            ModelSize::Small => 384,
            ModelSize::Medium => 432,
            ModelSize::Large => 504,
            ModelSize::XLarge => 624,
            ModelSize::XXLarge => 768,
            ModelSize::Tiny => 96,
        }
    }

    /// The reference's pretrained weights file; tiny trains from scratch.
    pub fn default_pretrain_weights(self) -> Option<&'static str> {
        match self {
            ModelSize::Nano => Some("rf-detr-seg-nano.pt"),
            ModelSize::Small => Some("rf-detr-seg-small.pt"),
            ModelSize::Medium => Some("rf-detr-seg-medium.pt"),
            ModelSize::Large => Some("rf-detr-seg-large.pt"),
            ModelSize::XLarge => Some("rf-detr-seg-xlarge.pt"),
            ModelSize::XXLarge => Some("rf-detr-seg-xxlarge.pt"),
            ModelSize::Tiny => None,
        }
    }
}

impl fmt::Display for ModelSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
