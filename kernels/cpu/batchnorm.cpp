// batch_norm2d on the CPU, fast path (formulas in kernels/batchnorm.h; the oracles are in
// batchnorm_ref.cpp). Layout NCHW: channel c of sample n is the contiguous run
// x[(n*C + c)*HW .. +HW), so the M = N*HW values of one channel are N runs of HW.
// Threading: one OpenMP `parallel for` over channels (each channel's statistics and outputs
// belong to one thread, so the results do not depend on the thread count); inside, the loops
// over a run of HW are `omp simd` so they vectorise, per-channel sums in double.
// Forward training is two passes over x for the statistics (mean, then the centred sum of
// squares: stabler than E[x^2] - mean^2 when |mean| >> std) and one for y; backward is one
// pass for the two sums and one for gx.
#include "kernels/batchnorm.h"

#include <cmath>

namespace lethe::kernels {

namespace {

// Sum of x[n, c, :] over n and the HW run, in double.
template <typename T>
double channel_sum(const BatchNormShape& s, const T* x, int64_t c) {
  double acc = 0.0;
  for (int64_t n = 0; n < s.N; ++n) {
    const T* xr = x + (n * s.C + c) * s.HW;
    double run = 0.0;
#pragma omp simd reduction(+ : run)
    for (int64_t i = 0; i < s.HW; ++i) run += static_cast<double>(xr[i]);
    acc += run;
  }
  return acc;
}

// Sum of (x - mean)^2 over channel c, in double.
template <typename T>
double channel_centred_sq(const BatchNormShape& s, const T* x, int64_t c, double mean) {
  double acc = 0.0;
  for (int64_t n = 0; n < s.N; ++n) {
    const T* xr = x + (n * s.C + c) * s.HW;
    double run = 0.0;
#pragma omp simd reduction(+ : run)
    for (int64_t i = 0; i < s.HW; ++i) {
      const double d = static_cast<double>(xr[i]) - mean;
      run += d * d;
    }
    acc += run;
  }
  return acc;
}

// y = (x - mean) * a + b over channel c, with a = gamma*invstd and b = beta, in T. Centring
// first (rather than folding mean into b) keeps float accurate when |mean| >> std: x - mean
// of two nearby floats is exact, where x*a and mean*a would cancel.
template <typename T>
void channel_affine(const BatchNormShape& s, const T* x, int64_t c, T mean, T a, T b, T* y) {
  for (int64_t n = 0; n < s.N; ++n) {
    const int64_t off = (n * s.C + c) * s.HW;
    const T* xr = x + off;
    T* yr = y + off;
#pragma omp simd
    for (int64_t i = 0; i < s.HW; ++i) yr[i] = (xr[i] - mean) * a + b;
  }
}

}  // namespace

template <typename T>
void batchnorm_forward_train_cpu(const BatchNormShape& s, const T* x, const T* gamma,
                                 const T* beta, T* running_mean, T* running_var, T momentum,
                                 T eps, T* y, T* save_mean, T* save_invstd) {
  const int64_t M = s.N * s.HW;
  if (M == 0) return;
  const double m = static_cast<double>(momentum);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < s.C; ++c) {
    const double mean = channel_sum(s, x, c) / static_cast<double>(M);
    const double var_b = channel_centred_sq(s, x, c, mean) / static_cast<double>(M);
    const double invstd = 1.0 / std::sqrt(var_b + static_cast<double>(eps));
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    // Running statistics: the unbiased variance (PyTorch); with one value per channel the
    // correction M/(M-1) is undefined and the biased value (0) is used.
    const double var_u = M > 1 ? var_b * static_cast<double>(M) / static_cast<double>(M - 1)
                               : var_b;
    if (running_mean)
      running_mean[c] = static_cast<T>((1.0 - m) * static_cast<double>(running_mean[c]) +
                                       m * mean);
    if (running_var)
      running_var[c] = static_cast<T>((1.0 - m) * static_cast<double>(running_var[c]) +
                                      m * var_u);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    const double a = g * invstd;
    channel_affine(s, x, c, static_cast<T>(mean), static_cast<T>(a), static_cast<T>(b), y);
  }
}

template <typename T>
void batchnorm_forward_eval_cpu(const BatchNormShape& s, const T* x, const T* gamma,
                                const T* beta, const T* running_mean, const T* running_var,
                                T eps, T* y) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < s.C; ++c) {
    const double invstd =
        1.0 / std::sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    const double a = g * invstd;
    channel_affine(s, x, c, running_mean[c], static_cast<T>(a), static_cast<T>(b), y);
  }
}

template <typename T>
void batchnorm_backward_cpu(const BatchNormShape& s, bool training, const T* x, const T* gy,
                            const T* gamma, const T* mean, const T* invstd, T* gx, T* ggamma,
                            T* gbeta) {
  const int64_t M = s.N * s.HW;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < s.C; ++c) {
    const double mu = static_cast<double>(mean[c]);
    const double is = static_cast<double>(invstd[c]);
    // Pass 1: sum gy and sum gy*(x - mean), in double. ggamma = invstd * the second.
    double sum_gy = 0.0, sum_gy_xc = 0.0;
    for (int64_t n = 0; n < s.N; ++n) {
      const int64_t off = (n * s.C + c) * s.HW;
      const T* xr = x + off;
      const T* gr = gy + off;
      double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = 0; i < s.HW; ++i) {
        const double g = static_cast<double>(gr[i]);
        a += g;
        b += g * (static_cast<double>(xr[i]) - mu);
      }
      sum_gy += a;
      sum_gy_xc += b;
    }
    const double sum_gy_xhat = sum_gy_xc * is;
    if (gamma) {
      ggamma[c] = static_cast<T>(sum_gy_xhat);
      gbeta[c] = static_cast<T>(sum_gy);
    }
    const double gscale = (gamma ? static_cast<double>(gamma[c]) : 1.0) * is;
    // Pass 2: gx. Training expands gamma*invstd/M * (M*gy - gbeta - xhat*ggamma) into
    //   gx = k*gy + k2*(x - mean) + k0  with k = gamma*invstd,
    //   k2 = -k*invstd^2*sum(gy*(x-mean))/M, k0 = -k*sum(gy)/M,
    // per-channel constants in double, then a few flops per element in T.
    // Eval: gx = gy*gamma*invstd (the running statistics are constants, k2 = k0 = 0).
    const T k = static_cast<T>(gscale), mean_t = mean[c];
    T k2 = T(0), k0 = T(0);
    if (training && M > 0) {
      k2 = static_cast<T>(-gscale * is * is * sum_gy_xc / static_cast<double>(M));
      k0 = static_cast<T>(-gscale * sum_gy / static_cast<double>(M));
    }
    for (int64_t n = 0; n < s.N; ++n) {
      const int64_t off = (n * s.C + c) * s.HW;
      const T* xr = x + off;
      const T* gr = gy + off;
      T* gxr = gx + off;
#pragma omp simd
      for (int64_t i = 0; i < s.HW; ++i) gxr[i] = k * gr[i] + k2 * (xr[i] - mean_t) + k0;
    }
  }
}

#define LETHE_INSTANTIATE(T)                                                                  \
  template void batchnorm_forward_train_cpu<T>(const BatchNormShape&, const T*, const T*,     \
                                               const T*, T*, T*, T, T, T*, T*, T*);           \
  template void batchnorm_forward_eval_cpu<T>(const BatchNormShape&, const T*, const T*,      \
                                              const T*, const T*, const T*, T, T*);           \
  template void batchnorm_backward_cpu<T>(const BatchNormShape&, bool, const T*, const T*,    \
                                          const T*, const T*, const T*, T*, T*, T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
