// GEMM family: row-major C = alpha * op(A) * op(B) + beta * C, the workhorse of conv2d
// (through im2col) and linear on the CPU.
//   op(A): M x K, op(B): K x N, C: M x N; lda/ldb/ldc are row strides of the stored matrices.
// gemm_cpu calls OpenBLAS (cblas_sgemm / cblas_dgemm); gemm_ref is the triple-loop oracle.
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
