// batch_norm2d family over NCHW, statistics per channel c over the N*HW values of x[:,c].
// Training (PyTorch semantics, ../shared/docs/SPEC.md section 2):
//   mean = E[x], var_b = E[(x-mean)^2] (biased, used to normalise), invstd = 1/sqrt(var_b+eps)
//   y = gamma * (x - mean) * invstd + beta
//   running_mean = (1-m)*running_mean + m*mean
//   running_var  = (1-m)*running_var  + m*var_b*M/(M-1)   with M = N*HW (unbiased; M == 1 -> var_b)
// Eval: normalise with running_mean / running_var.
// Backward (training), with xhat = (x-mean)*invstd:
//   gbeta = sum gy, ggamma = sum gy*xhat,
//   gx = gamma*invstd/M * (M*gy - gbeta - xhat*ggamma)
// Backward (eval): gx = gy*gamma*invstd_running, ggamma = sum gy*xhat_running, gbeta = sum gy.
// gamma / beta may be nullptr (affine=false); then ggamma / gbeta are not written.
// Every output is overwritten. *_ref are plain loops in double accumulation (oracles).
#pragma once

#include <cstdint>

namespace lethe::kernels {

struct BatchNormShape {
  int64_t N = 0, C = 0, HW = 0;  ///< HW = H*W of the NCHW input
};

// x, y: N*C*HW; gamma, beta, running_*, save_mean, save_invstd: C
template <typename T>
void batchnorm_forward_train_cpu(const BatchNormShape& s, const T* x, const T* gamma,
                                 const T* beta, T* running_mean, T* running_var, T momentum,
                                 T eps, T* y, T* save_mean, T* save_invstd);
template <typename T>
void batchnorm_forward_eval_cpu(const BatchNormShape& s, const T* x, const T* gamma,
                                const T* beta, const T* running_mean, const T* running_var,
                                T eps, T* y);
// mean / invstd: the saved batch statistics (training) or running_mean and
// 1/sqrt(running_var+eps) (eval); `training` picks the formula above.
template <typename T>
void batchnorm_backward_cpu(const BatchNormShape& s, bool training, const T* x, const T* gy,
                            const T* gamma, const T* mean, const T* invstd, T* gx, T* ggamma,
                            T* gbeta);

template <typename T>
void batchnorm_forward_train_ref(const BatchNormShape& s, const T* x, const T* gamma,
                                 const T* beta, T* running_mean, T* running_var, T momentum,
                                 T eps, T* y, T* save_mean, T* save_invstd);
template <typename T>
void batchnorm_forward_eval_ref(const BatchNormShape& s, const T* x, const T* gamma,
                                const T* beta, const T* running_mean, const T* running_var,
                                T eps, T* y);
template <typename T>
void batchnorm_backward_ref(const BatchNormShape& s, bool training, const T* x, const T* gy,
                            const T* gamma, const T* mean, const T* invstd, T* gx, T* ggamma,
                            T* gbeta);

}  // namespace lethe::kernels
