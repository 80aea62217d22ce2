//! Seeded random numbers: one ChaCha8 stream per image, so that images are generated (and
//! augmented, by the dataset loader) in parallel in any order and still come out identical for
//! a seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded random source with the few distributions the generator needs, written out here
/// (rather than taken from `rand`'s distributions) so that their output never changes with a
/// dependency upgrade.
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream of image `index` of the dataset seeded with `seed`.
    pub(crate) fn for_image(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        Rng(rng)
    }

    /// The stream of sample `index` of epoch `epoch` (the loader's augmentations).
    pub(crate) fn for_sample(seed: u64, epoch: u64, index: u64) -> Self {
        let mixed = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self::for_image(mixed, index)
    }

    /// A float uniform in `[0, 1)` (53 random bits).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A float uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// An integer uniform in `[lo, hi]` (inclusive; `lo` when `hi < lo`).
    pub(crate) fn int(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        let span = u64::from(hi - lo) + 1;
        lo + (self.0.next_u64() % span) as u32
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index drawn with the given (unnormalised) weights.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// A cheap per-pixel noise source (SplitMix64) seeded from an [`Rng`]: pixel grain needs
/// millions of draws, which ChaCha makes slow in unoptimised builds (the tests).
pub(crate) struct Noise(u64);

impl Rng {
    /// A noise source seeded from this stream.
    pub(crate) fn noise(&mut self) -> Noise {
        Noise(self.0.next_u64())
    }
}

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An approximately normal value (sum of four 16-bit uniforms of one draw), mean 0 and
    /// standard deviation 1.
    pub(crate) fn normal(&mut self) -> f64 {
        let x = self.next();
        let s: f64 = (0..4)
            .map(|k| ((x >> (16 * k)) & 0xFFFF) as f64 / 65536.0)
            .sum();
        (s - 2.0) * 3.0f64.sqrt()
    }
}
