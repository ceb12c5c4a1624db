// SGD update on the CPU, one pass over n parameters (see kernels/optim.h), in PyTorch's
// order: g += wd*w; buf = momentum*buf + g; w -= lr*buf (Nesterov: w -= lr*(g + momentum*buf));
// then w *= mask. Layout: flat arrays; w, buf are updated in place, g is read only.
// Threading: OpenMP `parallel for` over elements above kParallelMin; the body is
// branch-free per element so it vectorises. The fast path computes in T with the
// hyper-parameters rounded to T (as PyTorch does for float parameters); the oracle computes
// each element in double and rounds once.
#include "kernels/optim.h"

namespace lethe::kernels {

namespace {
constexpr int64_t kParallelMin = int64_t{1} << 15;
}  // namespace

template <typename T>
void sgd_update_cpu(int64_t n, const SgdParams& p, T* w, const T* g, T* buf,
                    const uint8_t* mask) {
  const T lr = static_cast<T>(p.lr), mom = static_cast<T>(p.momentum);
  const T wd = static_cast<T>(p.weight_decay);
  // The pruning mask is re-applied last, in the same pass: weight decay and momentum may
  // move a pruned weight off zero within a step, and the select makes it exactly +0 again.
  // The momentum buffer is left as PyTorch leaves it (only the weight is masked).
  // `mask` and the flags are loop-invariant, so -O3 unswitches these branches out of the loop
  // and each version stays a straight line that vectorises.
  auto keep = [mask](int64_t i, T v) { return mask && mask[i] == 0 ? T(0) : v; };
  if (p.momentum == 0.0) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) w[i] = keep(i, w[i] - lr * (g[i] + wd * w[i]));
  } else {
    const bool nesterov = p.nesterov;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const T gi = g[i] + wd * w[i];
      const T b = mom * buf[i] + gi;
      buf[i] = b;
      w[i] = keep(i, w[i] - lr * (nesterov ? gi + mom * b : b));
    }
  }
}

template <typename T>
void sgd_update_ref(int64_t n, const SgdParams& p, T* w, const T* g, T* buf,
                    const uint8_t* mask) {
  for (int64_t i = 0; i < n; ++i) {
    double wi = static_cast<double>(w[i]);
    double gi = static_cast<double>(g[i]);
    gi += p.weight_decay * wi;
    if (p.momentum != 0.0) {
      double b = p.momentum * static_cast<double>(buf[i]) + gi;
      buf[i] = static_cast<T>(b);
      if (p.nesterov)
        wi -= p.lr * (gi + p.momentum * b);
      else
        wi -= p.lr * b;
    } else {
      wi -= p.lr * gi;
    }
    if (mask && mask[i] == 0) wi = 0.0;
    w[i] = static_cast<T>(wi);
  }
}

#define LETHE_INSTANTIATE(T)                                                                  \
  template void sgd_update_cpu<T>(int64_t, const SgdParams&, T*, const T*, T*, const uint8_t*); \
  template void sgd_update_ref<T>(int64_t, const SgdParams&, T*, const T*, T*, const uint8_t*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
