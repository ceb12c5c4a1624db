// Optimizer update kernels. SGD in PyTorch's order (../shared/docs/SPEC.md section 3):
//   g += wd * w
//   buf = momentum * buf + g            (no dampening; buf starts at 0, so step 1 gives buf = g)
//   w  -= lr * buf                      (Nesterov: w -= lr * (g + momentum * buf))
//   w  *= mask                          (when mask != nullptr: a pruned weight stays exactly 0)
// momentum == 0 skips the buffer (buf may be nullptr then).
#pragma once

#include <cstdint>

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

}  // namespace lethe::kernels
