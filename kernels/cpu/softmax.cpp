// Softmax family on the CPU over the rows of an M x C matrix (formulas in kernels/softmax.h):
// softmax and log_softmax forward/backward, cross-entropy with label smoothing
// forward/backward, and the plain-loop oracles (*_ref) at the bottom.
// Layout: row-major, row i (one sample's logits) is x[i*C .. i*C + C).
// Numerics: every row subtracts its max before exp, so exp never overflows and the largest
// term is exactly 1; row sums (of exp, of gy, of gy*y) accumulate in double.
// Threading: one OpenMP `parallel for` over rows, above kParallelMin elements; a row belongs
// to one thread, so results do not depend on the thread count.
#include "kernels/softmax.h"

#include <cmath>
#include <limits>

namespace lethe::kernels {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 14;

template <typename T>
T row_max(int64_t C, const T* x) {
  T m = x[0];
  for (int64_t j = 1; j < C; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// Writes log_softmax of one row to y (y may alias x): (x - max) - log(sum exp(x - max)).
template <typename T>
void log_softmax_row(int64_t C, const T* x, T* y) {
  const T m = row_max(C, x);
  double sum = 0.0;
  for (int64_t j = 0; j < C; ++j) sum += static_cast<double>(std::exp(x[j] - m));
  const T lse = static_cast<T>(std::log(sum));
  for (int64_t j = 0; j < C; ++j) y[j] = (x[j] - m) - lse;
}

}  // namespace

template <typename T>
void softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y) {
  if (C == 0) return;
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) {
    const T* xr = x + i * C;
    T* yr = y + i * C;
    const T m = row_max(C, xr);
    // Store exp(x - max) first, then scale by 1/sum in a second pass over the row.
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      const T e = std::exp(xr[j] - m);
      yr[j] = e;
      sum += static_cast<double>(e);
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j < C; ++j) yr[j] *= inv;
  }
}

template <typename T>
void log_softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y) {
  if (C == 0) return;
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) log_softmax_row(C, x + i * C, y + i * C);
}

template <typename T>
void softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx) {
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) {
    const T* yr = y + i * C;
    const T* gr = gy + i * C;
    T* gxr = gx + i * C;
    double dot = 0.0;
    for (int64_t j = 0; j < C; ++j) dot += static_cast<double>(gr[j]) * yr[j];
    const T d = static_cast<T>(dot);
    for (int64_t j = 0; j < C; ++j) gxr[j] = yr[j] * (gr[j] - d);
  }
}

template <typename T>
void log_softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx) {
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) {
    const T* yr = y + i * C;
    const T* gr = gy + i * C;
    T* gxr = gx + i * C;
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += static_cast<double>(gr[j]);
    const T s = static_cast<T>(sum);
    for (int64_t j = 0; j < C; ++j) gxr[j] = gr[j] - std::exp(yr[j]) * s;
  }
}

template <typename T>
void cross_entropy_forward_cpu(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp) {
  if (C == 0) return;
  const double eps = static_cast<double>(smoothing);
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) {
    T* lp = logp + i * C;
    log_softmax_row(C, logits + i * C, lp);
    // The smoothing term needs the row sum of log-probabilities; skipped when eps == 0 so
    // the plain loss is exactly -logp[target].
    double sum_lp = 0.0;
    if (eps != 0.0)
      for (int64_t j = 0; j < C; ++j) sum_lp += static_cast<double>(lp[j]);
    loss[i] = static_cast<T>(-(1.0 - eps) * static_cast<double>(lp[labels[i]]) -
                             eps / static_cast<double>(C) * sum_lp);
  }
}

template <typename T>
void cross_entropy_backward_cpu(int64_t M, int64_t C, const T* logp, const int32_t* labels,
                                T smoothing, const T* gloss, T* glogits) {
  if (C == 0) return;
  const T eps = smoothing;
  const T off = eps / static_cast<T>(C);  // the smoothed target mass of every class
  const T on = (T(1) - eps) + off;        // ... plus the rest on the labelled class
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t i = 0; i < M; ++i) {
    const T* lp = logp + i * C;
    T* g = glogits + i * C;
    const T gl = gloss[i];
    for (int64_t j = 0; j < C; ++j) g[j] = gl * (std::exp(lp[j]) - off);
    // The labelled class gets the -(1-eps) as well; written this way round so the common
    // loop has no branch.
    g[labels[i]] = gl * (std::exp(lp[labels[i]]) - on);
  }
}

// ---- oracles: plain loops, everything in double, one rounding per output -----------------

template <typename T>
void softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y) {
  for (int64_t i = 0; i < M; ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j) m = std::fmax(m, static_cast<double>(x[i * C + j]));
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += std::exp(static_cast<double>(x[i * C + j]) - m);
    for (int64_t j = 0; j < C; ++j)
      y[i * C + j] = static_cast<T>(std::exp(static_cast<double>(x[i * C + j]) - m) / sum);
  }
}

template <typename T>
void log_softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y) {
  for (int64_t i = 0; i < M; ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j) m = std::fmax(m, static_cast<double>(x[i * C + j]));
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += std::exp(static_cast<double>(x[i * C + j]) - m);
    const double lse = m + std::log(sum);
    for (int64_t j = 0; j < C; ++j)
      y[i * C + j] = static_cast<T>(static_cast<double>(x[i * C + j]) - lse);
  }
}

template <typename T>
void cross_entropy_forward_ref(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp) {
  log_softmax_forward_ref(M, C, logits, logp);
  const double eps = static_cast<double>(smoothing);
  for (int64_t i = 0; i < M; ++i) {
    // Recomputed in double from the logits, not from the rounded logp.
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j) m = std::fmax(m, static_cast<double>(logits[i * C + j]));
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += std::exp(static_cast<double>(logits[i * C + j]) - m);
    const double lse = m + std::log(sum);
    double l = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      const double lpj = static_cast<double>(logits[i * C + j]) - lse;
      const double target = (j == labels[i] ? 1.0 - eps : 0.0) + eps / static_cast<double>(C);
      l -= target * lpj;
    }
    loss[i] = static_cast<T>(l);
  }
}

#define LETHE_INSTANTIATE(T)                                                                 \
  template void softmax_forward_cpu<T>(int64_t, int64_t, const T*, T*);                      \
  template void log_softmax_forward_cpu<T>(int64_t, int64_t, const T*, T*);                  \
  template void softmax_backward_cpu<T>(int64_t, int64_t, const T*, const T*, T*);           \
  template void log_softmax_backward_cpu<T>(int64_t, int64_t, const T*, const T*, T*);       \
  template void cross_entropy_forward_cpu<T>(int64_t, int64_t, const T*, const int32_t*, T,  \
                                             T*, T*);                                        \
  template void cross_entropy_backward_cpu<T>(int64_t, int64_t, const T*, const int32_t*, T, \
                                              const T*, T*);                                 \
  template void softmax_forward_ref<T>(int64_t, int64_t, const T*, T*);                      \
  template void log_softmax_forward_ref<T>(int64_t, int64_t, const T*, T*);                  \
  template void cross_entropy_forward_ref<T>(int64_t, int64_t, const T*, const int32_t*, T,  \
                                             T*, T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
