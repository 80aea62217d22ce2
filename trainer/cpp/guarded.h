// The error convention of the C shims (torch_ext.cpp, cuda_graph.cpp): a function returns
// NULL on success or a malloc'ed copy of the C++ exception's message, which the Rust side
// turns into an error and frees (src/torch_ext.rs, `check`).
#pragma once

#include <cstring>
#include <exception>

#define GUARDED(...)                       \
  try {                                    \
    __VA_ARGS__;                           \
    return nullptr;                        \
  } catch (const std::exception &e) {      \
    return strdup(e.what());               \
  }
