// conv2d family (NCHW activations, KCRS weights), CPU and CUDA entry points.
//   forward:          y[n,k,p,q]  = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*stride+r-pad,q*stride+s-pad]
//   backward-data:    gx = conv2d^T(gy, w)      (overwrites gx)
//   backward-weight:  gw[k,c,r,s] = sum_{n,p,q} gy[n,k,p,q] * x[n,c,...]  (overwrites gw),
//                     gb[k] = sum_{n,p,q} gy[n,k,p,q] when gb != nullptr (overwrites gb)
// Out-of-range input positions are zero padding. *_ref are plain loops (test oracles).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_exec.h"

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

// ---- CUDA (kernels/cuda/conv2d.cu): float32, device pointers ----
// Versions: 1 direct loops, 2 fp32 implicit GEMM (default for CudaMath::FP32), 3 TF32 tensor
// cores (default for CudaMath::TF32; refused under FP32). Every output is overwritten, never
// accumulated into; every call is deterministic (no atomics). Launches go on e.stream.

/// Number of CUDA versions (valid CudaExec::version values are 0..conv2d_cuda_versions()).
int conv2d_cuda_versions();
/// Short name of version v (1..conv2d_cuda_versions()), e.g. "igemm_fp32".
const char* conv2d_cuda_version_name(int v);
/// The version e selects (its default for e.math when e.version is 0), 1..conv2d_cuda_versions().
int conv2d_cuda_resolved_version(const CudaExec& e);
/// Bytes of device scratch conv2d_backward_weight_cuda needs for shape s under e (the split-K
/// partial sums); 0 when it needs none, and then the workspace may be nullptr.
size_t conv2d_cuda_workspace_bytes(const Conv2dShape& s, const CudaExec& e = {});

/// x: N*C*H*W, w: K*C*R*S, bias: K or nullptr, y: N*K*P*Q (device pointers).
void conv2d_forward_cuda(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                         float* y, const CudaExec& e = {});
/// gy: N*K*P*Q, w: K*C*R*S, gx: N*C*H*W (device pointers).
void conv2d_backward_data_cuda(const Conv2dShape& s, const float* gy, const float* w, float* gx,
                               const CudaExec& e = {});
/// x: N*C*H*W, gy: N*K*P*Q, gw: K*C*R*S, gb: K or nullptr (device pointers).
/// @param workspace device scratch of workspace_bytes >= conv2d_cuda_workspace_bytes(s, e),
///        owned by the caller; it may be nullptr when that query returns 0.
void conv2d_backward_weight_cuda(const Conv2dShape& s, const float* x, const float* gy, float* gw,
                                 float* gb, void* workspace, size_t workspace_bytes,
                                 const CudaExec& e = {});

}  // namespace lethe::kernels
