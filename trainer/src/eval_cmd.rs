//! `flow-train eval`: evaluates a COCO results file against its annotations with flow-coco's
//! evaluator (equal to pycocotools) and prints the twelve numbers.

use std::path::PathBuf;
use std::process::ExitCode;

use flow_coco::eval::{Feed, IouType, Params, Summarize, evaluate_files};

/// Arguments of `flow-train eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// COCO annotation file with the ground truth.
    #[arg(long, value_name = "GT.json")]
    annotations: PathBuf,
    /// COCO results file: a list of {image_id, category_id, score, bbox and/or segmentation}.
    #[arg(long, value_name = "PRED.json")]
    predictions: PathBuf,
    /// Compare boxes or masks.
    #[arg(long, value_enum, default_value_t = IouTypeArg::Bbox)]
    iou_type: IouTypeArg,
    /// Max detections per image and category: the evaluation uses [1, 10, N] (RF-DETR: 500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_dets: u32,
    /// stock: pycocotools' summarize (AP at a hard-coded 100 detections, -1 when 100 is not
    /// among the max detections). rfdetr: RF-DETR's (AP at N).
    #[arg(long, value_enum, default_value_t = SummarizeArg::Stock)]
    summarize: SummarizeArg,
    /// How detections are fed. as-loaded: the file unchanged, as pycocotools' loadRes reads it
    /// (box areas decide size ranges when detections have boxes). rfdetr: as RF-DETR does, only
    /// boxes for bbox and only masks for segm. Default: as-loaded with --summarize stock,
    /// rfdetr with --summarize rfdetr.
    #[arg(long, value_enum)]
    feed: Option<FeedArg>,
    /// Print one JSON object instead of pycocotools' lines.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum IouTypeArg {
    Bbox,
    Segm,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SummarizeArg {
    Stock,
    Rfdetr,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FeedArg {
    AsLoaded,
    Rfdetr,
}

/// Runs `flow-train eval`.
pub fn run(args: EvalArgs) -> ExitCode {
    let iou_type = match args.iou_type {
        IouTypeArg::Bbox => IouType::Bbox,
        IouTypeArg::Segm => IouType::Segm,
    };
    let summarize = match args.summarize {
        SummarizeArg::Stock => Summarize::Stock,
        SummarizeArg::Rfdetr => Summarize::Rfdetr,
    };
    let feed = match (args.feed, summarize) {
        (Some(FeedArg::AsLoaded), _) | (None, Summarize::Stock) => Feed::AsLoaded,
        (Some(FeedArg::Rfdetr), _) | (None, Summarize::Rfdetr) => Feed::Rfdetr,
    };
    let params = Params::new(iou_type, args.max_dets as usize, summarize, feed);
    match evaluate_files(&args.annotations, &args.predictions, &params) {
        Ok(evaluation) if args.json => {
            println!("{}", evaluation.summary.to_json());
            ExitCode::SUCCESS
        }
        Ok(evaluation) => {
            println!("IoU metric: {}", iou_type.name());
            print!("{}", evaluation.summary);
            ExitCode::SUCCESS
        }
        Err(err) => {
            // The messages carry their causes (file, position, id).
            eprintln!("flow-train eval: error: {err}");
            ExitCode::FAILURE
        }
    }
}
