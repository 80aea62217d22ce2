//! One colour per featured run, the same in every plot and in the report's table.

use std::collections::HashMap;

use plotters::style::RGBColor;

use super::leaderboard::Entry;
use super::options::CompareOptions;
use crate::experiment::ModelSize;

/// Distinct, print-friendly colours (no grey: grey means "other runs").
const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
    RGBColor(132, 60, 57),
    RGBColor(123, 65, 115),
    RGBColor(107, 174, 214),
    RGBColor(230, 85, 13),
    RGBColor(116, 196, 118),
    RGBColor(158, 154, 200),
    RGBColor(253, 174, 107),
    RGBColor(165, 81, 148),
];

/// Runs that are not featured are drawn in this grey.
pub(crate) const OTHER: RGBColor = RGBColor(170, 170, 170);

/// Colours by run id, for the runs some plot singles out.
///
/// The featured runs are the union of what the plots show (top curves, top bars, best per
/// size), coloured in leaderboard order: the best run is always the first colour, and a run has
/// the same colour everywhere it appears.
#[derive(Debug, Clone, Default)]
pub(crate) struct Colors {
    by_id: HashMap<String, RGBColor>,
}

impl Colors {
    pub(crate) fn assign(ranked: &[Entry<'_>], opts: &CompareOptions) -> Self {
        let limit = opts.max_curves.max(opts.max_bars);
        let mut featured: Vec<usize> = (0..ranked.len().min(limit)).collect();
        for (i, _) in best_per_size(ranked) {
            if !featured.contains(&i) {
                featured.push(i);
            }
        }
        featured.sort_unstable();
        let by_id = featured
            .into_iter()
            .enumerate()
            .map(|(k, i)| (ranked[i].run.id.clone(), PALETTE[k % PALETTE.len()]))
            .collect();
        Colors { by_id }
    }

    /// The run's colour, or `None` when no plot singles it out.
    pub(crate) fn get(&self, id: &str) -> Option<RGBColor> {
        self.by_id.get(id).copied()
    }

    /// The run's colour, grey when not featured.
    pub(crate) fn or_other(&self, id: &str) -> RGBColor {
        self.get(id).unwrap_or(OTHER)
    }
}

/// For each model size present among `ranked` (runs with a best epoch, in rank order), the
/// index of its best run, in [`ModelSize::ALL`] order.
pub(crate) fn best_per_size(ranked: &[Entry<'_>]) -> Vec<(usize, ModelSize)> {
    ModelSize::ALL
        .iter()
        .filter_map(|s| {
            ranked
                .iter()
                .position(|e| e.run.model_size == *s)
                .map(|i| (i, *s))
        })
        .collect()
}

/// `#rrggbb`, for the report.
pub(crate) fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}
