//! Lets `flow-train` find libtorch at run time without LD_LIBRARY_PATH: an rpath entry for the
//! libtorch it was built against (torch-sys reports its lib dir as DEP_TCH_LIBTORCH_LIB, which
//! only reaches crates that depend on torch-sys directly) and one for the GPU machines' torch.
//! Also passes the built-against torch version (`<torch>/version.py`) to the code, and compiles
//! `cpp/torch_ext.cpp` (libtorch functions tch does not wrap) against the same headers.

#[path = "src/torch_version.rs"]
mod torch_version;

use std::path::Path;

/// Where the GPU machines keep torch 2.11.0 (Python 3.12 venv); the same binary runs there.
const GPU_MACHINE_TORCH_LIB: &str = "/opt/torch/.venv/lib/python3.12/site-packages/torch/lib";

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    if let Some(dir) = &lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{GPU_MACHINE_TORCH_LIB}");

    if let Some(dir) = &lib {
        compile_torch_ext(Path::new(dir));
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let graph_library = out.join("libflow_cuda_graph.so");
    // Without libtorch nothing was compiled, but src/cuda_graph.rs embeds the file regardless.
    if !graph_library.exists() {
        std::fs::write(&graph_library, b"").expect("OUT_DIR is writable");
    }

    let version = lib
        .as_deref()
        .and_then(|dir| Path::new(dir).parent())
        .map(|torch| torch.join("version.py"))
        .and_then(|file| {
            println!("cargo:rerun-if-changed={}", file.display());
            std::fs::read_to_string(file).ok()
        })
        .and_then(|text| torch_version::parse_version_py(&text))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FLOW_TORCH_BUILD_VERSION={version}");
}

/// Builds the C++ shims with the include folders of the libtorch in `lib_dir/..`: the general
/// one always, the CUDA-graph one against libtorch_cuda when the CUDA headers are found (pip's
/// `nvidia/cu*/include` next to torch, or `/usr/local/cuda/include`), else an empty file.
fn compile_torch_ext(lib_dir: &Path) {
    let Some(root) = lib_dir.parent() else {
        return;
    };
    let include = root.join("include");
    let build = || {
        let mut b = cc::Build::new();
        b.cpp(true)
            .pic(true)
            .warnings(false)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .flag("-std=c++17")
            .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
            .flag("-DGLOG_USE_GLOG_EXPORT")
            .opt_level(2);
        b
    };
    for source in ["cpp/torch_ext.cpp", "cpp/cuda_graph.cpp", "cpp/guarded.h"] {
        println!("cargo:rerun-if-changed={source}");
    }
    build().file("cpp/torch_ext.cpp").compile("flow_torch_ext");

    // The CUDA-graph shim links libtorch_cuda, which only GPU machines can load (its cuBLAS,
    // cuSPARSE, ... are not installed on CPU machines): it becomes a shared library embedded
    // in the binary and loaded at run time, after libtorch_cuda (src/cuda_graph.rs).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let library = out.join("libflow_cuda_graph.so");
    let cuda = cuda_include(root).filter(|_| lib_dir.join("libtorch_cuda.so").exists());
    let built = cuda.is_some_and(|cuda| {
        let mut graphs = build();
        graphs.include(cuda).file("cpp/cuda_graph.cpp");
        let objects = graphs.compile_intermediates();
        let status = graphs
            .get_compiler()
            .to_command()
            .arg("-shared")
            .arg("-o")
            .arg(&library)
            .args(&objects)
            .arg(format!("-L{}", lib_dir.display()))
            .args(["-ltorch_cuda", "-lc10_cuda", "-ltorch_cpu", "-lc10"])
            .status();
        match status {
            Ok(s) if s.success() => true,
            other => {
                println!("cargo:warning=CUDA graphs left out: linking the shim failed ({other:?})");
                false
            }
        }
    });
    if !built {
        // An empty library says "no CUDA graphs" (and replaces one an earlier build made).
        std::fs::write(&library, b"").expect("OUT_DIR is writable");
    }
}

/// The folder holding `cuda_runtime_api.h` for the torch at `torch_root`.
fn cuda_include(torch_root: &Path) -> Option<std::path::PathBuf> {
    let header = |dir: &Path| dir.join("cuda_runtime_api.h").exists();
    let nvidia = torch_root.parent()?.join("nvidia");
    let mut found: Vec<_> = std::fs::read_dir(&nvidia)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("include"))
        .filter(|dir| header(dir))
        .collect();
    found.sort();
    found
        .pop()
        .or_else(|| Some(Path::new("/usr/local/cuda/include").to_path_buf()).filter(|d| header(d)))
}
