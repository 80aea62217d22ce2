//! Safe wrappers over `cpp/torch_ext.cpp`: the libtorch functions tch 0.24 does not wrap.
//!
//! - bf16 autocast through libtorch's own autocast state (tch's `autocast` is fp16-only,
//!   CUDA-only and deprecated in torch 2.11);
//! - cuDNN on/off and benchmark mode (the team's cluster runs with cuDNN disabled);
//! - the CUDA caching allocator's peak statistics (what `torch.cuda.max_memory_allocated`
//!   reports, so benchmarks compare with the reference's numbers);
//! - multi-tensor kernels (fused AdamW, `_foreach_norm`/`_foreach_mul_` clipping without a
//!   read-back, `_foreach_lerp_` for the EMA): a few launches per step instead of ten per
//!   parameter.

use std::ffi::{CStr, c_char};

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

/// A libtorch call failed (its C++ exception message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("libtorch: {0}")]
pub struct TorchExtError(pub String);

unsafe extern "C" {
    fn flow_autocast_enter(
        cuda: i32,
        dtype: i8,
        was_enabled: *mut bool,
        was_dtype: *mut i8,
    ) -> *mut c_char;
    fn flow_autocast_exit(cuda: i32, was_enabled: bool, was_dtype: i8) -> *mut c_char;
    fn flow_cudnn_configure(enabled: bool, benchmark: bool) -> *mut c_char;
    fn flow_cuda_memory(
        device: i32,
        peak_allocated: *mut i64,
        peak_reserved: *mut i64,
        allocated: *mut i64,
    ) -> *mut c_char;
    fn flow_cuda_reset_peak(device: i32) -> *mut c_char;
    fn flow_clear_grads(vars: *const *const C_tensor, n: i32) -> *mut c_char;
    fn flow_clip_grad_norm(
        grads: *const *const C_tensor,
        n: i32,
        max_norm: f64,
        total: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn flow_foreach_lerp(
        dst: *const *const C_tensor,
        src: *const *const C_tensor,
        n: i32,
        weight: f64,
    ) -> *mut c_char;
    fn flow_pin_memory(t: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    fn flow_autograd_grad(
        outputs: *const *const C_tensor,
        grad_outputs: *const *const C_tensor,
        n: i32,
        inputs: *const *const C_tensor,
        m: i32,
        results: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn flow_set_grads(
        vars: *const *const C_tensor,
        grads: *const *const C_tensor,
        n: i32,
        accumulate: i32,
    ) -> *mut c_char;
    fn flow_profiler_start(cuda: bool) -> *mut c_char;
    fn flow_profiler_stop(
        summary_path: *const c_char,
        title: *const c_char,
        steps: i32,
    ) -> *mut c_char;
    fn flow_fused_adamw(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        step: *const C_tensor,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
}

/// The panic's message as an error: tch panics when a libtorch call fails (an out-of-memory
/// inside an op it does not wrap fallibly, an operation a CUDA-graph capture forbids), and
/// callers that must go on (a benchmark row, a capture that has to be ended) want an error.
pub fn unpanicked<T, E: From<TorchExtError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let text = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned());
        Err(E::from(TorchExtError(text)))
    })
}

/// The bare message, for callers whose errors are strings.
impl From<TorchExtError> for String {
    fn from(e: TorchExtError) -> String {
        e.0
    }
}

/// Turns the shim's returned message (NULL on success) into a result, freeing it.
pub(crate) fn check(message: *mut c_char) -> Result<(), TorchExtError> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns either NULL or a NUL-terminated string from strdup.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated with malloc (strdup) by the shim, freed once here.
    unsafe { libc::free(message.cast()) };
    Err(TorchExtError(text))
}

fn ptrs(tensors: &[Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(Tensor::as_ptr).collect()
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// libtorch's ScalarType code of the kinds autocast can use.
fn scalar_type(kind: Kind) -> Result<i8, TorchExtError> {
    match kind {
        Kind::Half => Ok(5),
        Kind::BFloat16 => Ok(15),
        other => Err(TorchExtError(format!(
            "autocast to {other:?} is not supported (bf16 or fp16)"
        ))),
    }
}

/// Autocast on `device`'s type while alive (nested regions restore the outer state); the
/// weight-cast cache is cleared when the outermost region ends.
#[derive(Debug)]
pub struct AutocastGuard {
    cuda: i32,
    was_enabled: bool,
    was_dtype: i8,
}

impl AutocastGuard {
    /// Enters autocast to `kind` (bf16 or fp16) for `device`'s type.
    pub fn enter(device: Device, kind: Kind) -> Result<AutocastGuard, TorchExtError> {
        let cuda = i32::from(device != Device::Cpu);
        let dtype = scalar_type(kind)?;
        let (mut was_enabled, mut was_dtype) = (false, 0i8);
        // SAFETY: plain out-pointers to locals.
        check(unsafe { flow_autocast_enter(cuda, dtype, &mut was_enabled, &mut was_dtype) })?;
        Ok(AutocastGuard {
            cuda,
            was_enabled,
            was_dtype,
        })
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: restores the state read by `enter`; a failure here cannot be reported.
        let _ = check(unsafe { flow_autocast_exit(self.cuda, self.was_enabled, self.was_dtype) });
    }
}

/// Runs `f` under autocast to `kind` when `kind` is given, else as is.
pub fn with_autocast<T>(
    device: Device,
    kind: Option<Kind>,
    f: impl FnOnce() -> T,
) -> Result<T, TorchExtError> {
    let _guard = match kind {
        Some(k) => Some(AutocastGuard::enter(device, k)?),
        None => None,
    };
    Ok(f())
}

/// Enables or disables cuDNN and its benchmark mode (autotuned convolution algorithms).
pub fn configure_cudnn(enabled: bool, benchmark: bool) -> Result<(), TorchExtError> {
    // SAFETY: sets two global flags.
    check(unsafe { flow_cudnn_configure(enabled, benchmark) })
}

/// The CUDA caching allocator's counters of one device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemory {
    /// Peak of allocated tensor memory since the last reset (`max_memory_allocated`).
    pub peak_allocated: i64,
    /// Peak of memory reserved from the driver (`max_memory_reserved`).
    pub peak_reserved: i64,
    /// Tensor memory allocated now.
    pub allocated: i64,
}

/// The allocator's counters of CUDA device `index`.
pub fn cuda_memory(index: usize) -> Result<CudaMemory, TorchExtError> {
    let mut m = CudaMemory {
        peak_allocated: 0,
        peak_reserved: 0,
        allocated: 0,
    };
    // SAFETY: out-pointers to the fields of a local.
    check(unsafe {
        flow_cuda_memory(
            len_i32(index),
            &mut m.peak_allocated,
            &mut m.peak_reserved,
            &mut m.allocated,
        )
    })?;
    Ok(m)
}

/// Restarts the peak counters of CUDA device `index`.
pub fn reset_cuda_peak(index: usize) -> Result<(), TorchExtError> {
    // SAFETY: a plain call.
    check(unsafe { flow_cuda_reset_peak(len_i32(index)) })
}

/// Drops the gradients of `vars` (`zero_grad(set_to_none=True)`): the next backward stores
/// its gradients instead of adding them to zeros.
pub fn clear_grads(vars: &[Tensor]) -> Result<(), TorchExtError> {
    if vars.is_empty() {
        return Ok(());
    }
    let p = ptrs(vars);
    // SAFETY: `p` points to live tensors for the duration of the call.
    check(unsafe { flow_clear_grads(p.as_ptr(), len_i32(p.len())) })
}

/// The total L2 norm of `grads` as a 0-d fp32 tensor on their device; when `max_norm > 0`
/// the gradients are scaled by min(1, max_norm / (norm + 1e-6)) on the device, so nothing
/// waits for the GPU (`torch.nn.utils.clip_grad_norm_` with `foreach=True`).
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> Result<Tensor, TorchExtError> {
    let p = ptrs(grads);
    let mut total: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: live tensors; the shim stores a new heap tensor in `total` on success.
    check(unsafe { flow_clip_grad_norm(p.as_ptr(), len_i32(p.len()), max_norm, &mut total) })?;
    // SAFETY: `total` was just created by the shim and is owned from here on.
    Ok(unsafe { Tensor::from_ptr(total) })
}

/// `dst[i] += weight · (src[i] − dst[i])` for every pair.
pub fn foreach_lerp(dst: &[Tensor], src: &[Tensor], weight: f64) -> Result<(), TorchExtError> {
    if dst.len() != src.len() {
        return Err(TorchExtError(format!(
            "foreach_lerp: {} destinations for {} sources",
            dst.len(),
            src.len()
        )));
    }
    if dst.is_empty() {
        return Ok(());
    }
    let (d, s) = (ptrs(dst), ptrs(src));
    // SAFETY: live tensors of equal count.
    check(unsafe { flow_foreach_lerp(d.as_ptr(), s.as_ptr(), len_i32(d.len()), weight) })
}

/// AdamW's hyper-parameters for one fused call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWHyper {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// ε.
    pub eps: f64,
}

/// One fused AdamW update of `params` (same device and dtype) with their gradients and
/// moments; `step` is a 0-d fp32 tensor on their device holding the 1-based step number.
pub fn fused_adamw(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    step: &Tensor,
    h: AdamWHyper,
) -> Result<(), TorchExtError> {
    let n = params.len();
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len()] != [n; 3] {
        return Err(TorchExtError(
            "fused_adamw: lists of different lengths".into(),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    // SAFETY: live tensors of equal count; `step` outlives the call.
    check(unsafe {
        flow_fused_adamw(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            step.as_ptr(),
            len_i32(n),
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
        )
    })
}

/// Starts libtorch's profiler (CPU ops; CUDA kernels on a CUDA device).
pub fn profiler_start(device: Device) -> Result<(), TorchExtError> {
    // SAFETY: a plain call.
    check(unsafe { flow_profiler_start(device != Device::Cpu) })
}

/// Stops the profiler and appends its per-step summary (heaviest kernels and ops) under
/// `title` to `summary`.
pub fn profiler_stop(
    summary: &std::path::Path,
    title: &str,
    steps: usize,
) -> Result<(), TorchExtError> {
    let path = std::ffi::CString::new(summary.as_os_str().as_encoded_bytes())
        .map_err(|e| TorchExtError(e.to_string()))?;
    let title = std::ffi::CString::new(title).map_err(|e| TorchExtError(e.to_string()))?;
    // SAFETY: two NUL-terminated strings alive for the call.
    check(unsafe { flow_profiler_stop(path.as_ptr(), title.as_ptr(), len_i32(steps)) })
}

/// A pinned copy of the CPU tensor `t` (page-locked memory, so that a copy to the GPU can run
/// without blocking the host).
pub fn pin_memory(t: &Tensor) -> Result<Tensor, TorchExtError> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: a live tensor in; the shim stores a new heap tensor in `out` on success.
    check(unsafe { flow_pin_memory(t.as_ptr(), &mut out) })?;
    // SAFETY: created by the shim, owned from here on.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// The gradients of Σ⟨outputs[i], grad_outputs[i]⟩ with respect to `inputs` (`autograd.grad`
/// with `grad_outputs`, unused inputs allowed: `None`). Frees the graph of `outputs`. The
/// CUDA-graph step runs (and captures) its backward pass through this.
pub fn autograd_grad(
    outputs: &[Tensor],
    grad_outputs: &[Tensor],
    inputs: &[Tensor],
) -> Result<Vec<Option<Tensor>>, TorchExtError> {
    if outputs.len() != grad_outputs.len() {
        return Err(TorchExtError(format!(
            "{} outputs but {} output gradients",
            outputs.len(),
            grad_outputs.len()
        )));
    }
    let (o, g, i) = (ptrs(outputs), ptrs(grad_outputs), ptrs(inputs));
    let mut results: Vec<*mut C_tensor> = vec![std::ptr::null_mut(); inputs.len()];
    // SAFETY: the pointer arrays point to live tensors for the call; `results` has room for
    // one pointer per input, each NULL or a new tensor whose ownership passes to us.
    check(unsafe {
        flow_autograd_grad(
            o.as_ptr(),
            g.as_ptr(),
            len_i32(o.len()),
            i.as_ptr(),
            len_i32(i.len()),
            results.as_mut_ptr(),
        )
    })?;
    Ok(results
        .into_iter()
        // SAFETY: each non-NULL pointer is a fresh heap tensor owned by nobody else.
        .map(|r| (!r.is_null()).then(|| unsafe { Tensor::from_ptr(r) }))
        .collect())
}

/// Gives `vars` the gradients `grads` (`None` entries left alone): as the very tensors when
/// `accumulate` is false (no copy; they serve until the next step drops them), else added
/// to each variable's gradient, or copied into a new one where it has none.
pub fn set_grads(
    vars: &[Tensor],
    grads: &[Option<Tensor>],
    accumulate: bool,
) -> Result<(), TorchExtError> {
    let n = vars.len().min(grads.len());
    let v = ptrs(&vars[..n]);
    let g: Vec<*const C_tensor> = grads[..n]
        .iter()
        .map(|g| g.as_ref().map_or(std::ptr::null(), Tensor::as_ptr))
        .collect();
    // SAFETY: both arrays hold `n` pointers to live tensors (or NULL in `g`) for the call.
    check(unsafe { flow_set_grads(v.as_ptr(), g.as_ptr(), len_i32(n), i32::from(accumulate)) })
}
