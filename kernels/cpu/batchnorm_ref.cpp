// batch_norm2d oracles on the CPU: the formulas of kernels/batchnorm.h written as plain
// loops over NCHW (index ((n*C + c)*HW + i)), every sum and product in double, one rounding
// to T per output. Single-threaded, no vectorisation hints: these are what the fast path in
// batchnorm.cpp (and later the CUDA kernels) are tested against.
#include "kernels/batchnorm.h"

#include <cmath>

namespace lethe::kernels {

template <typename T>
void batchnorm_forward_train_ref(const BatchNormShape& s, const T* x, const T* gamma,
                                 const T* beta, T* running_mean, T* running_var, T momentum,
                                 T eps, T* y, T* save_mean, T* save_invstd) {
  const int64_t M = s.N * s.HW;
  if (M == 0) return;
  const double m = static_cast<double>(momentum);
  for (int64_t c = 0; c < s.C; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) sum += static_cast<double>(x[(n * s.C + c) * s.HW + i]);
    const double mean = sum / static_cast<double>(M);
    double sq = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const double d = static_cast<double>(x[(n * s.C + c) * s.HW + i]) - mean;
        sq += d * d;
      }
    const double var_b = sq / static_cast<double>(M);
    const double var_u = M > 1 ? sq / static_cast<double>(M - 1) : var_b;
    const double invstd = 1.0 / std::sqrt(var_b + static_cast<double>(eps));
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    if (running_mean)
      running_mean[c] = static_cast<T>((1.0 - m) * static_cast<double>(running_mean[c]) +
                                       m * mean);
    if (running_var)
      running_var[c] = static_cast<T>((1.0 - m) * static_cast<double>(running_var[c]) +
                                      m * var_u);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t idx = (n * s.C + c) * s.HW + i;
        y[idx] = static_cast<T>(g * (static_cast<double>(x[idx]) - mean) * invstd + b);
      }
  }
}

template <typename T>
void batchnorm_forward_eval_ref(const BatchNormShape& s, const T* x, const T* gamma,
                                const T* beta, const T* running_mean, const T* running_var,
                                T eps, T* y) {
  for (int64_t c = 0; c < s.C; ++c) {
    const double mean = static_cast<double>(running_mean[c]);
    const double invstd =
        1.0 / std::sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const double b = beta ? static_cast<double>(beta[c]) : 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t idx = (n * s.C + c) * s.HW + i;
        y[idx] = static_cast<T>(g * (static_cast<double>(x[idx]) - mean) * invstd + b);
      }
  }
}

template <typename T>
void batchnorm_backward_ref(const BatchNormShape& s, bool training, const T* x, const T* gy,
                            const T* gamma, const T* mean, const T* invstd, T* gx, T* ggamma,
                            T* gbeta) {
  const double M = static_cast<double>(s.N * s.HW);
  for (int64_t c = 0; c < s.C; ++c) {
    const double mu = static_cast<double>(mean[c]);
    const double is = static_cast<double>(invstd[c]);
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    double sum_gy = 0.0, sum_gy_xhat = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t idx = (n * s.C + c) * s.HW + i;
        const double xhat = (static_cast<double>(x[idx]) - mu) * is;
        sum_gy += static_cast<double>(gy[idx]);
        sum_gy_xhat += static_cast<double>(gy[idx]) * xhat;
      }
    if (gamma) {
      ggamma[c] = static_cast<T>(sum_gy_xhat);
      gbeta[c] = static_cast<T>(sum_gy);
    }
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < s.HW; ++i) {
        const int64_t idx = (n * s.C + c) * s.HW + i;
        const double gyi = static_cast<double>(gy[idx]);
        if (training) {
          const double xhat = (static_cast<double>(x[idx]) - mu) * is;
          gx[idx] = static_cast<T>(g * is / M * (M * gyi - sum_gy - xhat * sum_gy_xhat));
        } else {
          gx[idx] = static_cast<T>(gyi * g * is);
        }
      }
  }
}

#define LETHE_INSTANTIATE(T)                                                                  \
  template void batchnorm_forward_train_ref<T>(const BatchNormShape&, const T*, const T*,     \
                                               const T*, T*, T*, T, T, T*, T*, T*);           \
  template void batchnorm_forward_eval_ref<T>(const BatchNormShape&, const T*, const T*,      \
                                              const T*, const T*, const T*, T, T*);           \
  template void batchnorm_backward_ref<T>(const BatchNormShape&, bool, const T*, const T*,    \
                                          const T*, const T*, const T*, T*, T*, T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
