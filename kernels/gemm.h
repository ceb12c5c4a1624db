// GEMM family: row-major C = alpha * op(A) * op(B) + beta * C, the workhorse of conv2d
// (through im2col) and linear on the CPU.
//   op(A): M x K, op(B): K x N, C: M x N; lda/ldb/ldc are row strides of the stored matrices.
// gemm_cpu calls OpenBLAS (cblas_sgemm / cblas_dgemm); gemm_ref is the triple-loop oracle;
// gemm_cuda (float32, device pointers) is the same contract on the GPU.
#pragma once

#include <cstdint>

namespace lethe::kernels {

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
              const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <typename T>
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
              const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace lethe::kernels

// ---- CUDA (kernels/cuda/gemm.cu): float32, device pointers ----
#include "kernels/cuda_exec.h"

namespace lethe::kernels {

/// Number of CUDA GEMM versions (e.version may be 0, the default for e.math, or 1..this).
int gemm_cuda_versions();
/// "v1_naive", "v2_tiled", "v3_tf32_wmma" for v = 1..3; "default" for 0.
const char* gemm_cuda_version_name(int v);

/// gemm_cpu's contract on the GPU: row-major C = alpha * op(A) * op(B) + beta * C with A, B, C
/// device pointers, enqueued on e.stream (asynchronous). beta == 0 overwrites C without
/// reading it (NaN there is harmless); K == 0 gives C = beta * C. Version 0 is v2 (fp32 FMA)
/// under CudaMath::FP32 and v3 (TF32 tensor cores) under CudaMath::TF32; v3 forced under
/// FP32 is an error. Deterministic: no atomics, the summation order depends only on K.
/// @param A device, op(A) M x K stored row-major with row stride lda (K x M when trans_a)
/// @param B device, op(B) K x N stored row-major with row stride ldb (N x K when trans_b)
/// @param C device, M x N row-major with row stride ldc
void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const CudaExec& e = {});

}  // namespace lethe::kernels
