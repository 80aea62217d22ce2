//! `metrics_bar_comparison.png`: best mask and bbox mAP of the top runs, as horizontal bars
//! (long run names read better down the side than under slanted columns).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{self, Area, DrawResult, Mark, e};
use super::font::FAMILY;
use crate::compare::digest::Digest;
use crate::compare::leaderboard::Entry;
use crate::compare::palette::Colors;
use crate::compare::{CompareError, CompareOptions, Output};

/// One run's bars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub name: String,
    pub color: RGBColor,
    pub mask: f64,
    pub bbox: Option<f64>,
}

/// Everything `metrics_bar_comparison.png` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BarsData {
    pub bars: Vec<Bar>,
    pub width: u32,
    pub height: u32,
}

/// The top `max_bars` ranked runs, best first.
pub(crate) fn prepare(ranked: &[Entry<'_>], colors: &Colors, opts: &CompareOptions) -> BarsData {
    let bars = ranked
        .iter()
        .take(opts.max_bars)
        .filter_map(|en| {
            let b = en.best?;
            Some(Bar {
                name: en.run.name.clone(),
                color: colors.or_other(&en.run.id),
                mask: b.mask_map,
                bbox: b.bbox_map,
            })
        })
        .collect();
    BarsData {
        bars,
        width: opts.width,
        height: opts.height,
    }
}

impl BarsData {
    /// The input digest: image size and every bar.
    pub(crate) fn digest(&self) -> String {
        let mut d = Digest::new(Output::MetricsBar.file_name());
        d.u64(self.width as u64).u64(self.height as u64);
        d.u64(self.bars.len() as u64);
        for b in &self.bars {
            d.str(&b.name)
                .bytes(&[b.color.0, b.color.1, b.color.2])
                .f64(b.mask)
                .opt_f64(b.bbox);
        }
        d.finish()
    }

    /// What the image says instead of plotting, when there is nothing to plot.
    pub(crate) fn message(&self) -> Option<String> {
        self.bars
            .is_empty()
            .then(|| "No run has a mask mAP yet.".to_string())
    }

    /// Draws the PNG.
    pub(crate) fn draw(&self) -> Result<Vec<u8>, CompareError> {
        canvas::render_png(Output::MetricsBar, self.width, self.height, |root| {
            self.draw_on(root)
        })
    }

    fn draw_on(&self, root: &Area<'_>) -> DrawResult {
        if let Some(m) = self.message() {
            return canvas::message(root, "Best metrics", &[m]);
        }
        let n = self.bars.len();
        let title = format!(
            "Best mask and bbox mAP: top {n} run{}",
            if n == 1 { "" } else { "s" }
        );
        let body = canvas::titled(root, &title)?;
        let max = self
            .bars
            .iter()
            .map(|b| b.mask.max(b.bbox.unwrap_or(0.0)))
            .fold(0.0f64, f64::max);
        let x_hi = (max * 1.15).max(0.05);
        let mut chart = ChartBuilder::on(&body)
            .margin(14)
            .margin_right(190)
            .x_label_area_size(45)
            .y_label_area_size(230)
            .build_cartesian_2d(0.0..x_hi, 0.0..n as f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_label_formatter(&|_| String::new())
            .x_desc("mAP (AP@[.5:.95])")
            .label_style(canvas::axis_font())
            .axis_desc_style(canvas::desc_font())
            .light_line_style(canvas::GRID)
            .max_light_lines(2)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(e)?;
        let name_style = TextStyle::from((FAMILY, 15).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let value_style = TextStyle::from((FAMILY, 13).into_font())
            .color(&RGBColor(50, 50, 50))
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, b) in self.bars.iter().enumerate() {
            let mid = n as f64 - i as f64 - 0.5;
            let mask = [(0.0, mid), (b.mask, mid + 0.36)];
            chart
                .draw_series([Rectangle::new(mask, b.color.filled())])
                .map_err(e)?;
            let (px, py) = chart.backend_coord(&(0.0, mid));
            root.draw(&Text::new(
                format!("{}. {}", i + 1, canvas::short(&b.name, 24)),
                (px - 8, py),
                name_style.clone(),
            ))
            .map_err(e)?;
            let (vx, vy) = chart.backend_coord(&(b.mask, mid + 0.18));
            root.draw(&Text::new(
                format!("{:.3}", b.mask),
                (vx + 4, vy),
                value_style.clone(),
            ))
            .map_err(e)?;
            if let Some(bbox) = b.bbox {
                chart
                    .draw_series([Rectangle::new(
                        [(0.0, mid - 0.36), (bbox, mid)],
                        canvas::light(b.color).filled(),
                    )])
                    .map_err(e)?;
                let (vx, vy) = chart.backend_coord(&(bbox, mid - 0.18));
                root.draw(&Text::new(
                    format!("{bbox:.3}"),
                    (vx + 4, vy),
                    value_style.clone(),
                ))
                .map_err(e)?;
            }
        }
        let (w, _) = root.dim_in_pixel();
        canvas::legend(
            root,
            (w as i32 - 180, 80),
            Some("bars per run"),
            &[
                ("mask mAP".to_string(), RGBColor(90, 90, 90)),
                ("bbox mAP".to_string(), canvas::light(RGBColor(90, 90, 90))),
            ],
            Mark::Box,
        )
    }
}
