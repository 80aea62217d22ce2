//! The shape classes of the synthetic dataset and their outlines as polygons, so that one
//! geometry feeds both the painted image and the annotation masks.

use std::f64::consts::PI;

use super::rng::Rng;

/// A shape class: one COCO category of the synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeClass {
    /// A disc.
    Circle,
    /// An axis-ratio 0.35–0.7 ellipse, rotated.
    Ellipse,
    /// A jittered, rotated triangle.
    Triangle,
    /// A rotated rectangle, from square to a 1:4 bar (bars split what they cross).
    Rectangle,
    /// A five-pointed star (concave).
    Star,
}

impl ShapeClass {
    /// Every class, in category-id order (id = position + 1; id 0 is the super-category).
    pub const ALL: [ShapeClass; 5] = [
        ShapeClass::Circle,
        ShapeClass::Ellipse,
        ShapeClass::Triangle,
        ShapeClass::Rectangle,
        ShapeClass::Star,
    ];

    /// The category name written to `_annotations.coco.json`.
    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Circle => "circle",
            ShapeClass::Ellipse => "ellipse",
            ShapeClass::Triangle => "triangle",
            ShapeClass::Rectangle => "rectangle",
            ShapeClass::Star => "star",
        }
    }

    /// The COCO category id (1-based: Roboflow keeps id 0 for the super-category).
    pub fn category_id(self) -> u32 {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as u32 + 1
    }
}

/// A closed polygon outline in pixel coordinates (x right, y down), vertices in order.
pub(crate) type Outline = Vec<[f64; 2]>;

/// The outline of a `class` shape of about `area` square pixels centred on `center`.
pub(crate) fn outline(class: ShapeClass, area: f64, center: [f64; 2], rng: &mut Rng) -> Outline {
    let angle = rng.range(0.0, 2.0 * PI);
    let local: Vec<[f64; 2]> = match class {
        ShapeClass::Circle => {
            let r = (area / PI).sqrt();
            ellipse(r, r)
        }
        ShapeClass::Ellipse => {
            let q = rng.range(0.35, 0.7);
            let a = (area / (PI * q)).sqrt();
            ellipse(a, a * q)
        }
        ShapeClass::Triangle => {
            // Circumradius of an equilateral triangle of this area, then jittered corners.
            let r = (area * 4.0 / (3.0 * 3.0f64.sqrt())).sqrt();
            (0..3)
                .map(|k| {
                    let t = k as f64 * 2.0 * PI / 3.0 + rng.range(-0.25, 0.25);
                    let rr = r * rng.range(0.85, 1.1);
                    [rr * t.cos(), rr * t.sin()]
                })
                .collect()
        }
        ShapeClass::Rectangle => {
            let aspect = if rng.chance(0.3) {
                rng.range(2.5, 4.0)
            } else {
                rng.range(1.0, 2.0)
            };
            let w = (area * aspect).sqrt();
            let h = area / w;
            vec![
                [-w / 2.0, -h / 2.0],
                [w / 2.0, -h / 2.0],
                [w / 2.0, h / 2.0],
                [-w / 2.0, h / 2.0],
            ]
        }
        ShapeClass::Star => {
            let ratio = rng.range(0.4, 0.55);
            // Area of the 10-gon alternating radii R and ratio*R, 36 degrees apart.
            let r = (area / (5.0 * ratio * (PI / 5.0).sin())).sqrt();
            (0..10)
                .map(|k| {
                    let t = k as f64 * PI / 5.0;
                    let rr = if k % 2 == 0 { r } else { r * ratio };
                    [rr * t.cos(), rr * t.sin()]
                })
                .collect()
        }
    };
    let (s, c) = angle.sin_cos();
    local
        .into_iter()
        .map(|[x, y]| [center[0] + c * x - s * y, center[1] + s * x + c * y])
        .collect()
}

/// An ellipse with semi-axes `a`, `b` as a polygon, with more vertices for larger shapes.
fn ellipse(a: f64, b: f64) -> Vec<[f64; 2]> {
    let n = (a.max(b) * 1.5).clamp(12.0, 48.0) as usize;
    (0..n)
        .map(|k| {
            let t = k as f64 * 2.0 * PI / n as f64;
            [a * t.cos(), b * t.sin()]
        })
        .collect()
}

/// The polygon's area (shoelace formula), whatever its orientation.
pub(crate) fn polygon_area(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let [x0, y0] = points[i];
            let [x1, y1] = points[(i + 1) % n];
            x0 * y1 - x1 * y0
        })
        .sum();
    twice.abs() / 2.0
}
