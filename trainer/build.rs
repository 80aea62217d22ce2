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

/// Builds the C++ shim with the include folders of the libtorch in `lib_dir/..`.
fn compile_torch_ext(lib_dir: &Path) {
    let source = "cpp/torch_ext.cpp";
    println!("cargo:rerun-if-changed={source}");
    let Some(root) = lib_dir.parent() else {
        return;
    };
    let include = root.join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .opt_level(2)
        .file(source)
        .compile("flow_torch_ext");
}
