//! The training loop (`flow-train train`): reads the experiment config, builds the model, its
//! EMA twin, the optimizer and the loaders, then per epoch trains (gradient accumulation,
//! clipping, scheduled AdamW, EMA), evaluates the regular and EMA weights on `valid/`, writes
//! checkpoints and one `log.txt` line, and applies early stopping. `--resume` continues from
//! `checkpoint.safetensors` exactly (same weights, moments, schedule position, EMA and
//! policies; the data order and every random draw are functions of the seed and the step).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flow_coco::dataset::{
    Augment, CocoSplit, DatasetError, Loader, LoaderConfig, Split, TrainAugment, multi_scale_scales,
};
use flow_coco::format::AnnotationFile;
use tch::Device;
use tch::nn::VarStore;
use thiserror::Error;

use super::checkpoint::{CheckpointError, TrainState, VERSION};
use super::early_stop::{Decision, EarlyStopping};
use super::ema::{self, EmaDecay};
use super::evaluate::{EvalStepError, evaluate_model};
use super::graphed_step::StepGraphs;
use super::log_line::timedelta;
use super::loss::Criterion;
use super::meter::Meter;
use super::optimizer::AdamW;
use super::param_groups::param_group;
use super::policy::{self, BestTracker};
use super::schedule::Schedule;
use super::step::{StepConfig, train_step};
use super::tensorboard::EventWriter;
use super::threads;
use super::weights::load_weights;
use crate::config::{ConfigError, ExperimentConfig};
use crate::model::{ModelConfig, ModelError, ModelSize, RfDetrSeg};

/// What `flow-train train` was asked to do.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The experiment config.
    pub config: PathBuf,
    /// The run directory (log.txt, checkpoints).
    pub output_dir: PathBuf,
    /// Continue from `output_dir/checkpoint.safetensors` when it exists.
    pub resume: bool,
    /// Where to train.
    pub device: Device,
    /// Overrides `experiment.model_size`.
    pub model_size: Option<ModelSize>,
    /// Overrides `model.pretrain_weights`.
    pub weights: Option<PathBuf>,
    /// Caps the optimizer steps of every epoch (tests and smoke runs).
    pub max_steps: Option<usize>,
    /// Overrides the thread budget (SLURM_CPUS_PER_TASK or the machine's).
    pub threads: Option<usize>,
    /// Stops this invocation after this many epochs, as a job killed at its time limit would
    /// (tests of `--resume`); the schedule still spans all `training.epochs`.
    pub epochs_limit: Option<u32>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Replay each pass's model kernels as CUDA graphs (CUDA only; see `graphed_step`).
    pub cuda_graphs: bool,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Epochs trained by this invocation.
    pub epochs_run: u32,
    /// Epochs completed in the run directory overall.
    pub epochs_done: u32,
    /// Early stopping ended the run.
    pub stopped_early: bool,
    /// Mean training loss of each epoch of this invocation.
    pub train_losses: Vec<f64>,
    /// Best mask AP50:95 over both tracks.
    pub best_mask_ap: Option<f64>,
    /// Mean seconds per optimizer step of this invocation.
    pub seconds_per_step: f64,
}

/// Why training failed.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad dataset.
    #[error("dataset: {0}")]
    Dataset(#[from] DatasetError),
    /// Model construction or input.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// A libtorch kernel outside tch's wrappers (optimizer, clipping, EMA).
    #[error(transparent)]
    TorchExt(#[from] crate::torch_ext::TorchExtError),
    /// Checkpoint reading or writing.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Evaluation.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalStepError),
    /// Initial weights.
    #[error("initial weights {path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file of the run directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The validation annotation file (for COCO evaluation).
    #[error("{path}: {message}")]
    Annotations {
        /// The annotation file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// Resuming from a checkpoint of another model.
    #[error("cannot resume from {path}: {message}")]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The state of one run being trained (its methods are spread over `run*.rs`).
pub(crate) struct Run {
    pub(super) cfg: ExperimentConfig,
    pub(super) opts: TrainOptions,
    pub(super) model_cfg: ModelConfig,
    pub(super) vs: VarStore,
    pub(super) model: RfDetrSeg,
    pub(super) ema: Option<(VarStore, RfDetrSeg)>,
    pub(super) opt: AdamW,
    pub(super) schedule: Schedule,
    pub(super) criterion: Criterion,
    pub(super) train_loader: Loader,
    pub(super) valid_loader: Loader,
    pub(super) valid_gt: AnnotationFile,
    pub(super) state: TrainState,
    pub(super) n_parameters: i64,
    pub(super) tensorboard: Option<EventWriter>,
    /// The captured passes when `opts.cuda_graphs` on a GPU.
    pub(super) graphs: Option<StepGraphs>,
}

/// Trains as `opts` says; see the module docs.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let cfg = ExperimentConfig::load(&opts.config)?;
    let n_threads = opts.threads.unwrap_or_else(|| {
        threads::thread_budget(std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref())
    });
    threads::apply(n_threads);
    fs::create_dir_all(&opts.output_dir).map_err(io_err(&opts.output_dir))?;
    let mut run = Run::new(cfg, opts.clone())?;
    if opts.progress {
        let m = &run.model_cfg;
        eprintln!(
            "{} ({} classes, {} px, {} trainable parameters) on {:?}, {n_threads} thread(s), {} steps per epoch, {}",
            m.size,
            m.num_classes,
            m.resolution,
            run.n_parameters,
            opts.device,
            run.schedule.total_steps / u64::from(run.cfg.training.epochs.max(1)),
            if run.state.epochs_done > 0 {
                format!("resuming after epoch {}", run.state.epochs_done)
            } else {
                "starting fresh".to_owned()
            }
        );
        if run.cfg.training.amp && opts.device == Device::Cpu {
            eprintln!("note: training.amp applies on CUDA only; the CPU trains in fp32");
        }
    }
    run.train_epochs()
}

/// A seed for libtorch's generator from the run seed and a position, so that every random draw
/// (point sampling) depends only on where in the run it happens, not on what ran before.
pub(super) fn mix_seed(seed: u64, a: u64, b: u64) -> i64 {
    let mut x =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x & (i64::MAX as u64)) as i64
}

impl Run {
    pub(super) fn new(cfg: ExperimentConfig, opts: TrainOptions) -> Result<Run, TrainError> {
        let t = cfg.training.clone();
        let size = opts.model_size.unwrap_or(cfg.experiment.model_size);
        let dataset = cfg.data.dataset_dir.clone();
        let train_split = CocoSplit::open(&dataset, Split::Train)?;
        let valid_split = CocoSplit::open(&dataset, Split::Valid)?;
        let num_classes = cfg
            .data
            .num_classes
            .unwrap_or(train_split.num_classes() as i64)
            .max(1);
        let mut model_cfg = ModelConfig::preset(size, num_classes)?;
        if let Some(r) = cfg.model.resolution {
            model_cfg.resolution = r;
        }
        let block = model_cfg.block_size();
        if model_cfg.resolution % block != 0 {
            return Err(TrainError::Config(ConfigError::Invalid {
                path: opts.config.clone(),
                key: "model.resolution",
                message: format!(
                    "is {}: {} needs a multiple of {block} (patch × windows)",
                    model_cfg.resolution, size
                ),
            }));
        }
        tch::manual_seed(mix_seed(t.seed, 0, 0));
        let vs = VarStore::new(opts.device);
        let model = RfDetrSeg::new(&vs.root(), &model_cfg)?;
        let weights = opts.weights.clone().or(cfg.model.pretrain_weights.clone());
        if let Some(w) = &weights {
            load_weights(&vs, w)?;
        }
        let ema = if t.use_ema {
            let evs = VarStore::new(opts.device);
            let emodel = RfDetrSeg::new(&evs.root(), &model_cfg)?;
            ema::copy_into(&evs, &vs);
            Some((evs, emodel))
        } else {
            None
        };
        let vars: Vec<_> = vs
            .variables()
            .into_iter()
            .filter(|(_, v)| v.requires_grad())
            .map(|(name, v)| {
                let g = param_group(
                    &name,
                    t.lr,
                    t.lr_encoder,
                    t.weight_decay,
                    model_cfg.vit_layers,
                );
                (name, v, g)
            })
            .collect();
        let opt = AdamW::new(vars);
        let res = model_cfg.resolution as usize;
        let (patch, win) = (
            model_cfg.patch_size as usize,
            model_cfg.num_windows as usize,
        );
        let mut loader_cfg =
            LoaderConfig::train((t.batch_size * t.grad_accum_steps) as usize, t.seed);
        if t.multi_scale {
            // Scales whose feature grid still holds every query (two-stage top-k needs them).
            let q = model_cfg.num_queries as usize;
            loader_cfg.multi_scale = multi_scale_scales(res, patch, win, true)
                .into_iter()
                .filter(|s| (s / patch) * (s / patch) >= q)
                .collect();
        }
        let train_loader = Loader::new(
            train_split,
            Augment::Train(TrainAugment::rfdetr(res, patch, win, t.multi_scale)),
            loader_cfg,
        );
        let valid_gt =
            AnnotationFile::read(&valid_split.annotations_file).map_err(|e| TrainError::Io {
                path: valid_split.annotations_file.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let valid_loader = Loader::new(
            valid_split,
            Augment::Eval { resolution: res },
            LoaderConfig::eval(t.batch_size as usize),
        );
        let mut steps_per_epoch = train_loader.batches_per_epoch() as u64;
        if let Some(m) = opts.max_steps {
            steps_per_epoch = steps_per_epoch.min(m as u64);
        }
        let schedule = Schedule {
            kind: t.lr_scheduler,
            warmup_steps: t.warmup_epochs as u64 * steps_per_epoch,
            total_steps: t.epochs as u64 * steps_per_epoch,
            drop_step: t.lr_drop_epoch() as u64 * steps_per_epoch,
            min_factor: t.lr_min_factor,
        };
        let n_parameters = crate::model::params::trainable_count(&vs);
        let state = TrainState {
            version: VERSION,
            epochs_done: 0,
            optimizer_step: 0,
            ema_updates: 0,
            best: BestTracker::default(),
            early_stopping: EarlyStopping::new(
                t.early_stopping_patience,
                t.early_stopping_min_delta,
                false,
            ),
            stopped: false,
            model: format!("{size}/{num_classes}"),
        };
        let mut run = Run {
            cfg,
            opts,
            model_cfg,
            vs,
            model,
            ema,
            opt,
            schedule,
            criterion: Criterion::default(),
            train_loader,
            valid_loader,
            valid_gt,
            state,
            n_parameters,
            tensorboard: None,
            graphs: None,
        };
        if run.opts.cuda_graphs && run.opts.device != Device::Cpu {
            run.graphs = Some(StepGraphs::new(run.vs.trainable_variables()));
        }
        let last = run.path(policy::LAST);
        if run.opts.resume && last.exists() {
            run.restore(&last)?;
        }
        run.prepare_log()?;
        if run.cfg.logging.tensorboard {
            let dir = &run.opts.output_dir;
            run.tensorboard = Some(EventWriter::create(dir).map_err(io_err(dir))?);
        }
        Ok(run)
    }

    /// bf16 autocast of the training forward: `training.amp` on a CUDA device.
    pub(super) fn autocast(&self) -> Option<tch::Kind> {
        (self.cfg.training.amp && self.opts.device != Device::Cpu).then_some(tch::Kind::BFloat16)
    }

    pub(super) fn path(&self, stem: &str) -> PathBuf {
        self.opts.output_dir.join(format!("{stem}.safetensors"))
    }

    fn train_epochs(&mut self) -> Result<TrainSummary, TrainError> {
        let epochs = self.cfg.training.epochs;
        let mut summary = TrainSummary {
            epochs_run: 0,
            epochs_done: self.state.epochs_done,
            stopped_early: self.state.stopped,
            train_losses: Vec::new(),
            best_mask_ap: self.state.best.total,
            seconds_per_step: 0.0,
        };
        let (mut step_time, mut steps) = (0.0f64, 0u64);
        let limit = self.opts.epochs_limit.unwrap_or(u32::MAX);
        while self.state.epochs_done < epochs && !self.state.stopped && summary.epochs_run < limit {
            let epoch = self.state.epochs_done;
            let started = Instant::now();
            let (mut meter, secs, n) = self.train_one_epoch(epoch)?;
            step_time += secs;
            steps += n;
            let train_time = started.elapsed().as_secs_f64();
            tch::manual_seed(mix_seed(self.cfg.training.seed, u64::MAX, epoch as u64));
            let regular = evaluate_model(
                &self.model,
                &self.valid_loader,
                &self.valid_gt,
                &self.criterion,
                self.opts.device,
            )?;
            let ema_res = match &self.ema {
                Some((_, m)) => Some(evaluate_model(
                    m,
                    &self.valid_loader,
                    &self.valid_gt,
                    &self.criterion,
                    self.opts.device,
                )?),
                None => None,
            };
            let reg_ap = regular.masks[0];
            let ema_ap = ema_res.as_ref().map(|e| e.masks[0]);
            let best = self.state.best.observe(epoch, reg_ap, ema_ap);
            if self.cfg.training.early_stopping
                && self.state.early_stopping.observe(reg_ap, ema_ap) == Decision::Stop
            {
                self.state.stopped = true;
            }
            self.state.epochs_done = epoch + 1;
            self.save_checkpoints(epoch, best)?;
            let line = self.log_line(
                epoch,
                &mut meter,
                &regular,
                ema_res.as_ref(),
                train_time,
                started.elapsed().as_secs_f64(),
            );
            self.append_log(&line)?;
            self.write_scalars(epoch, &mut meter, &regular, ema_res.as_ref())?;
            let loss = meter.mean("loss").unwrap_or(f64::NAN);
            if self.opts.progress {
                eprintln!(
                    "epoch {}/{epochs}: train loss {loss:.4}, valid mask AP {:.4}{}, {}",
                    epoch + 1,
                    reg_ap,
                    ema_ap.map(|a| format!(" (EMA {a:.4})")).unwrap_or_default(),
                    timedelta(started.elapsed().as_secs_f64())
                );
                if self.state.stopped {
                    eprintln!(
                        "early stopping: no mask AP gain above {} for {} epochs",
                        self.cfg.training.early_stopping_min_delta,
                        self.cfg.training.early_stopping_patience
                    );
                }
            }
            summary.train_losses.push(loss);
            summary.epochs_run += 1;
        }
        summary.epochs_done = self.state.epochs_done;
        summary.stopped_early = self.state.stopped;
        summary.best_mask_ap = self.state.best.total;
        summary.seconds_per_step = if steps > 0 {
            step_time / steps as f64
        } else {
            0.0
        };
        let finished = self.state.epochs_done >= epochs || self.state.stopped;
        let test = if finished && summary.epochs_run > 0 {
            self.evaluate_test()?
        } else {
            None
        };
        if let Some(t) = &test
            && self.opts.progress
        {
            eprintln!(
                "test split (best weights): mask AP {:.4}, box AP {:.4}",
                t.masks[0], t.bbox[0]
            );
        }
        self.write_results(test.as_ref())?;
        Ok(summary)
    }

    /// One epoch of optimizer steps; returns the epoch means, the seconds spent in steps and
    /// the number of steps.
    fn train_one_epoch(&mut self, epoch: u32) -> Result<(Meter, f64, u64), TrainError> {
        let t = self.cfg.training.clone();
        let per_epoch = self.schedule.total_steps / t.epochs.max(1) as u64;
        let mut meter = Meter::default();
        let (mut secs, mut steps) = (0.0, 0u64);
        let started = Instant::now();
        let base_lr = t.lr;
        // Progress reads the running loss back from the device: at most every 2 s (and at the
        // epoch's last step), not every step.
        let mut last_report: Option<Instant> = None;
        for (i, batch) in self.train_loader.epoch(epoch as u64).enumerate() {
            if i as u64 >= per_epoch {
                break;
            }
            let batch = batch?;
            let step_start = Instant::now();
            let factor = self.optimizer_step(&batch, &mut meter)?;
            secs += step_start.elapsed().as_secs_f64();
            steps += 1;
            let due = last_report.is_none_or(|at| at.elapsed().as_secs_f64() >= 2.0)
                || i as u64 + 1 == per_epoch;
            if self.opts.progress && due {
                last_report = Some(Instant::now());
                let done = i as u64 + 1;
                let eta = started.elapsed().as_secs_f64() / done as f64
                    * (per_epoch.saturating_sub(done)) as f64;
                let images = done * u64::from(t.batch_size * t.grad_accum_steps);
                eprintln!(
                    "epoch {}/{} iter {done}/{per_epoch} loss {:.4} lr {:.3e} {:.1} img/s eta {}",
                    epoch + 1,
                    t.epochs,
                    meter.mean("loss").unwrap_or(f64::NAN),
                    base_lr * factor,
                    images as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    timedelta(eta)
                );
            }
        }
        Ok((meter, secs, steps))
    }

    /// One optimizer step on `batch` (its passes, clipping, the scheduled update, the EMA),
    /// adding its losses to `meter`; returns the schedule's factor of the step.
    pub(super) fn optimizer_step(
        &mut self,
        batch: &flow_coco::dataset::Batch,
        meter: &mut Meter,
    ) -> Result<f64, TrainError> {
        let t = &self.cfg.training;
        let device = self.opts.device;
        super::profile::mark(device, "other");
        self.opt.zero_grad()?;
        let step = self.state.optimizer_step;
        let step_cfg = StepConfig {
            batch_size: t.batch_size as usize,
            grad_accum_steps: t.grad_accum_steps as usize,
            groups: self.model_cfg.group_detr,
            device: self.opts.device,
            autocast: self.autocast(),
        };
        let seed = t.seed;
        train_step(
            &self.model,
            &self.criterion,
            batch,
            step_cfg,
            |k: usize| mix_seed(seed, step + 1, k as u64),
            meter,
            self.graphs.as_mut(),
        )?;
        if t.clip_max_norm > 0.0 {
            let _norm = self.opt.clip_grad_norm(t.clip_max_norm)?;
        }
        super::profile::mark(device, "clip");
        let factor = self.schedule.factor(step);
        self.opt.step(factor)?;
        super::profile::mark(device, "adamw");
        meter.add("lr", t.lr * factor);
        self.state.optimizer_step += 1;
        if let Some((evs, _)) = &self.ema {
            self.state.ema_updates += 1;
            ema::update(
                evs,
                &self.vs,
                EmaDecay::default().at(self.state.ema_updates),
            )?;
        }
        super::profile::mark(device, "ema");
        Ok(factor)
    }
}
