//! Painting one image: a textured, noisy background, then each shape in drawing order with its
//! own colour and grain, so that the model has to learn outlines rather than flat colours.

use image::RgbImage;

use super::rng::{Noise, Rng};
use super::scene::Placed;
use crate::mask::Rle;

/// The image of `shapes` on a `size` x `size` textured background.
pub(crate) fn paint(shapes: &[Placed], size: u32, rng: &mut Rng) -> RgbImage {
    let n = size as usize;
    let mut noise = rng.noise();
    let mut pixels = background(n, rng, &mut noise);
    let mean = mean_colour(&pixels);
    for shape in shapes {
        let colour = shape_colour(mean, rng);
        let shade = [rng.range(-0.4, 0.4), rng.range(-0.4, 0.4)];
        let grain = rng.range(2.0, 8.0);
        let mask = raster(&[flatten(&shape.outline)], n);
        for (i, inside) in mask.iter().enumerate() {
            if *inside == 0 {
                continue;
            }
            let (x, y) = ((i % n) as f64 / n as f64, (i / n) as f64 / n as f64);
            let light = 1.0 + shade[0] * (x - 0.5) + shade[1] * (y - 0.5);
            let grain = grain * noise.normal();
            for c in 0..3 {
                pixels[i][c] = (colour[c] * light + grain).clamp(0.0, 255.0);
            }
        }
    }
    let mut out = RgbImage::new(size, size);
    for (px, value) in out.pixels_mut().zip(&pixels) {
        px.0 = value.map(|v| v.round() as u8);
    }
    out
}

/// A polygon as COCO's flat `[x0, y0, x1, y1, ...]` list.
pub(crate) fn flatten(outline: &[[f64; 2]]) -> Vec<f64> {
    outline.iter().flat_map(|p| [p[0], p[1]]).collect()
}

/// The pixels (row-major, 0/1) inside `polygons` on an `n` x `n` grid, rasterised as the
/// annotation masks are (pycocotools' rule), so that the painted shapes and their masks agree.
pub(crate) fn raster(polygons: &[Vec<f64>], n: usize) -> Vec<u8> {
    let column_major = Rle::from_polygons(polygons, n as u32, n as u32).decode();
    let mut row_major = vec![0u8; n * n];
    for x in 0..n {
        for y in 0..n {
            row_major[y * n + x] = column_major[x * n + y];
        }
    }
    row_major
}

/// Smooth value noise in two octaves over a random base colour, optional stripes, then
/// per-pixel grain: a background that is neither flat nor a shape.
fn background(n: usize, rng: &mut Rng, noise: &mut Noise) -> Vec<[f64; 3]> {
    let base = [
        rng.range(40.0, 215.0),
        rng.range(40.0, 215.0),
        rng.range(40.0, 215.0),
    ];
    let coarse = noise_grid(4, 45.0, rng);
    let fine = noise_grid(12, 18.0, rng);
    let stripes = rng.chance(0.35).then(|| {
        let angle = rng.range(0.0, std::f64::consts::PI);
        let period = rng.range(6.0, 24.0);
        (angle.cos(), angle.sin(), period, rng.range(8.0, 25.0))
    });
    let grain = rng.range(3.0, 14.0);
    let mut pixels = Vec::with_capacity(n * n);
    for y in 0..n {
        for x in 0..n {
            let (u, v) = (x as f64 / n as f64, y as f64 / n as f64);
            let c = sample(&coarse, 4, u, v);
            let f = sample(&fine, 12, u, v);
            let stripe = stripes.map_or(0.0, |(cx, cy, period, amp)| {
                amp * ((x as f64 * cx + y as f64 * cy) * 2.0 * std::f64::consts::PI / period).sin()
            });
            let grain = grain * noise.normal();
            pixels.push(std::array::from_fn(|k| {
                (base[k] + c[k] + f[k] + stripe + grain).clamp(0.0, 255.0)
            }));
        }
    }
    pixels
}

/// A `(cells + 1)²` grid of random colour offsets of amplitude `amp`.
fn noise_grid(cells: usize, amp: f64, rng: &mut Rng) -> Vec<[f64; 3]> {
    (0..(cells + 1) * (cells + 1))
        .map(|_| std::array::from_fn(|_| rng.range(-amp, amp)))
        .collect()
}

/// The grid bilinearly interpolated at `(u, v)` in `[0, 1)²`.
fn sample(grid: &[[f64; 3]], cells: usize, u: f64, v: f64) -> [f64; 3] {
    let (gx, gy) = (u * cells as f64, v * cells as f64);
    let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
    let (fx, fy) = (gx - x0 as f64, gy - y0 as f64);
    let at = |x: usize, y: usize| grid[y * (cells + 1) + x];
    let (a, b, c, d) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|k| {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        top + (bottom - top) * fy
    })
}

fn mean_colour(pixels: &[[f64; 3]]) -> [f64; 3] {
    let n = pixels.len().max(1) as f64;
    std::array::from_fn(|k| pixels.iter().map(|p| p[k]).sum::<f64>() / n)
}

/// A random colour at least a clear step away from the background's mean colour.
fn shape_colour(background: [f64; 3], rng: &mut Rng) -> [f64; 3] {
    let mut colour = [0.0; 3];
    for _ in 0..16 {
        colour = [
            rng.range(0.0, 255.0),
            rng.range(0.0, 255.0),
            rng.range(0.0, 255.0),
        ];
        let distance = (0..3)
            .map(|k| (colour[k] - background[k]).powi(2))
            .sum::<f64>()
            .sqrt();
        if distance > 110.0 {
            break;
        }
    }
    colour
}
