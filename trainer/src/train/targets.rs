//! A loader batch as tensors: the images of one forward pass and each image's targets (raw
//! category ids, cxcywh-normalised boxes, instance masks at the sample's own size).

use flow_coco::dataset::{Batch, Target};
use tch::{Device, Kind, Tensor};

/// The targets of one image.
#[derive(Debug)]
pub struct ImageTargets {
    /// Category ids (the logit index): [T] int64.
    pub labels: Tensor,
    /// (cx, cy, w, h) in [0, 1]: [T, 4].
    pub boxes: Tensor,
    /// Instance masks, 0/1: [T, H, W] float (H, W the sample's size before any per-batch
    /// resize; only sampled at normalised points, so the size need not match the images).
    pub masks: Tensor,
    /// Number of objects T.
    pub len: i64,
}

/// Images and targets of one forward pass.
#[derive(Debug)]
pub struct StepInput {
    /// Normalised images [B, 3, H, W].
    pub images: Tensor,
    /// One per image.
    pub targets: Vec<ImageTargets>,
}

impl StepInput {
    /// Images `start..start + len` of `batch` (one micro-batch of gradient accumulation).
    pub fn from_batch(batch: &Batch, start: usize, len: usize, device: Device) -> StepInput {
        let plane = 3 * batch.height * batch.width;
        let data = &batch.images[start * plane..(start + len) * plane];
        let images = upload(
            Tensor::from_slice(data).view([len as i64, 3, batch.height as i64, batch.width as i64]),
            device,
        );
        let targets = batch.targets[start..start + len]
            .iter()
            .map(|t| image_targets(t, device))
            .collect();
        StepInput { images, targets }
    }

    /// Objects over all images.
    pub fn num_objects(&self) -> i64 {
        self.targets.iter().map(|t| t.len).sum()
    }
}

fn image_targets(t: &Target, device: Device) -> ImageTargets {
    let n = t.labels.len() as i64;
    let boxes: Vec<f32> = t.boxes.iter().flatten().copied().collect();
    let (h, w) = t
        .masks
        .first()
        .map(|m| (m.height, m.width))
        .unwrap_or((t.size[0].max(1), t.size[1].max(1)));
    let mut masks = Vec::with_capacity(t.masks.len() * h * w);
    for m in &t.masks {
        if (m.height, m.width) == (h, w) {
            masks.extend(m.data.iter().map(|&v| if v != 0 { 1u8 } else { 0 }));
        } else {
            masks.extend(std::iter::repeat_n(0u8, h * w));
        }
    }
    ImageTargets {
        labels: upload(Tensor::from_slice(&t.labels), device),
        boxes: upload(Tensor::from_slice(&boxes).view([n, 4]), device),
        masks: upload(
            Tensor::from_slice(&masks).view([n, h as i64, w as i64]),
            device,
        )
        .to_kind(Kind::Float),
        len: n,
    }
}

/// `data` as an int64 tensor on `device`. On a GPU the copy goes through pinned memory without
/// blocking the host, so queued kernels keep running.
pub fn upload_i64(data: &[i64], device: Device) -> Tensor {
    let host = Tensor::from_slice(data);
    upload(host, device)
}

/// A host tensor on `device`: pinned and non-blocking on a GPU, as is on the CPU.
pub fn upload(host: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cpu => host,
        _ => {
            let kind = host.kind();
            match crate::torch_ext::pin_memory(&host) {
                Ok(pinned) => pinned.to_device_(device, kind, true, false),
                // Without pinned memory (none left, say) the copy simply blocks.
                Err(_) => host.to_device(device),
            }
        }
    }
}
