// conv2d through cuDNN: the opt-in `conv_backend = cudnn` and the vendor baseline that lethe's
// own CUDA kernels (kernels/conv2d.h) are measured against. Never a silent fallback: the ops
// call it only when the setting asks for it. Same products and layouts as conv2d.h (NCHW x,
// KCRS w, every output overwritten), float32, device pointers, CUDA builds only.
//
// Algorithms: cuDNN's heuristic first choice per shape and product (cached per shape), with
// CUDNN_FMA_MATH in fp32 mode (no tensor cores, so no TF32) and CUDNN_DEFAULT_MATH in tf32
// mode. Backward products may use non-deterministic algorithms, as PyTorch's default does:
// runs with this backend are not bit-for-bit repeatable (docs/gpu.md).
#pragma once

#include <cstddef>
#include <string>

#include "kernels/conv2d.h"
#include "kernels/cuda_exec.h"

namespace lethe::kernels {

/// Scratch bytes the three products of shape s need (the largest of them).
size_t conv2d_cudnn_workspace_bytes(const Conv2dShape& s, const CudaExec& e = {});
void conv2d_forward_cudnn(const Conv2dShape& s, const float* x, const float* w,
                          const float* bias, float* y, void* workspace, size_t workspace_bytes,
                          const CudaExec& e = {});
void conv2d_backward_data_cudnn(const Conv2dShape& s, const float* gy, const float* w, float* gx,
                                void* workspace, size_t workspace_bytes, const CudaExec& e = {});
/// gb may be nullptr.
void conv2d_backward_weight_cudnn(const Conv2dShape& s, const float* x, const float* gy,
                                  float* gw, float* gb, void* workspace, size_t workspace_bytes,
                                  const CudaExec& e = {});
/// "cudnn:<fwd algo>/<bwd-data algo>/<bwd-filter algo>" for the run log, e.g. "cudnn:1/1/0".
std::string conv2d_cudnn_algorithms(const Conv2dShape& s, const CudaExec& e = {});

}  // namespace lethe::kernels
