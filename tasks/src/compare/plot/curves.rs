//! `training_curves.png`: training loss and mask mAP per epoch, the top runs overlaid.

use plotters::prelude::*;

use super::canvas::{self, Area, DrawResult, Mark, e};
use super::font::FAMILY;
use crate::compare::digest::Digest;
use crate::compare::leaderboard::Entry;
use crate::compare::palette::Colors;
use crate::compare::{CompareOptions, Output};
use crate::metrics::{EpochMetrics, Track};

/// One run's curves as drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Curve {
    pub name: String,
    pub color: RGBColor,
    /// (epoch, train loss).
    pub loss: Vec<(f64, f64)>,
    /// (epoch, mask mAP of the run's winning track).
    pub map: Vec<(f64, f64)>,
}

/// Everything `training_curves.png` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CurvesData {
    pub curves: Vec<Curve>,
    pub width: u32,
    pub height: u32,
}

/// The top `max_curves` ranked runs' curves, best first.
pub(crate) fn prepare(ranked: &[Entry<'_>], colors: &Colors, opts: &CompareOptions) -> CurvesData {
    let curves = ranked
        .iter()
        .take(opts.max_curves)
        .filter_map(|en| {
            let m = en.run.metrics.as_ref().ok()?;
            let track = en.best.map(|b| b.track).unwrap_or(Track::Regular);
            let mask = |ep: &EpochMetrics| match track {
                Track::Regular => ep.segm.and_then(|s| s.ap()),
                Track::Ema => ep.ema_segm.and_then(|s| s.ap()),
            };
            Some(Curve {
                name: en.run.name.clone(),
                color: colors.or_other(&en.run.id),
                loss: m
                    .epochs
                    .iter()
                    .filter_map(|ep| ep.train_loss.map(|l| (ep.epoch as f64, l)))
                    .collect(),
                map: m
                    .epochs
                    .iter()
                    .filter_map(|ep| mask(ep).map(|v| (ep.epoch as f64, v)))
                    .collect(),
            })
        })
        .collect();
    CurvesData {
        curves,
        width: opts.width,
        height: opts.height,
    }
}

impl CurvesData {
    /// The input digest: image size and every point, name and colour drawn.
    pub(crate) fn digest(&self) -> String {
        let mut d = Digest::new(Output::TrainingCurves.file_name());
        d.u64(self.width as u64).u64(self.height as u64);
        d.u64(self.curves.len() as u64);
        for c in &self.curves {
            d.str(&c.name).bytes(&[c.color.0, c.color.1, c.color.2]);
            for series in [&c.loss, &c.map] {
                d.u64(series.len() as u64);
                for (x, y) in series {
                    d.f64(*x).f64(*y);
                }
            }
        }
        d.finish()
    }

    /// What the image says instead of plotting, when there is nothing to plot.
    pub(crate) fn message(&self) -> Option<String> {
        self.curves
            .iter()
            .all(|c| c.loss.is_empty() && c.map.is_empty())
            .then(|| "No run has per-epoch metrics to plot yet.".to_string())
    }

    /// Draws the PNG.
    pub(crate) fn draw(&self) -> Result<Vec<u8>, crate::compare::CompareError> {
        canvas::render_png(Output::TrainingCurves, self.width, self.height, |root| {
            self.draw_on(root)
        })
    }

    fn draw_on(&self, root: &Area<'_>) -> DrawResult {
        let title = format!(
            "Training curves: top {} run{} by mask mAP",
            self.curves.len(),
            if self.curves.len() == 1 { "" } else { "s" }
        );
        if let Some(m) = self.message() {
            return canvas::message(root, "Training curves", &[m]);
        }
        let body = canvas::titled(root, &title)?;
        let (w, _) = body.dim_in_pixel();
        let legend_w = 250.min(w / 4);
        let (plots, legend) = body.split_horizontally(w - legend_w);
        let panels = plots.split_evenly((1, 2));
        panel(
            &panels[0],
            "Training loss",
            "train loss",
            &self.curves,
            |c| &c.loss,
        )?;
        panel(
            &panels[1],
            "Mask mAP (AP@[.5:.95])",
            "mask mAP",
            &self.curves,
            |c| &c.map,
        )?;
        let items: Vec<(String, RGBColor)> = self
            .curves
            .iter()
            .map(|c| (canvas::short(&c.name, 24), c.color))
            .collect();
        canvas::legend(
            &legend,
            (6, 40),
            Some("runs (best first)"),
            &items,
            Mark::Line,
        )
    }
}

fn panel(
    area: &Area<'_>,
    caption: &str,
    y_desc: &str,
    curves: &[Curve],
    series: impl Fn(&Curve) -> &Vec<(f64, f64)>,
) -> DrawResult {
    let pts = || curves.iter().flat_map(|c| series(c).iter());
    let (x_lo, x_hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| {
        (lo.min(*x), hi.max(*x))
    });
    let (y_lo, y_hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| {
        (lo.min(*y), hi.max(*y))
    });
    let (x_lo, x_hi) = if x_lo.is_finite() {
        (x_lo, if x_hi > x_lo { x_hi } else { x_lo + 1.0 })
    } else {
        (0.0, 1.0)
    };
    let (y_lo, y_hi) = canvas::padded(y_lo, y_hi, 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(canvas::axis_font())
        .axis_desc_style(canvas::desc_font())
        .light_line_style(canvas::GRID)
        .max_light_lines(2)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.3}"))
        .draw()
        .map_err(e)?;
    // Drawn worst first so the best run's line ends up on top.
    for c in curves.iter().rev() {
        chart
            .draw_series(LineSeries::new(
                series(c).iter().copied(),
                c.color.stroke_width(2),
            ))
            .map_err(e)?;
    }
    Ok(())
}
