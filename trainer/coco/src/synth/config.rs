//! What the synthetic dataset looks like: size, count, splits and objects per image.

use super::error::SynthError;

/// How the images are encoded on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG at quality 92, as Roboflow exports (small files; edges slightly soft).
    Jpeg,
    /// Lossless PNG: pixels exactly as painted (larger files).
    Png,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
        }
    }
}

/// The parameters of one synthetic dataset; the same values give byte-identical files.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Images over all three splits.
    pub images: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Width and height of the square images, in pixels.
    pub size: u32,
    /// Share of the images in `valid/`.
    pub valid_fraction: f64,
    /// Share of the images in `test/`.
    pub test_fraction: f64,
    /// Fewest shapes in a non-empty image.
    pub min_objects: u32,
    /// Most shapes in an image (fewer when a shape finds no place).
    pub max_objects: u32,
    /// Share of images with no shape at all (real datasets have some).
    pub empty_fraction: f64,
    /// The image encoding.
    pub format: ImageFormat,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            images: 1000,
            seed: 0,
            size: 160,
            valid_fraction: 0.2,
            test_fraction: 0.1,
            min_objects: 1,
            max_objects: 6,
            empty_fraction: 0.03,
            format: ImageFormat::Jpeg,
        }
    }
}

impl SynthConfig {
    /// Checks the values before anything is written.
    pub fn validate(&self) -> Result<(), SynthError> {
        let invalid = |message: String| Err(SynthError::InvalidConfig { message });
        if self.images < 3 {
            return invalid(format!(
                "--images is {}, but train/, valid/ and test/ need at least one image each: pass 3 or more",
                self.images
            ));
        }
        if !(32..=4096).contains(&self.size) {
            return invalid(format!(
                "--size is {}: pass a size from 32 to 4096 pixels",
                self.size
            ));
        }
        for (name, value) in [
            ("--valid-fraction", self.valid_fraction),
            ("--test-fraction", self.test_fraction),
            ("--empty-fraction", self.empty_fraction),
        ] {
            if !(0.0..1.0).contains(&value) {
                return invalid(format!("{name} is {value}: pass a value in [0, 1)"));
            }
        }
        if self.valid_fraction + self.test_fraction >= 1.0 {
            return invalid(format!(
                "--valid-fraction {} and --test-fraction {} leave no training images: keep their sum below 1",
                self.valid_fraction, self.test_fraction
            ));
        }
        if self.min_objects > self.max_objects || self.max_objects == 0 || self.max_objects > 100 {
            return invalid(format!(
                "objects per image {}..{}: pass 1 <= --min-objects <= --max-objects <= 100",
                self.min_objects, self.max_objects
            ));
        }
        Ok(())
    }

    /// Images in train/, valid/ and test/: each at least one, train gets the rest.
    pub fn split_sizes(&self) -> [usize; 3] {
        let n = self.images;
        let valid = ((n as f64 * self.valid_fraction).round() as usize).max(1);
        let test = ((n as f64 * self.test_fraction).round() as usize).max(1);
        let train = n.saturating_sub(valid + test).max(1);
        let valid = valid.min(n - train - 1);
        [train, valid, n - train - valid]
    }
}
