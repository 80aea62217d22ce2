//! The parallel, prefetching loader: each batch's images are decoded and augmented on rayon's
//! pool while the previous batch trains, every sample from its own seeded random stream, so an
//! epoch is the same whatever the number of threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::augment::Augment;
use super::batch::Batch;
use super::error::DatasetError;
use super::sample::Sample;
use super::split::CocoSplit;
use crate::synth::rng::Rng;

/// How batches are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (the reference's loader batch: batch_size × grad_accum_steps).
    pub batch_size: usize,
    /// The seed of the order and of every augmentation.
    pub seed: u64,
    /// Shuffle each epoch (training) or keep file order (evaluation).
    pub shuffle: bool,
    /// Drop the last incomplete batch (training) or keep it (evaluation).
    pub drop_last: bool,
    /// With `shuffle`, a split smaller than this many batches is sampled with replacement up
    /// to that many (the reference uses 5); 0 turns it off.
    pub min_batches: usize,
    /// Per-batch square sizes to draw from (multi-scale); empty: no per-batch resize.
    pub multi_scale: Vec<usize>,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

impl LoaderConfig {
    /// The reference's training loader: shuffled, last batch dropped, small sets resampled.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            seed,
            shuffle: true,
            drop_last: true,
            min_batches: 5,
            multi_scale: Vec::new(),
            prefetch: 2,
        }
    }

    /// The evaluation loader: file order, every image once.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            seed: 0,
            shuffle: false,
            drop_last: false,
            min_batches: 0,
            multi_scale: Vec::new(),
            prefetch: 2,
        }
    }
}

/// A split with its augmentation and batching: hands out an epoch's batches.
#[derive(Clone)]
pub struct Loader {
    split: Arc<CocoSplit>,
    augment: Arc<Augment>,
    config: LoaderConfig,
}

impl Loader {
    /// A loader over `split`.
    pub fn new(split: CocoSplit, augment: Augment, config: LoaderConfig) -> Self {
        Loader {
            split: Arc::new(split),
            augment: Arc::new(augment),
            config,
        }
    }

    /// The split it reads.
    pub fn split(&self) -> &CocoSplit {
        &self.split
    }

    /// The image indices of `epoch`, in order: file order, a seeded shuffle, or (small
    /// training sets) a seeded draw with replacement.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.split.len();
        let c = &self.config;
        let mut rng = Rng::for_sample(c.seed, epoch, u64::MAX);
        let bs = c.batch_size.max(1);
        let mut order: Vec<usize> = if c.shuffle && c.min_batches > 0 && n < bs * c.min_batches {
            if n == 0 {
                Vec::new()
            } else {
                (0..bs * c.min_batches)
                    .map(|_| rng.int(0, n as u32 - 1) as usize)
                    .collect()
            }
        } else {
            (0..n).collect()
        };
        if c.shuffle {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.int(0, i as u32) as usize);
            }
        }
        if c.drop_last {
            order.truncate(order.len() / bs * bs);
        }
        order
    }

    /// Batches in `epoch`.
    pub fn batches_per_epoch(&self) -> usize {
        self.order(0).len().div_ceil(self.config.batch_size.max(1))
    }

    /// Sample number `position` of `epoch`'s order: image `index` decoded, augmented with the
    /// stream of `(epoch, position)` and normalised.
    pub fn sample(
        &self,
        epoch: u64,
        position: usize,
        index: usize,
    ) -> Result<Sample, DatasetError> {
        let raw = self.split.load(index)?;
        let mut rng = Rng::for_sample(self.config.seed, epoch, position as u64);
        Ok(Sample::from_raw(self.augment.apply(raw, &mut rng)))
    }

    /// The batches of `epoch`, prepared on a background thread (and rayon's pool) `prefetch`
    /// batches ahead. With multi-scale, batch `i` is resized to a scale drawn from the
    /// global step `epoch * batches_per_epoch + i`.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let order = self.order(epoch);
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let loader = self.clone();
        let per_epoch = order.len().div_ceil(self.config.batch_size.max(1)) as u64;
        let worker = std::thread::spawn(move || {
            let bs = loader.config.batch_size.max(1);
            for (i, chunk) in order.chunks(bs).enumerate() {
                let start = i * bs;
                let samples: Result<Vec<Sample>, DatasetError> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(k, index)| loader.sample(epoch, start + k, *index))
                    .collect();
                let batch = samples.map(|s| {
                    let mut batch = Batch::collate(s);
                    let scales = &loader.config.multi_scale;
                    if !scales.is_empty() {
                        let step = epoch * per_epoch + i as u64;
                        let mut rng = Rng::for_sample(loader.config.seed ^ 0x5CA1E, step, 0);
                        batch.resize(scales[rng.int(0, scales.len() as u32 - 1) as usize]);
                    }
                    batch
                });
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        Batches {
            rx,
            worker: Some(worker),
        }
    }
}

/// The batches of one epoch, in order; the first error ends the epoch.
pub struct Batches {
    rx: Receiver<Result<Batch, DatasetError>>,
    worker: Option<JoinHandle<()>>,
}

impl Iterator for Batches {
    type Item = Result<Batch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.rx.recv().ok();
        if next.is_none()
            && let Some(worker) = self.worker.take()
        {
            let _ = worker.join();
        }
        next
    }
}
