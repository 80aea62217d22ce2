//! The font every plot uses, bundled in the binary so plots look the same on a laptop and on a
//! cluster node without fontconfig (DejaVu Sans, Bitstream Vera licence: assets/).

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::compare::CompareError;

/// DejaVu Sans 2.37 from Debian's fonts-dejavu-core.
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// The family name plots ask for; plotters' own defaults (axis labels) ask for it too.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters once per process.
pub(crate) fn ensure() -> Result<(), CompareError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok { Ok(()) } else { Err(CompareError::Font) }
}
