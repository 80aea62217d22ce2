//! Run-length encoded binary masks, bit for bit as pycocotools' `maskApi.c` computes them.
//!
//! COCO stores instance masks as run lengths over the pixels in column-major order (down the
//! first column, then the second, ...), starting with a run of zeros (possibly empty). Every
//! function here reproduces its pycocotools counterpart exactly, quirks included, because the
//! evaluator's numbers must equal pycocotools' and the dataset loader must rasterise polygons to
//! the very pixels the reference trains on:
//!
//! - [`Rle::from_polygon`] is `rleFrPoly`: the polygon is scaled by 5, its edges are walked on
//!   that fine grid, and a pixel column is filled from the first boundary crossing whose centre
//!   lies below it. This differs from "pixel centre inside the polygon" on edges and vertices.
//! - [`Rle::to_compressed`] / [`Rle::from_compressed`] are `rleToString` / `rleFrString`, a
//!   LEB128-like code of 5 bits per character (offset 48) where counts from the fourth on are
//!   stored as the difference to the count two places before.
//! - [`Rle::iou`] and [`box_iou`] apply the crowd rule of `rleIou` / `bbIou`: against a crowd
//!   region the union is the detection's own area.

use thiserror::Error;

/// A binary mask of `height` × `width` pixels as alternating run lengths of 0s and 1s in
/// column-major order, starting with 0s; the counts sum to `height * width`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rle {
    /// Rows of the image the mask belongs to.
    pub height: u32,
    /// Columns of the image the mask belongs to.
    pub width: u32,
    /// Run lengths, alternately of 0s and 1s, the first of 0s.
    pub counts: Vec<u32>,
}

/// Why a serialised mask could not be turned into an [`Rle`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MaskError {
    /// A character outside pycocotools' alphabet (`'0'..='o'`) in a compressed RLE string.
    #[error("compressed RLE counts: character {found:?} at byte {at} is not in '0'..='o'")]
    BadChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the string.
        at: usize,
    },
    /// A compressed RLE string that ends in the middle of a number.
    #[error("compressed RLE counts: the string ends in the middle of a number")]
    Truncated,
    /// A number spelled with more characters than any 32-bit count needs.
    #[error("compressed RLE counts: the number starting at byte {at} is too long")]
    Overlong {
        /// Byte offset of the number's first character.
        at: usize,
    },
    /// A run length that is negative or does not fit in 32 bits once decoded.
    #[error("RLE counts: run {index} decodes to {value}, outside 0..=4294967295")]
    CountOutOfRange {
        /// Which run (0-based).
        index: usize,
        /// The value it decodes to.
        value: i64,
    },
    /// Run lengths that do not cover the image exactly.
    #[error("RLE counts sum to {sum} but a {height}x{width} mask has {pixels} pixels")]
    WrongLength {
        /// Sum of the counts.
        sum: u64,
        /// Mask height.
        height: u32,
        /// Mask width.
        width: u32,
        /// `height * width`.
        pixels: u64,
    },
}

impl Rle {
    /// A mask with no foreground pixel.
    pub fn empty(height: u32, width: u32) -> Rle {
        let pixels = height as u64 * width as u64;
        Rle {
            height,
            width,
            counts: if pixels == 0 {
                Vec::new()
            } else {
                vec![pixels as u32]
            },
        }
    }

    /// Run-length encodes a column-major mask of `height * width` bytes (any non-zero byte is
    /// foreground), as pycocotools' `encode` does with a Fortran-ordered array.
    ///
    /// # Panics
    /// When `mask.len() != height * width`: a programming error, not a data error.
    pub fn encode(mask: &[u8], height: u32, width: u32) -> Rle {
        assert_eq!(
            mask.len() as u64,
            height as u64 * width as u64,
            "Rle::encode: mask length must be height * width"
        );
        let mut counts = Vec::new();
        let mut value = false;
        let mut run = 0u32;
        for &pixel in mask {
            if (pixel != 0) != value {
                counts.push(run);
                run = 0;
                value = !value;
            }
            run += 1;
        }
        counts.push(run);
        Rle {
            height,
            width,
            counts,
        }
    }

    /// Checks that the counts cover exactly `height * width` pixels; masks read from files are
    /// checked so that decoding and IoU never read past the image.
    pub fn validate(&self) -> Result<(), MaskError> {
        let sum: u64 = self.counts.iter().map(|&c| c as u64).sum();
        let pixels = self.height as u64 * self.width as u64;
        if sum != pixels {
            return Err(MaskError::WrongLength {
                sum,
                height: self.height,
                width: self.width,
                pixels,
            });
        }
        Ok(())
    }

    /// Expands the mask to `height * width` bytes, 0 or 1, in column-major order.
    pub fn decode(&self) -> Vec<u8> {
        let pixels = self.height as usize * self.width as usize;
        let mut mask = Vec::with_capacity(pixels);
        let mut value = 0u8;
        for &count in &self.counts {
            let take = (count as usize).min(pixels - mask.len());
            mask.resize(mask.len() + take, value);
            value ^= 1;
        }
        mask.resize(pixels, 0);
        mask
    }

    /// Number of foreground pixels (pycocotools' `area`).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }

    /// The tight box `[x, y, w, h]` around the foreground in pixel units, as `rleToBbox`
    /// computes it (all zeros for an empty mask). A run that wraps from one column to the next
    /// spans the full height, as in pycocotools.
    pub fn to_bbox(&self) -> [f64; 4] {
        let h = self.height as u64;
        let runs = self.counts.len() / 2 * 2;
        if runs == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (u64::MAX, u64::MAX, 0u64, 0u64);
        let mut cc = 0u64;
        let mut xp = 0u64;
        for (j, &count) in self.counts[..runs].iter().enumerate() {
            cc += count as u64;
            // End of a 0-run: the first pixel of the next 1-run; end of a 1-run: its last pixel.
            let t = cc - (j % 2) as u64;
            let (x, y) = (t / h, t % h);
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        [
            xs as f64,
            ys as f64,
            (xe - xs + 1) as f64,
            (ye - ys + 1) as f64,
        ]
    }

    /// Rasterises one polygon `[x0, y0, x1, y1, ...]` (pixel coordinates, a trailing odd value
    /// ignored) exactly like pycocotools' `rleFrPoly`.
    pub fn from_polygon(xy: &[f64], height: u32, width: u32) -> Rle {
        polygon_to_rle(xy, height, width)
    }

    /// Rasterises the parts of a multi-part polygon segmentation and takes their union, as
    /// pycocotools' `frPyObjects` followed by `merge` does for a COCO polygon list.
    pub fn from_polygons(polys: &[Vec<f64>], height: u32, width: u32) -> Rle {
        let parts: Vec<Rle> = polys
            .iter()
            .map(|p| Rle::from_polygon(p, height, width))
            .collect();
        Rle::union(&parts).unwrap_or_else(|| Rle::empty(height, width))
    }

    /// The union of masks of one size, in pycocotools' canonical run form (`merge` with
    /// `intersect=False`); `None` when `masks` is empty or the sizes differ.
    pub fn union(masks: &[Rle]) -> Option<Rle> {
        let first = masks.first()?;
        if masks
            .iter()
            .any(|m| m.height != first.height || m.width != first.width)
        {
            return None;
        }
        let mut acc = first.clone();
        for next in &masks[1..] {
            acc = union_pair(&acc, next);
        }
        Some(acc)
    }

    /// pycocotools' compressed counts string (`rleToString`), as stored in COCO files.
    pub fn to_compressed(&self) -> String {
        let mut out = String::with_capacity(self.counts.len() * 2);
        for (i, &count) in self.counts.iter().enumerate() {
            let mut x = count as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut c = (x & 0x1f) as u8;
                x >>= 5;
                let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    c |= 0x20;
                }
                out.push((c + 48) as char);
                if !more {
                    break;
                }
            }
        }
        out
    }

    /// Parses pycocotools' compressed counts string (`rleFrString`) for a `height` × `width`
    /// mask. The counts are not checked against the size here; see [`Rle::validate`].
    pub fn from_compressed(s: &str, height: u32, width: u32) -> Result<Rle, MaskError> {
        let bytes = s.as_bytes();
        let mut counts: Vec<u32> = Vec::with_capacity(bytes.len());
        let mut p = 0;
        while p < bytes.len() {
            let mut x: i64 = 0;
            let mut k = 0u32;
            let start = p;
            loop {
                let Some(&byte) = bytes.get(p) else {
                    return Err(MaskError::Truncated);
                };
                if !(48..=111).contains(&byte) {
                    return Err(MaskError::BadChar {
                        found: s[p..].chars().next().unwrap_or('?'),
                        at: p,
                    });
                }
                if k >= 12 {
                    return Err(MaskError::Overlong { at: start });
                }
                let c = (byte - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m > 2 {
                x += counts[m - 2] as i64;
            }
            let count =
                u32::try_from(x).map_err(|_| MaskError::CountOutOfRange { index: m, value: x })?;
            counts.push(count);
        }
        Ok(Rle {
            height,
            width,
            counts,
        })
    }

    /// Intersection over union of this detection mask with a ground-truth mask, as `rleIou`:
    /// against a crowd region (`gt_crowd`) the union is the detection's area; -1 when the
    /// sizes differ.
    pub fn iou(&self, gt: &Rle, gt_crowd: bool) -> f64 {
        rle_iou(
            self,
            &self.to_bbox(),
            self.area(),
            gt,
            &gt.to_bbox(),
            gt_crowd,
        )
    }
}

/// Box IoU of `[x, y, w, h]` boxes with pycocotools' crowd rule (`bbIou`): against a crowd
/// region the union is the detection box's area. The floating-point operations are those of
/// `bbIou`, so that IoUs lying exactly on a threshold compare as they do there.
pub fn box_iou(dt: &[f64; 4], gt: &[f64; 4], gt_crowd: bool) -> f64 {
    let ga = gt[2] * gt[3];
    let da = dt[2] * dt[3];
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = if gt_crowd { da } else { da + ga - i };
    i / u
}

/// `rleIou` for one pair with the boxes and detection area computed beforehand (the evaluator
/// computes them once per mask): zero when the boxes do not overlap, otherwise the
/// intersection of the runs over their union (or over the detection's area for a crowd).
pub(crate) fn rle_iou(
    dt: &Rle,
    dt_box: &[f64; 4],
    dt_area: u64,
    gt: &Rle,
    gt_box: &[f64; 4],
    gt_crowd: bool,
) -> f64 {
    let boxes = box_iou(dt_box, gt_box, gt_crowd);
    if boxes <= 0.0 {
        return boxes;
    }
    if dt.height != gt.height || dt.width != gt.width {
        return -1.0;
    }
    let (inter, union) = intersection_union(&dt.counts, &gt.counts);
    if inter == 0 {
        return 0.0;
    }
    let union = if gt_crowd { dt_area } else { union };
    inter as f64 / union as f64
}

/// Walks two run lists together and returns (|A ∩ B|, |A ∪ B|); a list that ends early
/// counts as background for the rest.
fn intersection_union(a: &[u32], b: &[u32]) -> (u64, u64) {
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut ca, mut cb) = (
        a.first().copied().unwrap_or(0),
        b.first().copied().unwrap_or(0),
    );
    let (mut va, mut vb) = (false, false);
    let (mut inter, mut union) = (0u64, 0u64);
    loop {
        // Empty runs toggle the value without covering a pixel.
        while ca == 0 && ia + 1 < a.len() {
            ia += 1;
            ca = a[ia];
            va = !va;
        }
        while cb == 0 && ib + 1 < b.len() {
            ib += 1;
            cb = b[ib];
            vb = !vb;
        }
        let c = match (ca, cb) {
            (0, 0) => break,
            (0, n) | (n, 0) => n,
            (x, y) => x.min(y),
        };
        let (on_a, on_b) = (va && ca > 0, vb && cb > 0);
        if on_a || on_b {
            union += c as u64;
            if on_a && on_b {
                inter += c as u64;
            }
        }
        ca = ca.saturating_sub(c);
        cb = cb.saturating_sub(c);
    }
    (inter, union)
}

/// Union of two masks of one size, emitting a run whenever the merged value changes, which
/// yields the same counts as pycocotools' `rleMerge` for canonical inputs.
fn union_pair(a: &Rle, b: &Rle) -> Rle {
    let mut counts = Vec::with_capacity(a.counts.len() + b.counts.len());
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut ca, mut cb) = (
        a.counts.first().copied().unwrap_or(0),
        b.counts.first().copied().unwrap_or(0),
    );
    let (mut va, mut vb) = (false, false);
    let mut current = false;
    let mut run = 0u32;
    loop {
        while ca == 0 && ia + 1 < a.counts.len() {
            ia += 1;
            ca = a.counts[ia];
            va = !va;
        }
        while cb == 0 && ib + 1 < b.counts.len() {
            ib += 1;
            cb = b.counts[ib];
            vb = !vb;
        }
        let c = match (ca, cb) {
            (0, 0) => break,
            (0, n) | (n, 0) => n,
            (x, y) => x.min(y),
        };
        let v = (va && ca > 0) || (vb && cb > 0);
        if v != current {
            counts.push(run);
            run = 0;
            current = v;
        }
        run += c;
        ca = ca.saturating_sub(c);
        cb = cb.saturating_sub(c);
    }
    counts.push(run);
    Rle {
        height: a.height,
        width: a.width,
        counts,
    }
}

/// `rleFrPoly`: rasterise one polygon on the 5× upsampled grid, keep the boundary points that
/// fall on pixel-column centres, and turn them into runs.
fn polygon_to_rle(xy: &[f64], height: u32, width: u32) -> Rle {
    const SCALE: f64 = 5.0;
    let k = xy.len() / 2;
    if k == 0 {
        return Rle::empty(height, width);
    }
    let (h, w) = (height as i64, width as i64);
    // Vertices on the fine grid (C's truncating cast to int), the first repeated at the end;
    // i64 arithmetic so that absurd coordinates cannot overflow.
    let fine = |c: f64| (SCALE * c + 0.5) as i32 as i64;
    let mut x: Vec<i64> = (0..k).map(|j| fine(xy[2 * j])).collect();
    let mut y: Vec<i64> = (0..k).map(|j| fine(xy[2 * j + 1])).collect();
    x.push(x[0]);
    y.push(y[0]);
    // Every fine-grid point along every edge.
    let points: i64 = (0..k)
        .map(|j| (x[j] - x[j + 1]).abs().max((y[j] - y[j + 1]).abs()) + 1)
        .sum();
    let mut u: Vec<i64> = Vec::with_capacity(points as usize);
    let mut v: Vec<i64> = Vec::with_capacity(points as usize);
    for j in 0..k {
        let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
        let dx = (xe - xs).abs();
        let dy = (ys - ye).abs();
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        if dx >= dy {
            // dx = dy = 0 (a repeated vertex): C divides 0 by 0; the one point it adds never
            // lies on a column change, so any slope gives the same mask.
            let s = if dx == 0 {
                0.0
            } else {
                (ye - ys) as f64 / dx as f64
            };
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                u.push(t + xs);
                v.push((ys as f64 + s * t as f64 + 0.5) as i32 as i64);
            }
        } else {
            let s = (xe - xs) as f64 / dy as f64;
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                v.push(t + ys);
                u.push((xs as f64 + s * t as f64 + 0.5) as i32 as i64);
            }
        }
    }
    // Boundary crossings of pixel-column centres, back on the pixel grid. rleFrPoly maps a
    // fine coordinate c to (c + 0.5) / 5 - 0.5 = (c - 2) / 5 in doubles, keeps columns where
    // that is a whole number and rounds rows up. The quotient is exact when c ≡ 2 (mod 5) and
    // otherwise at least 0.2 away from a whole number, so these integer tests give the same
    // pixels without floating point.
    let mut starts: Vec<u32> = Vec::with_capacity(u.len() / 5 + 2);
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let column = if u[j] < u[j - 1] { u[j] } else { u[j] - 1 } - 2;
        if column.rem_euclid(5) != 0 {
            continue;
        }
        let x = column.div_euclid(5);
        if x < 0 || x > w - 1 {
            continue;
        }
        let row = v[j].min(v[j - 1]) - 2;
        let y = if row < 0 {
            0
        } else {
            (row + 4).div_euclid(5).min(h)
        };
        starts.push((x * h + y) as u32);
    }
    starts.push((h * w) as u32);
    starts.sort_unstable();
    // Differences between consecutive crossings are the runs; an empty run merges its
    // neighbours (two crossings at one pixel cancel).
    let mut prev = 0u32;
    for a in starts.iter_mut() {
        let t = *a;
        *a -= prev;
        prev = t;
    }
    let mut counts: Vec<u32> = Vec::with_capacity(starts.len());
    counts.push(starts[0]);
    let mut j = 1;
    while j < starts.len() {
        if starts[j] > 0 {
            counts.push(starts[j]);
            j += 1;
        } else {
            j += 1;
            if j < starts.len() {
                if let Some(last) = counts.last_mut() {
                    *last += starts[j];
                }
                j += 1;
            }
        }
    }
    Rle {
        height,
        width,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from_rows(rows: &[&str]) -> (Vec<u8>, u32, u32) {
        let h = rows.len();
        let w = rows[0].len();
        let mut m = vec![0u8; h * w];
        for (r, row) in rows.iter().enumerate() {
            for (c, ch) in row.bytes().enumerate() {
                m[c * h + r] = u8::from(ch == b'#');
            }
        }
        (m, h as u32, w as u32)
    }

    #[test]
    fn encode_starts_with_zero_run_and_round_trips() {
        let (m, h, w) = mask_from_rows(&["#..", "#.#", "..#"]);
        let rle = Rle::encode(&m, h, w);
        assert_eq!(rle.counts, vec![0, 2, 5, 2]);
        assert_eq!(rle.decode(), m);
        assert_eq!(rle.area(), 4);
        assert_eq!(rle.to_bbox(), [0.0, 0.0, 3.0, 3.0]);
        rle.validate().expect("counts cover the mask");
    }

    #[test]
    fn bbox_of_single_block_and_empty_mask() {
        let (m, h, w) = mask_from_rows(&["....", ".##.", ".##.", "...."]);
        let rle = Rle::encode(&m, h, w);
        assert_eq!(rle.to_bbox(), [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(Rle::empty(4, 4).to_bbox(), [0.0; 4]);
        assert_eq!(Rle::empty(4, 4).area(), 0);
    }

    #[test]
    fn compressed_codec_round_trips_large_and_negative_differences() {
        let rle = Rle {
            height: 100,
            width: 100,
            counts: vec![0, 5000, 3, 1, 4000, 996],
        };
        let s = rle.to_compressed();
        assert_eq!(Rle::from_compressed(&s, 100, 100), Ok(rle));
    }

    #[test]
    fn compressed_codec_rejects_bad_input() {
        assert!(matches!(
            Rle::from_compressed("0!", 1, 1),
            Err(MaskError::BadChar { at: 1, .. })
        ));
        // 'P' = 48 + 0x20: a continuation bit with nothing after it.
        assert_eq!(Rle::from_compressed("P", 1, 1), Err(MaskError::Truncated));
        assert_eq!(
            Rle::from_compressed("1PPPPPPPPPPPP0", 1, 1),
            Err(MaskError::Overlong { at: 1 })
        );
        let short = Rle {
            height: 2,
            width: 2,
            counts: vec![1, 1],
        };
        assert!(matches!(
            short.validate(),
            Err(MaskError::WrongLength {
                sum: 2,
                pixels: 4,
                ..
            })
        ));
    }

    #[test]
    fn union_merges_overlapping_masks_canonically() {
        let (a, h, w) = mask_from_rows(&["##..", "##..", "....", "...."]);
        let (b, _, _) = mask_from_rows(&[".##.", ".##.", "....", "...."]);
        let (ab, _, _) = mask_from_rows(&["###.", "###.", "....", "...."]);
        let u = Rle::union(&[Rle::encode(&a, h, w), Rle::encode(&b, h, w)]).expect("same size");
        assert_eq!(u, Rle::encode(&ab, h, w));
        assert_eq!(Rle::union(&[Rle::empty(2, 2), Rle::empty(3, 2)]), None);
    }

    #[test]
    fn iou_with_crowd_rule() {
        let (a, h, w) = mask_from_rows(&["##..", "##..", "....", "...."]);
        let (b, _, _) = mask_from_rows(&[".###", ".###", "....", "...."]);
        let (a, b) = (Rle::encode(&a, h, w), Rle::encode(&b, h, w));
        // |A ∩ B| = 2, |A ∪ B| = 8, |A| = 4.
        assert_eq!(a.iou(&b, false), 2.0 / 8.0);
        assert_eq!(a.iou(&b, true), 2.0 / 4.0);
        assert_eq!(a.iou(&Rle::empty(4, 4), false), 0.0);
    }

    #[test]
    fn box_iou_with_crowd_rule() {
        let d = [0.0, 0.0, 10.0, 10.0];
        let g = [5.0, 0.0, 10.0, 10.0];
        assert_eq!(box_iou(&d, &g, false), 50.0 / 150.0);
        assert_eq!(box_iou(&d, &g, true), 50.0 / 100.0);
        assert_eq!(box_iou(&d, &[10.0, 0.0, 5.0, 5.0], false), 0.0);
    }

    #[test]
    fn axis_aligned_square_polygon_covers_its_pixels() {
        // The square with corners (1,1) and (3,3) covers pixels 1..3 in both axes.
        let rle = Rle::from_polygon(&[1.0, 1.0, 3.0, 1.0, 3.0, 3.0, 1.0, 3.0], 5, 5);
        let (m, _, _) = mask_from_rows(&[".....", ".##..", ".##..", ".....", "....."]);
        assert_eq!(rle.decode(), m);
    }
}
