//! A binary mask as a row-major bitmap: the form the augmentations crop, flip and resize, and
//! that the trainer turns into a tensor without reshuffling.

use crate::mask::Rle;

/// One instance mask: `height * width` bytes, row-major, 1 inside and 0 outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Row-major pixels, 0 or 1.
    pub data: Vec<u8>,
}

impl Bitmap {
    /// An all-zero mask (an annotation without segmentation, as the reference keeps it).
    pub fn empty(height: usize, width: usize) -> Bitmap {
        Bitmap {
            height,
            width,
            data: vec![0; height * width],
        }
    }

    /// The bitmap of a COCO run-length mask (column-major) of the same size.
    pub fn from_rle(rle: &Rle) -> Bitmap {
        let (height, width) = (rle.height as usize, rle.width as usize);
        let column_major = rle.decode();
        let mut data = vec![0u8; height * width];
        for x in 0..width {
            for y in 0..height {
                data[y * width + x] = column_major[x * height + y];
            }
        }
        Bitmap {
            height,
            width,
            data,
        }
    }

    /// The tight box `[x0, y0, x1, y1]` (pixel edges, so `x1 - x0` is the width in pixels)
    /// around the foreground; `None` when the mask is empty.
    pub fn bbox(&self) -> Option<[usize; 4]> {
        let mut b: Option<[usize; 4]> = None;
        for y in 0..self.height {
            let row = &self.data[y * self.width..(y + 1) * self.width];
            let Some(first) = row.iter().position(|v| *v != 0) else {
                continue;
            };
            let last = row.iter().rposition(|v| *v != 0).unwrap_or(first);
            b = Some(match b {
                None => [first, y, last + 1, y + 1],
                Some([x0, y0, x1, _]) => [x0.min(first), y0, x1.max(last + 1), y + 1],
            });
        }
        b
    }

    /// Foreground pixels.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|v| **v != 0).count()
    }

    /// Mirrored left to right.
    pub(crate) fn hflip(&self) -> Bitmap {
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.chunks(self.width.max(1)) {
            data.extend(row.iter().rev());
        }
        Bitmap { data, ..*self }
    }

    /// The `height` x `width` window whose top-left pixel is `(left, top)` (inside the mask).
    pub(crate) fn crop(&self, top: usize, left: usize, height: usize, width: usize) -> Bitmap {
        let mut data = Vec::with_capacity(height * width);
        for y in top..top + height {
            let start = y * self.width + left;
            data.extend_from_slice(&self.data[start..start + width]);
        }
        Bitmap {
            height,
            width,
            data,
        }
    }

    /// Resized with nearest-neighbour sampling as torch's `interpolate(mode="nearest")`: output
    /// pixel `i` takes input pixel `floor(i * in / out)`.
    pub(crate) fn resize_nearest(&self, height: usize, width: usize) -> Bitmap {
        let xs: Vec<usize> = (0..width).map(|x| nearest(x, self.width, width)).collect();
        let mut data = Vec::with_capacity(height * width);
        for y in 0..height {
            let row = nearest(y, self.height, height) * self.width;
            data.extend(xs.iter().map(|x| self.data[row + x]));
        }
        Bitmap {
            height,
            width,
            data,
        }
    }
}

/// The source index of output index `i` when `input` samples are resized to `output`.
pub(crate) fn nearest(i: usize, input: usize, output: usize) -> usize {
    ((i as f64 * input as f64 / output as f64).floor() as usize).min(input.saturating_sub(1))
}
