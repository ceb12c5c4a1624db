// Optimizer update kernels. SGD in PyTorch's order (../shared/docs/SPEC.md section 3):
//   g += wd * w
//   buf = momentum * buf + g            (no dampening; buf starts at 0, so step 1 gives buf = g)
//   w  -= lr * buf                      (Nesterov: w -= lr * (g + momentum * buf))
//   w  *= mask                          (when mask != nullptr: a pruned weight stays exactly 0)
// momentum == 0 skips the buffer (buf may be nullptr then).
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

namespace lethe::kernels {

struct SgdParams {
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = false;
};

// w, g, buf: n; mask: n bytes or nullptr. g is read only.
template <typename T>
void sgd_update_cpu(int64_t n, const SgdParams& p, T* w, const T* g, T* buf,
                    const uint8_t* mask);
template <typename T>
void sgd_update_ref(int64_t n, const SgdParams& p, T* w, const T* g, T* buf,
                    const uint8_t* mask);

// ---- CUDA (kernels/cuda/optim.cu): float32, device pointers ----
// The same one-pass update in the same order, hyper-parameters rounded to float as on the
// CPU fast path. Versions (e.version): 1 "scalar", 2 "vec4" (default; float4 on w, g, buf,
// falling back to v1 when they are misaligned differently modulo 16 bytes).
/// @param buf n floats, may be nullptr when p.momentum == 0; mask: n bytes or nullptr
void sgd_update_cuda(int64_t n, const SgdParams& p, float* w, const float* g, float* buf,
                     const uint8_t* mask, const CudaExec& e = {});

/// Number of CUDA kernel versions of this family (valid e.version: 0 = default, 1..N).
int optim_cuda_versions();
/// Short name of version v in 1..N ("scalar", "vec4").
const char* optim_cuda_version_name(int v);

}  // namespace lethe::kernels
