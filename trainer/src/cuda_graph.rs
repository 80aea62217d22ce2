//! CUDA graphs over `cpp/cuda_graph.cpp` (libtorch's `at::cuda::CUDAGraph`, which tch does not
//! wrap). A training step at batch 4 is bound by the host launching ~5,000 small kernels, not
//! by the GPU; a captured graph replays all of them with one launch. A [`GraphSession`] owns a
//! side stream and the graphs captured on it, which share one private memory pool and must be
//! replayed in the order they were captured (the step's forward, then its backward).

use std::ffi::{CString, c_char, c_void};
use std::sync::OnceLock;

use crate::torch_ext::{TorchExtError, check};

/// The shim, built against libtorch_cuda by build.rs (empty when the build machine had no
/// CUDA headers). It cannot be linked into the binary: libtorch_cuda only loads where the
/// CUDA libraries are, and the binary must start everywhere.
static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libflow_cuda_graph.so"));

type Status = *mut c_char;
type NewFn = unsafe extern "C" fn(*mut *mut c_void) -> Status;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type SessionFn = unsafe extern "C" fn(*mut c_void) -> Status;
type BeginFn = unsafe extern "C" fn(*mut c_void, *mut i32) -> Status;
type ReplayFn = unsafe extern "C" fn(*mut c_void, i32) -> Status;

/// The shim's functions, resolved once.
struct Api {
    session_new: NewFn,
    session_free: FreeFn,
    session_enter: SessionFn,
    session_exit: SessionFn,
    capture_begin: BeginFn,
    capture_end: SessionFn,
    replay: ReplayFn,
}

/// Writes the embedded shim to a temporary file, loads it (libtorch_cuda must be loaded
/// already: `flow-train` does so at start) and resolves its functions.
fn load() -> Result<Api, String> {
    if LIBRARY.is_empty() {
        return Err("this flow-train was built without the CUDA headers: no CUDA graphs".into());
    }
    let path = std::env::temp_dir().join(format!("flow-cuda-graph-{}.so", std::process::id()));
    std::fs::write(&path, LIBRARY).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a NUL-terminated path; the handle is never closed (the functions
    // stay in use until the process ends).
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    let _ = std::fs::remove_file(&path);
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            "dlopen failed".to_owned()
        } else {
            // SAFETY: see above.
            unsafe { std::ffi::CStr::from_ptr(why) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("cannot load the CUDA-graph shim: {why}"));
    }
    let symbol = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: a live handle and a NUL-terminated name.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("the CUDA-graph shim lacks {name}"))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is the extern "C" function of cpp/cuda_graph.cpp with exactly the
    // signature of the field it is transmuted into.
    unsafe {
        Ok(Api {
            session_new: std::mem::transmute::<*mut c_void, NewFn>(symbol(
                "flow_graph_session_new",
            )?),
            session_free: std::mem::transmute::<*mut c_void, FreeFn>(symbol(
                "flow_graph_session_free",
            )?),
            session_enter: std::mem::transmute::<*mut c_void, SessionFn>(symbol(
                "flow_graph_session_enter",
            )?),
            session_exit: std::mem::transmute::<*mut c_void, SessionFn>(symbol(
                "flow_graph_session_exit",
            )?),
            capture_begin: std::mem::transmute::<*mut c_void, BeginFn>(symbol(
                "flow_graph_capture_begin",
            )?),
            capture_end: std::mem::transmute::<*mut c_void, SessionFn>(symbol(
                "flow_graph_capture_end",
            )?),
            replay: std::mem::transmute::<*mut c_void, ReplayFn>(symbol("flow_graph_replay")?),
        })
    }
}

fn api() -> Result<&'static Api, TorchExtError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| TorchExtError(e.clone()))
}

/// Whether this binary carries the CUDA-graph shim (CUDA headers found at build time).
pub fn built() -> bool {
    !LIBRARY.is_empty()
}

/// A captured graph of a [`GraphSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphId(i32);

/// A side stream and the graphs captured on it (see the module docs).
#[derive(Debug)]
pub struct GraphSession {
    raw: *mut c_void,
    api: &'static Api,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api")
    }
}

impl GraphSession {
    /// A session with a fresh side stream of the current CUDA device.
    pub fn new() -> Result<GraphSession, TorchExtError> {
        let api = api()?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        check(unsafe { (api.session_new)(&mut raw) })?;
        Ok(GraphSession { raw, api })
    }

    /// Runs `f` with the side stream current (after the device finished its queued work, and
    /// waiting for the side stream at the end): warm-up passes and captures go there.
    pub fn on_side_stream<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, TorchExtError>,
    ) -> Result<T, TorchExtError> {
        // SAFETY: `raw` is a live session.
        check(unsafe { (self.api.session_enter)(self.raw) })?;
        let result = crate::torch_ext::unpanicked(|| f(self));
        // SAFETY: as above; always leave the side stream, even after a failure.
        let left = check(unsafe { (self.api.session_exit)(self.raw) });
        let value = result?;
        left?;
        Ok(value)
    }

    /// Captures the kernels `f` launches (on the side stream: call inside
    /// [`GraphSession::on_side_stream`]) as a new graph. Nothing runs: the tensors `f`
    /// returns hold what a [`GraphSession::replay`] writes.
    pub fn capture<T>(
        &mut self,
        f: impl FnOnce() -> Result<T, TorchExtError>,
    ) -> Result<(GraphId, T), TorchExtError> {
        let mut index = -1;
        // SAFETY: `raw` is a live session; out-pointer to a local.
        check(unsafe { (self.api.capture_begin)(self.raw, &mut index) })?;
        // A tch call that fails panics: the capture must still end, or the stream would stay
        // in capture mode and every later CUDA call of the process would fail.
        let result = crate::torch_ext::unpanicked(f);
        // SAFETY: ends the capture begun above, whatever `f` did.
        let ended = check(unsafe { (self.api.capture_end)(self.raw) });
        let value = result?;
        ended?;
        Ok((GraphId(index), value))
    }

    /// Launches a captured graph on the current stream.
    pub fn replay(&self, graph: GraphId) -> Result<(), TorchExtError> {
        // SAFETY: `raw` is a live session; the index is checked by the shim.
        check(unsafe { (self.api.replay)(self.raw, graph.0) })
    }
}

// SAFETY: the session is a heap object of libtorch's CUDA graph API, usable from any thread
// (one at a time, which `&mut`/ownership ensures); nothing in it is thread-local.
unsafe impl Send for GraphSession {}

impl Drop for GraphSession {
    fn drop(&mut self) {
        // SAFETY: `raw` came from session_new and is freed once.
        unsafe { (self.api.session_free)(self.raw) }
    }
}
