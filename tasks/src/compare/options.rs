//! How compare renders: image size, how many runs the crowded plots show, forcing.

/// Rendering options; [`Default`] gives what `flow compare` uses.
///
/// Everything here that changes what a file looks like enters that file's input digest, so
/// changing an option re-renders exactly the outputs it affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareOptions {
    /// Width of every PNG, in pixels.
    pub width: u32,
    /// Height of every PNG, in pixels.
    pub height: u32,
    /// The training-curves plot overlays at most this many runs (the best by mask mAP), so it
    /// stays readable at a glance.
    pub max_curves: usize,
    /// The bar comparison shows at most this many runs (the best by mask mAP).
    pub max_bars: usize,
    /// Re-render every output even when its inputs are unchanged.
    pub force: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            width: 1200,
            height: 700,
            max_curves: 8,
            max_bars: 12,
            force: false,
        }
    }
}
