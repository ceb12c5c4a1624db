// Softmax family over the rows of an M x C matrix (logits of M samples, C classes).
//   softmax:      y = exp(x - max) / sum exp(x - max)
//   log_softmax:  y = x - max - log(sum exp(x - max))
//   softmax backward:      gx = y * (gy - sum_j gy_j y_j)
//   log_softmax backward:  gx = gy - exp(y) * sum_j gy_j
// cross_entropy with label smoothing eps (PyTorch semantics):
//   loss_i = -(1-eps) * logp[i, t_i] - eps/C * sum_j logp[i, j]
//   backward: glogits[i, j] = gloss_i * (softmax[i, j] - (1-eps)*[j == t_i] - eps/C)
// Labels outside [0, C) are a caller error (checked above this layer).
#pragma once

#include <cstdint>

namespace lethe::kernels {

// x, y: M*C
template <typename T> void softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y);
template <typename T> void log_softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y);
template <typename T>
void softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx);
template <typename T>
void log_softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx);

// logits: M*C, labels: M, loss: M (per sample), logp: M*C (saved log-softmax for backward)
template <typename T>
void cross_entropy_forward_cpu(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp);
// gloss: M (per-sample upstream gradient), glogits: M*C (overwritten)
template <typename T>
void cross_entropy_backward_cpu(int64_t M, int64_t C, const T* logp, const int32_t* labels,
                                T smoothing, const T* gloss, T* glogits);

template <typename T> void softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y);
template <typename T> void log_softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y);
template <typename T>
void cross_entropy_forward_ref(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp);

}  // namespace lethe::kernels
