// CUDA graphs for the training step (see src/cuda_graph.rs): a capture session owns one side
// stream and the graphs captured on it, which share one private memory pool and are replayed
// in capture order (forward, then backward). Built by build.rs into a shared library linked
// against libtorch_cuda, which the binary embeds and loads only on machines with a GPU.
//
// Every function returns NULL on success or a malloc'ed message the caller frees.

#include "guarded.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

namespace {

struct Session {
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  std::optional<c10::cuda::CUDAStream> previous;
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs;
  bool cache_was_enabled = true;
};

}  // namespace

extern "C" {

char *flow_graph_session_new(void **out) {
  GUARDED({ *out = new Session(); })
}

void flow_graph_session_free(void *s) { delete static_cast<Session *>(s); }

// Makes the session's side stream current (after the device has finished its work): warm-up
// passes and captures run there, as PyTorch's make_graphed_callables does, so that lazily
// created per-stream state (cuBLAS workspaces, cuDNN plans) exists before capturing.
char *flow_graph_session_enter(void *s) {
  GUARDED({
    auto *session = static_cast<Session *>(s);
    c10::cuda::device_synchronize();
    session->previous = c10::cuda::getCurrentCUDAStream();
    c10::cuda::setCurrentCUDAStream(session->side);
  })
}

// Back to the stream that was current before `enter`, once the side stream is idle. The
// cached blocks the warm-up passes left go back to the driver (the graphs keep their own
// pool): otherwise the process holds the step's working memory twice.
char *flow_graph_session_exit(void *s) {
  GUARDED({
    auto *session = static_cast<Session *>(s);
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
    if (session->previous) c10::cuda::setCurrentCUDAStream(*session->previous);
    session->previous.reset();
  })
}

// Starts capturing a new graph (its index goes to *index) into the session's shared pool.
// Autocast's weight-cast cache is off while capturing: cached casts must not outlive the
// graph that wrote them.
char *flow_graph_capture_begin(void *s, int *index) {
  GUARDED({
    auto *session = static_cast<Session *>(s);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    session->cache_was_enabled = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    if (session->graphs.empty()) {
      graph->capture_begin();
    } else {
      graph->capture_begin(session->graphs.front()->pool());
    }
    session->graphs.push_back(std::move(graph));
    *index = static_cast<int>(session->graphs.size()) - 1;
  })
}

char *flow_graph_capture_end(void *s) {
  auto *session = static_cast<Session *>(s);
  try {
    session->graphs.back()->capture_end();
    at::autocast::set_autocast_cache_enabled(session->cache_was_enabled);
    return nullptr;
  } catch (const std::exception &e) {
    at::autocast::set_autocast_cache_enabled(session->cache_was_enabled);
    session->graphs.pop_back();
    return strdup(e.what());
  }
}

// Replays graph `index` on the current stream.
char *flow_graph_replay(void *s, int index) {
  GUARDED({
    auto *session = static_cast<Session *>(s);
    session->graphs.at(static_cast<size_t>(index))->replay();
  })
}

}  // extern "C"
