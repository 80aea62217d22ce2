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
    /// Everything (images, labels, boxes, masks of every image) travels in one buffer: one
    /// pinned copy on a GPU instead of one per tensor, then views of it on the device.
    pub fn from_batch(batch: &Batch, start: usize, len: usize, device: Device) -> StepInput {
        let plane = 3 * batch.height * batch.width;
        let mut packed = Packed::default();
        let images = packed.push(
            Kind::Float,
            vec![len as i64, 3, batch.height as i64, batch.width as i64],
            |out| extend_f32(out, &batch.images[start * plane..(start + len) * plane]),
        );
        let parts: Vec<_> = batch.targets[start..start + len]
            .iter()
            .map(|t| {
                let n = t.labels.len() as i64;
                let labels = packed.push(Kind::Int64, vec![n], |out| {
                    out.extend(t.labels.iter().flat_map(|v| v.to_ne_bytes()))
                });
                let boxes = packed.push(Kind::Float, vec![n, 4], |out| {
                    extend_f32(out, t.boxes.as_flattened())
                });
                let (h, w) = mask_size(t);
                let masks = packed.push(Kind::Uint8, vec![n, h as i64, w as i64], |out| {
                    extend_masks(out, t, h, w)
                });
                (n, labels, boxes, masks)
            })
            .collect();
        let device_bytes = upload(Tensor::from_slice(&packed.bytes), device);
        let images = Packed::view(&device_bytes, &images);
        let targets = parts
            .into_iter()
            .map(|(n, labels, boxes, masks)| ImageTargets {
                labels: Packed::view(&device_bytes, &labels),
                boxes: Packed::view(&device_bytes, &boxes),
                masks: Packed::view(&device_bytes, &masks).to_kind(Kind::Float),
                len: n,
            })
            .collect();
        StepInput { images, targets }
    }

    /// Objects over all images.
    pub fn num_objects(&self) -> i64 {
        self.targets.iter().map(|t| t.len).sum()
    }
}

/// Host tensors of several dtypes packed into one byte buffer (each section 8-byte aligned,
/// as reinterpreting bytes as int64 needs), so they cross to the device in one copy.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
}

/// Where one tensor lies in a [`Packed`] buffer.
struct Section {
    offset: i64,
    len: i64,
    kind: Kind,
    shape: Vec<i64>,
}

impl Packed {
    /// Appends a section of `kind` and `shape` whose bytes `write` appends.
    fn push(&mut self, kind: Kind, shape: Vec<i64>, write: impl FnOnce(&mut Vec<u8>)) -> Section {
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        let offset = self.bytes.len();
        write(&mut self.bytes);
        Section {
            offset: offset as i64,
            len: (self.bytes.len() - offset) as i64,
            kind,
            shape,
        }
    }

    /// The section's tensor as a view of the uploaded buffer.
    fn view(buffer: &Tensor, s: &Section) -> Tensor {
        let raw = buffer.narrow(0, s.offset, s.len);
        let typed = if s.kind == Kind::Uint8 {
            raw
        } else {
            raw.view_dtype(s.kind)
        };
        typed.view(s.shape.as_slice())
    }
}

fn extend_f32(out: &mut Vec<u8>, values: &[f32]) {
    out.extend(values.iter().flat_map(|v| v.to_ne_bytes()));
}

/// The size [H, W] of `t`'s instance masks: the first mask's (the image's size without any).
fn mask_size(t: &Target) -> (usize, usize) {
    t.masks
        .first()
        .map(|m| (m.height, m.width))
        .unwrap_or((t.size[0].max(1), t.size[1].max(1)))
}

/// The instance masks of `t` as 0/1 bytes [T, h, w] (a mask of another size is left empty).
fn extend_masks(out: &mut Vec<u8>, t: &Target, h: usize, w: usize) {
    for m in &t.masks {
        if (m.height, m.width) == (h, w) {
            out.extend(m.data.iter().map(|&v| u8::from(v != 0)));
        } else {
            out.extend(std::iter::repeat_n(0u8, h * w));
        }
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
