//! One training step's gradient computation (burn's `TrainStep`, kept out of the loop): the
//! loader batch of `batch_size × grad_accum_steps` images runs as `grad_accum_steps`
//! forward/backward passes of `batch_size`, each loss divided by the number of passes (as the
//! reference does), gradients accumulating in the variables. The forward runs under bf16
//! autocast when asked (`training.amp` on CUDA); the criterion runs outside it, in fp32. The
//! loop owns clipping, the optimizer, the schedule and the EMA.

use flow_coco::dataset::Batch;
use tch::{Device, Kind};

use super::evaluate::record_losses;
use super::graphed_step::StepGraphs;
use super::loss::Criterion;
use super::meter::Meter;
use super::profile;
use super::targets::StepInput;
use crate::model::{Mode, ModelError, RfDetrSeg};

/// How a step splits and seeds its passes.
#[derive(Debug, Clone, Copy)]
pub struct StepConfig {
    /// Images per pass.
    pub batch_size: usize,
    /// Divisor of every pass's loss (`grad_accum_steps`).
    pub grad_accum_steps: usize,
    /// Query groups of the training forward.
    pub groups: i64,
    /// Where the tensors go.
    pub device: Device,
    /// Autocast dtype of the forward (bf16), or full precision.
    pub autocast: Option<Kind>,
}

/// Runs the passes of `batch`, adding their losses to `meter`. `seed_of(k)` gives libtorch's
/// seed for pass k, so that random point sampling depends only on the position in the run.
/// With `graphs`, passes of the captured shape replay CUDA graphs instead of launching the
/// model's kernels one by one (same numbers; see `graphed_step`).
pub fn train_step(
    model: &RfDetrSeg,
    criterion: &Criterion,
    batch: &Batch,
    cfg: StepConfig,
    seed_of: impl Fn(usize) -> i64,
    meter: &mut Meter,
    mut graphs: Option<&mut StepGraphs>,
) -> Result<(), ModelError> {
    let bs = cfg.batch_size.max(1);
    for k in 0..batch.len().div_ceil(bs) {
        tch::manual_seed(seed_of(k));
        let start = k * bs;
        let len = bs.min(batch.len() - start);
        let input = StepInput::from_batch(batch, start, len, cfg.device);
        profile::mark(cfg.device, "upload");
        if let Some(losses) = graphs
            .as_deref_mut()
            .and_then(|g| g.pass(model, criterion, &input, &cfg))
        {
            record_losses(meter, &losses);
            profile::mark(cfg.device, "logging");
            continue;
        }
        let out = crate::torch_ext::with_autocast(cfg.device, cfg.autocast, || {
            model.forward(&input.images, Mode::Train)
        })??;
        profile::mark(cfg.device, "forward");
        let losses = criterion.forward(&out, &input.targets, cfg.groups);
        profile::mark(cfg.device, "criterion");
        (&losses.total / cfg.grad_accum_steps.max(1) as f64).backward();
        profile::mark(cfg.device, "backward");
        record_losses(meter, &losses);
        profile::mark(cfg.device, "logging");
    }
    Ok(())
}
