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

#include "kernels/cuda_exec.h"

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

// ---- CUDA (kernels/cuda/batchnorm.cu): float32, device pointers ----
// Same formulas and arguments as the CPU entry points above; every pointer is a device
// pointer and no output may alias an input. Deterministic: the result depends only on the
// shape and the inputs (no atomics; a fixed reduction order). e.version: 1 = one block per
// channel, 2 (default) = a thread-block cluster of up to 8 blocks per channel (sm_90; falls
// back to 1 elsewhere).

/// Training forward (batch statistics, running-statistics update; running_* may be nullptr).
void batchnorm_forward_train_cuda(const BatchNormShape& s, const float* x, const float* gamma,
                                  const float* beta, float* running_mean, float* running_var,
                                  float momentum, float eps, float* y, float* save_mean,
                                  float* save_invstd, const CudaExec& e = {});
/// Eval forward: normalises with the running statistics.
void batchnorm_forward_eval_cuda(const BatchNormShape& s, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean,
                                 const float* running_var, float eps, float* y,
                                 const CudaExec& e = {});
/// Backward; mean / invstd as for batchnorm_backward_cpu. ggamma / gbeta are written only when
/// gamma is given (as on the CPU), and each may be nullptr when not wanted.
void batchnorm_backward_cuda(const BatchNormShape& s, bool training, const float* x,
                             const float* gy, const float* gamma, const float* mean,
                             const float* invstd, float* gx, float* ggamma, float* gbeta,
                             const CudaExec& e = {});

/// What the fused variants apply to bn(x) in the pass that writes y:
/// None: y = bn(x); Relu: y = relu(bn(x)); AddRelu: y = relu(bn(x) + residual) (the join of
/// a ResNet BasicBlock). ReLU as relu_forward_cpu (NaN passes) and relu_backward_cpu
/// (gradient 0 where y <= 0, so 0 at exactly 0 as PyTorch).
enum class BnEpilogue : uint8_t { None, Relu, AddRelu };

/// y = act(bn(x) [+ residual]) with batch statistics, as batchnorm_forward_train_cuda.
/// @param residual N*C*HW, read for AddRelu only (else may be nullptr)
void batchnorm_act_forward_train_cuda(const BatchNormShape& s, BnEpilogue act, const float* x,
                                      const float* gamma, const float* beta,
                                      const float* residual, float* running_mean,
                                      float* running_var, float momentum, float eps, float* y,
                                      float* save_mean, float* save_invstd,
                                      const CudaExec& e = {});
/// y = act(bn(x) [+ residual]) with the running statistics.
void batchnorm_act_forward_eval_cuda(const BatchNormShape& s, BnEpilogue act, const float* x,
                                     const float* gamma, const float* beta,
                                     const float* residual, const float* running_mean,
                                     const float* running_var, float eps, float* y,
                                     const CudaExec& e = {});
/// Backward of the fused forward: the ReLU mask (y > 0) is applied to gy on the fly, then the
/// batch-norm backward of batchnorm_backward_cuda.
/// @param y the fused forward's output N*C*HW (its sign is the ReLU mask); unused for None
/// @param gresidual N*C*HW, AddRelu only: receives gy*(y > 0); nullptr otherwise
void batchnorm_act_backward_cuda(const BatchNormShape& s, BnEpilogue act, bool training,
                                 const float* x, const float* y, const float* gy,
                                 const float* gamma, const float* mean, const float* invstd,
                                 float* gx, float* ggamma, float* gbeta, float* gresidual,
                                 const CudaExec& e = {});

}  // namespace lethe::kernels
