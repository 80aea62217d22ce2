//! `model_size_comparison.png`: the best run of each model size, sizes from nano to 2xlarge.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{self, Area, DrawResult, Mark, e};
use super::font::FAMILY;
use crate::compare::digest::Digest;
use crate::compare::leaderboard::Entry;
use crate::compare::palette::{Colors, best_per_size};
use crate::compare::{CompareError, CompareOptions, Output};
use crate::experiment::ModelSize;

/// The best run of one size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SizeBest {
    pub size: ModelSize,
    pub name: String,
    pub color: RGBColor,
    pub mask: f64,
    pub bbox: Option<f64>,
}

/// Everything `model_size_comparison.png` shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SizesData {
    pub sizes: Vec<SizeBest>,
    pub width: u32,
    pub height: u32,
}

/// The best ranked run per size, in [`ModelSize::ALL`] order.
pub(crate) fn prepare(ranked: &[Entry<'_>], colors: &Colors, opts: &CompareOptions) -> SizesData {
    let sizes = best_per_size(ranked)
        .into_iter()
        .filter_map(|(i, size)| {
            let en = &ranked[i];
            let b = en.best?;
            Some(SizeBest {
                size,
                name: en.run.name.clone(),
                color: colors.or_other(&en.run.id),
                mask: b.mask_map,
                bbox: b.bbox_map,
            })
        })
        .collect();
    SizesData {
        sizes,
        width: opts.width,
        height: opts.height,
    }
}

impl SizesData {
    /// The input digest: image size and every size's best run.
    pub(crate) fn digest(&self) -> String {
        let mut d = Digest::new(Output::ModelSize.file_name());
        d.u64(self.width as u64).u64(self.height as u64);
        d.u64(self.sizes.len() as u64);
        for s in &self.sizes {
            d.str(s.size.as_str())
                .str(&s.name)
                .bytes(&[s.color.0, s.color.1, s.color.2])
                .f64(s.mask)
                .opt_f64(s.bbox);
        }
        d.finish()
    }

    /// What the image says instead of plotting, when there is nothing to plot.
    pub(crate) fn message(&self) -> Option<String> {
        self.sizes
            .is_empty()
            .then(|| "No run has a mask mAP yet.".to_string())
    }

    /// Draws the PNG.
    pub(crate) fn draw(&self) -> Result<Vec<u8>, CompareError> {
        canvas::render_png(Output::ModelSize, self.width, self.height, |root| {
            self.draw_on(root)
        })
    }

    fn draw_on(&self, root: &Area<'_>) -> DrawResult {
        if let Some(m) = self.message() {
            return canvas::message(root, "Best run per model size", &[m]);
        }
        let n = self.sizes.len();
        let body = canvas::titled(root, "Best run per model size")?;
        let max = self
            .sizes
            .iter()
            .map(|s| s.mask.max(s.bbox.unwrap_or(0.0)))
            .fold(0.0f64, f64::max);
        let y_hi = (max * 1.15).max(0.05);
        let mut chart = ChartBuilder::on(&body)
            .margin(14)
            .margin_right(190)
            .x_label_area_size(70)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n as f64, 0.0..y_hi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .y_desc("mAP (AP@[.5:.95])")
            .label_style(canvas::axis_font())
            .axis_desc_style(canvas::desc_font())
            .light_line_style(canvas::GRID)
            .max_light_lines(2)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(e)?;
        let center = |pos: Pos, size: u32| {
            TextStyle::from((FAMILY, size).into_font())
                .color(&BLACK)
                .pos(pos)
        };
        let below = Pos::new(HPos::Center, VPos::Top);
        let above = Pos::new(HPos::Center, VPos::Bottom);
        let name_chars = ((body.dim_in_pixel().0 as usize - 330) / n.max(1) / 8).clamp(8, 30);
        for (i, s) in self.sizes.iter().enumerate() {
            let x = i as f64;
            chart
                .draw_series([Rectangle::new(
                    [(x + 0.16, 0.0), (x + 0.5, s.mask)],
                    s.color.filled(),
                )])
                .map_err(e)?;
            let (ax, ay) = chart.backend_coord(&(x + 0.33, s.mask));
            root.draw(&Text::new(
                format!("{:.3}", s.mask),
                (ax, ay - 4),
                center(above, 13),
            ))
            .map_err(e)?;
            if let Some(bbox) = s.bbox {
                chart
                    .draw_series([Rectangle::new(
                        [(x + 0.5, 0.0), (x + 0.84, bbox)],
                        canvas::light(s.color).filled(),
                    )])
                    .map_err(e)?;
                let (bx, by) = chart.backend_coord(&(x + 0.67, bbox));
                root.draw(&Text::new(
                    format!("{bbox:.3}"),
                    (bx, by - 4),
                    center(above, 13),
                ))
                .map_err(e)?;
            }
            let (lx, ly) = chart.backend_coord(&(x + 0.5, 0.0));
            root.draw(&Text::new(
                s.size.as_str(),
                (lx, ly + 10),
                center(below, 17),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                canvas::short(&s.name, name_chars),
                (lx, ly + 34),
                center(below, 13),
            ))
            .map_err(e)?;
        }
        let (w, _) = root.dim_in_pixel();
        canvas::legend(
            root,
            (w as i32 - 180, 80),
            Some("bars per size"),
            &[
                ("mask mAP".to_string(), RGBColor(90, 90, 90)),
                ("bbox mAP".to_string(), canvas::light(RGBColor(90, 90, 90))),
            ],
            Mark::Box,
        )
    }
}
