// Internals shared by the CUDA sparse conv2d files (not a public header):
//   conv2d_sparse_cuda.cu      the pattern upload, the kernels both versions use (value
//                              gathers, bias fill, weight-gradient scatter, bias gradient),
//                              argument checks and the public entry points;
//   conv2d_sparse_cusparse.cu  v1 (im2col + cuSPARSE SpMM / SDDMM);
//   conv2d_sparse_direct.cu    v2 (hand-written, no im2col).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/sparse/conv2d_sparse_cuda.h"

namespace lethe::kernels::sparse_cuda {

/// The shape as the kernels take it. Every tensor has fewer than 2^31 elements (checked by
/// the entry points), so element indices fit int; offsets are still formed in int64 where a
/// product of two sizes could come close.
struct Geom {
  int N, C, H, W, K, R, S, P, Q, stride, pad;
  int HW, PQ, RS, CRS;
};

Geom geom_of(const Conv2dShape& s);

// ---- shared launchers (conv2d_sparse_cuda.cu) --------------------------------------------
/// p.vals[i] = w[k * CRS + col_idx[i]] for every CSR entry i of row k.
void gather_values(SparsePatternCuda& p, const float* w, cudaStream_t st);
/// p.tvals[e] = w at the CSR entry t_src[e] (the transposed order).
void gather_transposed_values(SparsePatternCuda& p, const float* w, cudaStream_t st);
/// y[n,k,p,q] = bias[k] (0 when bias is nullptr): the forward of a fully pruned layer.
void fill_bias(const Geom& g, const float* bias, float* y, cudaStream_t st);
/// gw = 0 everywhere, then gw[k, col_idx[i]] = gvals[i] at the CSR entries.
void scatter_weight_grad(const SparsePatternCuda& p, const float* gvals, float* gw,
                         cudaStream_t st);
/// gb[k] = sum over n, p, q of gy[n,k,p,q] (one block per k, fixed order).
void bias_grad(const Geom& g, const float* gy, float* gb, cudaStream_t st);

// ---- v1: cuSPARSE (conv2d_sparse_cusparse.cu) --------------------------------------------
size_t cusparse_workspace_bytes(const Geom& g, int64_t nnz);
void cusparse_forward(const Geom& g, SparsePatternCuda& p, const float* x, const float* bias,
                      float* y, void* ws, size_t ws_bytes, cudaStream_t st);
void cusparse_backward_data(const Geom& g, SparsePatternCuda& p, const float* gy, float* gx,
                            void* ws, size_t ws_bytes, cudaStream_t st);
void cusparse_backward_weight(const Geom& g, SparsePatternCuda& p, const float* x,
                              const float* gy, float* gw, void* ws, size_t ws_bytes,
                              cudaStream_t st);

// ---- v2: direct (conv2d_sparse_direct.cu) ------------------------------------------------
void direct_forward(const Geom& g, const SparsePatternCuda& p, const float* x,
                    const float* bias, float* y, cudaStream_t st);
void direct_backward_data(const Geom& g, const SparsePatternCuda& p, const float* gy,
                          float* gx, cudaStream_t st);
void direct_backward_weight(const Geom& g, const SparsePatternCuda& p, const float* x,
                            const float* gy, float* gw, cudaStream_t st);

}  // namespace lethe::kernels::sparse_cuda
