# Shared settings of the libtorch scripts (sourced, not run).
# The virtualenv lives outside the checkout, so fresh clones and CI runs on one machine reuse it.
# shellcheck shell=bash
TORCH_VERSION=2.11.0
# tch 0.24 / torch-sys 0.24 need exactly torch 2.11.0; libtorch_cpu.so itself needs
# libcudart.so.13 and libcupti.so.13, hence the two nvidia wheels (the "light" route). The
# CUDA CRT headers (nvidia-cuda-crt, headers only) complete the runtime wheel's include folder
# so that the trainer's CUDA-graph shim compiles against cuda_runtime.h.
# shellcheck disable=SC2034 # (used by install)
TORCH_PACKAGES=("torch==$TORCH_VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85" "nvidia-cuda-crt==13.0.88")
TORCH_VENV=${FLOW_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flow/torch-$TORCH_VERSION}

# The torch package folder of the venv (LIBTORCH), whatever the venv's python version.
torch_dir() {
    local d
    for d in "$TORCH_VENV"/lib/python3*/site-packages/torch; do
        if [[ -f $d/lib/libtorch_cpu.so ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    return 1
}
