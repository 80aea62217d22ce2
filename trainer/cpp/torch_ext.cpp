// libtorch functions that tch 0.24 does not wrap, behind a small C interface (see
// src/torch_ext.rs): the non-deprecated autocast state (bf16 on CUDA or CPU), cuDNN switches,
// the CUDA caching allocator's peak statistics, and the multi-tensor (`_foreach_*`, fused
// AdamW) kernels that replace hundreds of small per-parameter launches per step.
//
// Every function returns NULL on success or a malloc'ed message the caller frees.

#include "guarded.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

typedef at::Tensor *tensor;

namespace {

std::vector<at::Tensor> list_of(tensor *items, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*items[i]);
  return out;
}

at::DeviceType device_type_of(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

}  // namespace

extern "C" {

char *flow_autocast_enter(int cuda, int8_t dtype, bool *was_enabled, int8_t *was_dtype) {
  GUARDED({
    auto dev = device_type_of(cuda);
    *was_enabled = at::autocast::is_autocast_enabled(dev);
    *was_dtype = static_cast<int8_t>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::increment_nesting();
  })
}

char *flow_autocast_exit(int cuda, bool was_enabled, int8_t was_dtype) {
  GUARDED({
    auto dev = device_type_of(cuda);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dev, was_enabled);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(was_dtype));
  })
}

char *flow_cudnn_configure(bool enabled, bool benchmark) {
  GUARDED({
    at::globalContext().setUserEnabledCuDNN(enabled);
    at::globalContext().setBenchmarkCuDNN(benchmark);
  })
}

char *flow_cuda_memory(int device, int64_t *peak_allocated, int64_t *peak_reserved,
                       int64_t *allocated) {
  GUARDED({
    auto stats = c10::getDeviceAllocator(at::kCUDA)->getDeviceStats(device);
    auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    *peak_allocated = stats.allocated_bytes[all].peak;
    *peak_reserved = stats.reserved_bytes[all].peak;
    *allocated = stats.allocated_bytes[all].current;
  })
}

char *flow_cuda_reset_peak(int device) {
  GUARDED({ c10::getDeviceAllocator(at::kCUDA)->resetPeakStats(device); })
}

// Drops the gradients of `vars` (PyTorch's zero_grad(set_to_none=True)): the next backward
// then hands its gradient to each variable as is, instead of adding it to zeros (one kernel
// per parameter saved, twice).
char *flow_clear_grads(tensor *vars, int n) {
  GUARDED({
    for (int i = 0; i < n; ++i) vars[i]->mutable_grad().reset();
  })
}

// Gradients of sum_i <outputs[i], grad_outputs[i]> with respect to `inputs` (PyTorch's
// autograd.grad with grad_outputs and allow_unused): results[i] is NULL for an input the
// outputs do not depend on. Each gradient has its input's sizes and strides (what backward()
// guarantees when it accumulates into .grad, and what fused AdamW requires; a matmul's
// gradient can come out transposed). The graph of `outputs` is freed. The CUDA-graph step
// captures this call as its backward graph.
char *flow_autograd_grad(tensor *outputs, tensor *grad_outputs, int n, tensor *inputs, int m,
                         tensor *results) {
  GUARDED({
    auto grads = torch::autograd::grad(list_of(outputs, n), list_of(inputs, m),
                                       list_of(grad_outputs, n), false, false, true);
    for (int i = 0; i < m; ++i) {
      auto &g = grads[i];
      const auto &input = *inputs[i];
      if (g.defined() && g.strides() != input.strides()) {
        auto laid_out = at::empty_strided(input.sizes(), input.strides(), g.options());
        laid_out.copy_(g);
        g = laid_out;
      }
      results[i] = g.defined() ? new at::Tensor(g) : nullptr;
    }
  })
}

// Hands `grads` (NULL entries skipped) to `vars` as their gradients. accumulate == 0: each
// variable's gradient becomes the given tensor itself (no copy: the graphed step's gradient
// buffers, rewritten by every replay, serve one pass per optimizer step). accumulate != 0:
// added to the variable's gradient, or copied into a new one when it has none.
char *flow_set_grads(tensor *vars, tensor *grads, int n, int accumulate) {
  GUARDED({
    std::vector<at::Tensor> add_to, add_from, copy_from;
    std::vector<int> copy_index;
    for (int i = 0; i < n; ++i) {
      if (grads[i] == nullptr) continue;
      auto &grad = vars[i]->mutable_grad();
      if (!accumulate) {
        grad = *grads[i];
      } else if (grad.defined()) {
        add_to.push_back(grad);
        add_from.push_back(*grads[i]);
      } else {
        copy_from.push_back(*grads[i]);
        copy_index.push_back(i);
      }
    }
    if (!add_to.empty()) at::_foreach_add_(add_to, add_from);
    if (!copy_from.empty()) {
      auto copies = at::_foreach_mul(copy_from, 1.0);
      for (size_t k = 0; k < copies.size(); ++k) vars[copy_index[k]]->mutable_grad() = copies[k];
    }
  })
}

// Total L2 norm of `grads` (fp32, on their device) into *total; when max_norm > 0 every
// gradient is scaled by min(1, max_norm / (norm + 1e-6)) without reading the norm back.
char *flow_clip_grad_norm(tensor *grads, int n, double max_norm, tensor *total) {
  GUARDED({
    auto list = list_of(grads, n);
    auto norms = at::_foreach_norm(list, 2, at::kFloat);
    auto norm = at::linalg_vector_norm(at::stack(norms), 2);
    if (max_norm > 0) {
      auto coef = at::clamp_max(max_norm / (norm + 1e-6), 1.0);
      at::_foreach_mul_(list, coef);
    }
    *total = new at::Tensor(norm);
  })
}

// dst = dst + weight · (src − dst) for every pair (the EMA update with weight 1 − decay).
char *flow_foreach_lerp(tensor *dst, tensor *src, int n, double weight) {
  GUARDED({ at::_foreach_lerp_(list_of(dst, n), list_of(src, n), weight); })
}

// One AdamW update (torch.optim.AdamW, fused) of `n` parameters sharing lr and weight decay;
// `step` holds the 1-based step number already advanced by the caller.
char *flow_fused_adamw(tensor *params, tensor *grads, tensor *exp_avgs, tensor *exp_avg_sqs,
                       tensor step, int n, double lr, double beta1, double beta2,
                       double weight_decay, double eps) {
  GUARDED({
    std::vector<at::Tensor> steps(n, *step);
    at::_fused_adamw_(list_of(params, n), list_of(grads, n), list_of(exp_avgs, n),
                      list_of(exp_avg_sqs, n), {}, steps, lr, beta1, beta2, weight_decay, eps,
                      false, false);
  })
}

// A pinned (page-locked) copy of a CPU tensor, for non-blocking uploads (tch's pin_memory
// passes the deprecated device argument, which warns on every call).
char *flow_pin_memory(tensor t, tensor *out) {
  GUARDED({ *out = new at::Tensor(t->pin_memory()); })
}

// Starts libtorch's (Kineto) profiler: CPU ops, and CUDA kernels when `cuda`.
char *flow_profiler_start(bool cuda) {
  GUARDED({
    using namespace torch::profiler::impl;
    std::set<ActivityType> activities{ActivityType::CPU};
    if (cuda) activities.insert(ActivityType::CUDA);
    ProfilerConfig config(ProfilerState::KINETO);
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
  })
}

// Stops the profiler and appends to `summary_path` a table per device (CUDA kernels, CPU ops)
// of total time, count and time per step by event name, heaviest first; `title` heads it.
char *flow_profiler_stop(const char *summary_path, const char *title, int steps) {
  GUARDED({
    auto result = torch::autograd::profiler::disableProfiler();
    struct Sum {
      double us = 0;
      long count = 0;
    };
    std::map<std::string, Sum> gpu, cpu;
    double gpu_total = 0;
    long kernels = 0;
    for (const auto &e : result->events()) {
      double us = e.durationNs() / 1000.0;
      if (e.deviceType() == c10::DeviceType::CUDA) {
        auto &s = gpu[e.name()];
        s.us += us;
        s.count += 1;
        gpu_total += us;
        kernels += 1;
      } else {
        auto &s = cpu[e.name()];
        s.us += us;
        s.count += 1;
      }
    }
    double per = steps > 0 ? steps : 1;
    std::ofstream out(summary_path, std::ios::app);
    out << "### " << title << "\n";
    out << "GPU activities per step: " << kernels / per << ", GPU busy per step: "
        << gpu_total / per / 1000.0 << " ms\n";
    auto dump = [&](const char *head, std::map<std::string, Sum> &m, size_t top) {
      std::vector<std::pair<std::string, Sum>> v(m.begin(), m.end());
      std::sort(v.begin(), v.end(),
                [](const auto &a, const auto &b) { return a.second.us > b.second.us; });
      out << head << " (ms per step, count per step, name)\n";
      for (size_t i = 0; i < v.size() && i < top; ++i) {
        std::string name = v[i].first.substr(0, 110);
        out << "  " << v[i].second.us / per / 1000.0 << "\t" << v[i].second.count / per << "\t"
            << name << "\n";
      }
    };
    dump("CUDA", gpu, 45);
    dump("CPU (inclusive)", cpu, 45);
    out << "\n";
  })
}

}  // extern "C"
