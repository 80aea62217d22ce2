//! Drawing into an in-memory RGB buffer and encoding it as PNG, plus what every plot shares.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{self, FAMILY};
use crate::compare::{CompareError, Output};

/// The drawing area every plot draws on.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A drawing error as text: plotters' errors borrow the backend, so they cannot leave `draw`.
pub(crate) type DrawResult = Result<(), String>;

/// Converts any plotters error into the text [`DrawResult`] carries.
pub(crate) fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// Renders `draw` on a white `width`×`height` canvas and returns the PNG bytes.
pub(crate) fn render_png(
    output: Output,
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<Vec<u8>, CompareError> {
    font::ensure()?;
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(e).and_then(|()| draw(&root));
        drawn
            .and_then(|()| root.present().map_err(e))
            .map_err(|message| CompareError::Draw { output, message })?;
    }
    encode(output, width, height, &buf)
}

fn encode(output: Output, width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, CompareError> {
    let err = |source| CompareError::Encode { output, source };
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

/// A title above the plot; returns the area below it.
pub(crate) fn titled<'a>(root: &Area<'a>, title: &str) -> Result<Area<'a>, String> {
    root.titled(title, (FAMILY, 26).into_font().color(&BLACK))
        .map_err(e)
}

/// A plot that has nothing to show says why, in words, instead of drawing empty axes.
pub(crate) fn message(root: &Area<'_>, title: &str, lines: &[String]) -> DrawResult {
    let body = titled(root, title)?;
    let (w, h) = body.dim_in_pixel();
    body.draw(&Rectangle::new(
        [(40, 30), (w as i32 - 40, h as i32 - 30)],
        ShapeStyle::from(&RGBColor(200, 200, 200)).stroke_width(2),
    ))
    .map_err(e)?;
    let style = TextStyle::from((FAMILY, 24).into_font())
        .color(&RGBColor(60, 60, 60))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let n = lines.len() as i32;
    for (i, line) in lines.iter().enumerate() {
        let y = h as i32 / 2 + (i as i32 * 2 - (n - 1)) * 18;
        body.draw(&Text::new(line.as_str(), (w as i32 / 2, y), style.clone()))
            .map_err(e)?;
    }
    Ok(())
}

/// A label shortened to `max` characters with an ellipsis in the middle, so legends stay
/// inside the plot and sweep names that differ only at the end (`...-lr2.0e-4-step` vs
/// `...-cosine`) stay apart.
pub(crate) fn short(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    let head = keep / 2;
    let tail = keep - head;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(n - tail));
    t
}

/// `c` mixed with white: the lighter twin of a run's colour (bbox bars beside mask bars).
pub(crate) fn light(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as u16 + (255 - v as u16) * 11 / 20) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// `lo..hi` padded by a fraction of its span, never empty.
pub(crate) fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    (lo - span * pad, hi + span * pad)
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Line,
    Dot,
    Box,
}

/// A legend drawn by hand at `origin` (pixels in `area`): plotters' own legend sits inside the
/// plot, over the data; these sit beside it.
pub(crate) fn legend(
    area: &Area<'_>,
    origin: (i32, i32),
    title: Option<&str>,
    items: &[(String, RGBColor)],
    mark: Mark,
) -> DrawResult {
    let (x0, mut y) = origin;
    let text = TextStyle::from((FAMILY, 15).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    if let Some(t) = title {
        let head = TextStyle::from((FAMILY, 16).into_font())
            .color(&RGBColor(60, 60, 60))
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(t, (x0, y), head)).map_err(e)?;
        y += 26;
    }
    for (name, c) in items {
        match mark {
            Mark::Line => area
                .draw(&PathElement::new(
                    vec![(x0, y), (x0 + 24, y)],
                    c.stroke_width(3),
                ))
                .map_err(e)?,
            Mark::Dot => area
                .draw(&Circle::new((x0 + 12, y), 6, c.filled()))
                .map_err(e)?,
            Mark::Box => area
                .draw(&Rectangle::new(
                    [(x0 + 4, y - 7), (x0 + 20, y + 7)],
                    c.filled(),
                ))
                .map_err(e)?,
        }
        area.draw(&Text::new(name.as_str(), (x0 + 32, y), text.clone()))
            .map_err(e)?;
        y += 24;
    }
    Ok(())
}

/// Axis styling shared by every chart.
pub(crate) fn axis_font() -> TextStyle<'static> {
    TextStyle::from((FAMILY, 14).into_font()).color(&BLACK)
}

/// Axis description styling shared by every chart.
pub(crate) fn desc_font() -> TextStyle<'static> {
    TextStyle::from((FAMILY, 16).into_font()).color(&BLACK)
}

/// The faint grid colour.
pub(crate) const GRID: RGBColor = RGBColor(232, 232, 232);
