//! `hp_lr_scatter.png`: learning rate (log scale) against best mask mAP, one point per run.

use plotters::prelude::*;

use super::canvas::{self, Area, DrawResult, Mark, e};
use crate::compare::digest::Digest;
use crate::compare::leaderboard::Entry;
use crate::compare::palette::{Colors, OTHER};
use crate::compare::{CompareError, CompareOptions, Output};

/// Fewer distinct learning rates than this and the scatter says so instead of plotting.
pub(crate) const MIN_DISTINCT_LRS: usize = 3;

/// One point: a run's learning rate and best mask mAP.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub lr: f64,
    pub map: f64,
    /// Featured runs are named in the legend and coloured; the others are grey and unnamed.
    pub featured: Option<(String, RGBColor)>,
}

/// Everything `hp_lr_scatter.png` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScatterData {
    Points {
        points: Vec<Point>,
        width: u32,
        height: u32,
    },
    /// Too few learning rates for a trend: the image says how many there are.
    TooFew {
        distinct: usize,
        runs: usize,
        width: u32,
        height: u32,
    },
}

/// Ranked runs with a positive learning rate, in leaderboard order.
pub(crate) fn prepare(ranked: &[Entry<'_>], colors: &Colors, opts: &CompareOptions) -> ScatterData {
    let points: Vec<Point> = ranked
        .iter()
        .filter_map(|en| {
            let lr = en
                .run
                .hyperparameters
                .lr
                .filter(|v| v.is_finite() && *v > 0.0)?;
            let b = en.best?;
            Some(Point {
                lr,
                map: b.mask_map,
                featured: colors.get(&en.run.id).map(|c| (en.run.name.clone(), c)),
            })
        })
        .collect();
    let mut lrs: Vec<u64> = points.iter().map(|p| p.lr.to_bits()).collect();
    lrs.sort_unstable();
    lrs.dedup();
    if lrs.len() < MIN_DISTINCT_LRS {
        return ScatterData::TooFew {
            distinct: lrs.len(),
            runs: points.len(),
            width: opts.width,
            height: opts.height,
        };
    }
    ScatterData::Points {
        points,
        width: opts.width,
        height: opts.height,
    }
}

impl ScatterData {
    fn size(&self) -> (u32, u32) {
        match self {
            ScatterData::Points { width, height, .. }
            | ScatterData::TooFew { width, height, .. } => (*width, *height),
        }
    }

    /// The input digest: the (lr, mAP) pairs and the featured names and colours, or the counts
    /// the message shows.
    pub(crate) fn digest(&self) -> String {
        let mut d = Digest::new(Output::LrScatter.file_name());
        let (w, h) = self.size();
        d.u64(w as u64).u64(h as u64);
        match self {
            ScatterData::Points { points, .. } => {
                d.str("points").u64(points.len() as u64);
                for p in points {
                    d.f64(p.lr).f64(p.map);
                    match &p.featured {
                        Some((name, c)) => d.str(name).bytes(&[c.0, c.1, c.2]),
                        None => d.str(""),
                    };
                }
            }
            ScatterData::TooFew { distinct, runs, .. } => {
                d.str("too-few").u64(*distinct as u64).u64(*runs as u64);
            }
        }
        d.finish()
    }

    /// What the image says instead of plotting: too few learning rates for a trend.
    pub(crate) fn message(&self) -> Option<String> {
        self.message_lines().map(|l| l.join(" "))
    }

    fn message_lines(&self) -> Option<[String; 2]> {
        match self {
            ScatterData::Points { .. } => None,
            ScatterData::TooFew { distinct, runs, .. } => Some([
                "Not enough distinct learning rates to plot a trend.".to_string(),
                format!(
                    "{runs} run{} with a mask mAP, {distinct} distinct learning rate{}; at \
                     least {MIN_DISTINCT_LRS} are needed.",
                    if *runs == 1 { "" } else { "s" },
                    if *distinct == 1 { "" } else { "s" },
                ),
            ]),
        }
    }

    /// Draws the PNG.
    pub(crate) fn draw(&self) -> Result<Vec<u8>, CompareError> {
        let (w, h) = self.size();
        canvas::render_png(Output::LrScatter, w, h, |root| self.draw_on(root))
    }

    fn draw_on(&self, root: &Area<'_>) -> DrawResult {
        let title = "Learning rate vs best mask mAP";
        if let Some(lines) = self.message_lines() {
            return canvas::message(root, title, &lines);
        }
        let ScatterData::Points { points, .. } = self else {
            return Ok(());
        };
        let body = canvas::titled(root, title)?;
        let (w, _) = body.dim_in_pixel();
        let legend_w = 250.min(w / 4);
        let (plot, legend) = body.split_horizontally(w - legend_w);
        let (lr_lo, lr_hi) = points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
            (lo.min(p.lr), hi.max(p.lr))
        });
        let (m_lo, m_hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.map), hi.max(p.map))
            });
        let (m_lo, m_hi) = canvas::padded(m_lo, m_hi, 0.08);
        // x is log10(lr) on a linear axis: plotters' own log axis leaves narrow ranges (a
        // sweep over less than a decade) with too few labels.
        let (x_lo, x_hi) = canvas::padded(lr_lo.log10(), lr_hi.log10(), 0.08);
        let mut chart = ChartBuilder::on(&plot)
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, m_lo..m_hi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("learning rate (log scale)")
            .y_desc("best mask mAP (AP@[.5:.95])")
            .label_style(canvas::axis_font())
            .axis_desc_style(canvas::desc_font())
            .light_line_style(canvas::GRID)
            .max_light_lines(2)
            .x_label_formatter(&|v| format!("{:.1e}", 10f64.powf(*v)))
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.featured.is_none())
                    .map(|p| Circle::new((p.lr.log10(), p.map), 4, OTHER.mix(0.7).filled())),
            )
            .map_err(e)?;
        // Featured points last, best last, so the best run is never hidden.
        for p in points.iter().rev() {
            if let Some((_, c)) = &p.featured {
                chart
                    .draw_series([
                        Circle::new((p.lr.log10(), p.map), 7, c.filled()),
                        Circle::new((p.lr.log10(), p.map), 7, BLACK.stroke_width(1)),
                    ])
                    .map_err(e)?;
            }
        }
        let mut items: Vec<(String, RGBColor)> = points
            .iter()
            .filter_map(|p| p.featured.as_ref())
            .take(12)
            .map(|(n, c)| (canvas::short(n, 24), *c))
            .collect();
        let others = points.iter().filter(|p| p.featured.is_none()).count();
        if others > 0 {
            items.push((
                format!("{others} other run{}", if others == 1 { "" } else { "s" }),
                OTHER,
            ));
        }
        canvas::legend(
            &legend,
            (6, 40),
            Some("runs (best first)"),
            &items,
            Mark::Dot,
        )
    }
}
