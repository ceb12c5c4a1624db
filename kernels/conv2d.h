// conv2d family (NCHW activations, KCRS weights), CPU entry points.
//   forward:          y[n,k,p,q]  = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*stride+r-pad,q*stride+s-pad]
//   backward-data:    gx = conv2d^T(gy, w)      (overwrites gx)
//   backward-weight:  gw[k,c,r,s] = sum_{n,p,q} gy[n,k,p,q] * x[n,c,...]  (overwrites gw),
//                     gb[k] = sum_{n,p,q} gy[n,k,p,q] when gb != nullptr (overwrites gb)
// Out-of-range input positions are zero padding. *_ref are plain loops (test oracles).
#pragma once

#include <cstdint>

namespace lethe::kernels {

/// Shape of one conv2d call in lethe's vocabulary: N batch, C in-, K out-channels,
/// HxW input, RxS filter, PxQ output.
struct Conv2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0, K = 0, R = 0, S = 0;
  int64_t stride = 1, pad = 0;
  int64_t P() const { return (H + 2 * pad - R) / stride + 1; }
  int64_t Q() const { return (W + 2 * pad - S) / stride + 1; }
  /// Multiply-adds times two for the forward pass (the same for each backward product).
  double flops() const { return 2.0 * N * K * P() * Q() * C * R * S; }
};

// x: N*C*H*W, w: K*C*R*S, bias: K or nullptr, y: N*K*P*Q
template <typename T>
void conv2d_forward_cpu(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
// gy: N*K*P*Q, w: K*C*R*S, gx: N*C*H*W
template <typename T>
void conv2d_backward_data_cpu(const Conv2dShape& s, const T* gy, const T* w, T* gx);
// x: N*C*H*W, gy: N*K*P*Q, gw: K*C*R*S, gb: K or nullptr
template <typename T>
void conv2d_backward_weight_cpu(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb);

template <typename T>
void conv2d_forward_ref(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data_ref(const Conv2dShape& s, const T* gy, const T* w, T* gx);
template <typename T>
void conv2d_backward_weight_ref(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb);

}  // namespace lethe::kernels
