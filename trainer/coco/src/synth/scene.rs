//! One image's layout: which shapes, where, in which order, and what stays visible of each
//! once the later ones are drawn over it.

use i_overlay::core::fill_rule::FillRule;
use i_overlay::core::overlay_rule::OverlayRule;
use i_overlay::float::single::SingleFloatOverlay;

use super::SynthConfig;
use super::rng::Rng;
use super::shapes::{Outline, ShapeClass, outline, polygon_area};

/// COCO's area ranges (small < 32², medium < 96², large), which the sizes are drawn from so
/// that every range of the evaluation has instances.
const SMALL_MAX: f64 = 32.0 * 32.0;
const MEDIUM_MAX: f64 = 96.0 * 96.0;

/// A shape placed in the image, with the parts of it that stay visible.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    /// Its class.
    pub(crate) class: ShapeClass,
    /// Its full outline (clipped to the image), used to paint it.
    pub(crate) outline: Outline,
    /// The visible parts: one outline each (occlusion can split a shape; never a hole).
    pub(crate) visible: Vec<Outline>,
    /// The area of `outline`, to bound how much of it later shapes may hide.
    pub(crate) full_area: f64,
}

/// The shapes of one image, in drawing order (later ones occlude earlier ones).
pub(crate) fn layout(config: &SynthConfig, rng: &mut Rng) -> Vec<Placed> {
    let size = f64::from(config.size);
    let count = if rng.chance(config.empty_fraction) {
        0
    } else {
        rng.int(config.min_objects.max(1), config.max_objects.max(1))
    };
    // Large shapes first, so that smaller ones land on top of them as in real scenes.
    let mut areas: Vec<f64> = (0..count).map(|_| draw_area(size, rng)).collect();
    areas.sort_by(|a, b| b.total_cmp(a));
    let frame = vec![[0.0, 0.0], [size, 0.0], [size, size], [0.0, size]];
    let mut placed: Vec<Placed> = Vec::new();
    for area in areas {
        for _attempt in 0..25 {
            if let Some(next) = try_place(&placed, area, &frame, size, rng) {
                placed = next;
                break;
            }
        }
    }
    placed
}

/// A target area in one of COCO's three ranges, the large range only where the image has room.
fn draw_area(size: f64, rng: &mut Rng) -> f64 {
    let image = size * size;
    let large_max = (image * 0.5).min(MEDIUM_MAX * 1.8);
    let medium_max = MEDIUM_MAX.min(image * 0.4);
    let weights = [
        0.4,
        0.4,
        if large_max > MEDIUM_MAX * 1.1 {
            0.2
        } else {
            0.0
        },
    ];
    let (lo, hi) = match rng.weighted(&weights) {
        0 => (60.0, SMALL_MAX * 0.9),
        1 => (SMALL_MAX * 1.1, medium_max.max(SMALL_MAX * 1.2) * 0.9),
        _ => (MEDIUM_MAX * 1.1, large_max),
    };
    // Log-uniform: as many 10-pixel shapes as 30-pixel ones.
    (lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp()
}

/// Places one shape of `area` on top of `placed`; `None` when it would hide too much of a
/// shape below, punch a hole in one, or lie mostly outside the image.
fn try_place(
    placed: &[Placed],
    area: f64,
    frame: &Outline,
    size: f64,
    rng: &mut Rng,
) -> Option<Vec<Placed>> {
    let class = ShapeClass::ALL[rng.int(0, ShapeClass::ALL.len() as u32 - 1) as usize];
    let center = [rng.range(0.0, size), rng.range(0.0, size)];
    let raw = outline(class, area, center, rng);
    let raw_area = polygon_area(&raw);
    let clipped = raw.overlay(frame, OverlayRule::Intersect, FillRule::NonZero);
    let [shape] = clipped.as_slice() else {
        return None;
    };
    let [clipped] = shape.as_slice() else {
        return None;
    };
    let full_area = polygon_area(clipped);
    if full_area < 0.6 * raw_area {
        return None;
    }
    let mut next = Vec::with_capacity(placed.len() + 1);
    for below in placed {
        let parts: Vec<Vec<Outline>> = below.visible.iter().map(|p| vec![p.clone()]).collect();
        let rest = parts.overlay(clipped, OverlayRule::Difference, FillRule::NonZero);
        let mut visible = Vec::with_capacity(rest.len());
        for contours in rest {
            let mut contours = contours.into_iter();
            let Some(outer) = contours.next() else {
                continue;
            };
            if contours.next().is_some() {
                return None; // A hole: COCO polygons cannot say it.
            }
            // Slivers under a pixel are noise, not an object part.
            if polygon_area(&outer) >= 2.0 {
                visible.push(outer);
            }
        }
        let left: f64 = visible.iter().map(|p| polygon_area(p)).sum();
        if left < (0.3 * below.full_area).max(40.0) {
            return None;
        }
        next.push(Placed {
            visible,
            ..below.clone()
        });
    }
    next.push(Placed {
        class,
        outline: clipped.clone(),
        visible: vec![clipped.clone()],
        full_area,
    });
    Some(next)
}
