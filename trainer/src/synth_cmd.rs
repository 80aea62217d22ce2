//! `flow-train synth`: writes the synthetic COCO dataset (flow_coco::synth) and prints what it
//! wrote.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use flow_coco::synth::{ImageFormat, SynthConfig, write_dataset};

/// Arguments of `flow-train synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Dataset directory to create (train/, valid/, test/ with _annotations.coco.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Images over the three splits (at least 3).
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Seed: the same seed writes byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = 160)]
    pub size: u32,
    /// Share of the images in valid/.
    #[arg(long, default_value_t = 0.2)]
    pub valid_fraction: f64,
    /// Share of the images in test/.
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
    /// Fewest shapes in a non-empty image.
    #[arg(long, default_value_t = 1)]
    pub min_objects: u32,
    /// Most shapes in an image.
    #[arg(long, default_value_t = 6)]
    pub max_objects: u32,
    /// Share of images without any shape.
    #[arg(long, default_value_t = 0.03)]
    pub empty_fraction: f64,
    /// Image encoding.
    #[arg(long, value_enum, default_value_t = Format::Jpg)]
    pub format: Format,
    /// Replace a non-empty --out directory.
    #[arg(long)]
    pub force: bool,
}

/// Image encodings offered on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// JPEG (as Roboflow exports).
    Jpg,
    /// Lossless PNG.
    Png,
}

/// Runs `flow-train synth`.
pub fn run(args: SynthArgs) -> ExitCode {
    let config = SynthConfig {
        images: args.images,
        seed: args.seed,
        size: args.size,
        valid_fraction: args.valid_fraction,
        test_fraction: args.test_fraction,
        min_objects: args.min_objects,
        max_objects: args.max_objects,
        empty_fraction: args.empty_fraction,
        format: match args.format {
            Format::Jpg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
        },
    };
    let start = Instant::now();
    let summary = match write_dataset(&config, &args.out, args.force) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "wrote {} images ({}x{} px, seed {}) to {} in {seconds:.1}s",
        config.images,
        config.size,
        config.size,
        config.seed,
        summary.out.display()
    );
    for split in &summary.splits {
        println!(
            "  {:<6} {:>6} images {:>7} annotations",
            split.name, split.images, split.annotations
        );
    }
    let classes: Vec<String> = summary
        .per_class
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("  classes: {}", classes.join(", "));
    let [small, medium, large] = summary.per_area;
    println!(
        "  areas: small {small}, medium {medium}, large {large}; split by occlusion {}; empty images {}",
        summary.multi_part, summary.empty_images
    );
    ExitCode::SUCCESS
}
