// Sparse conv2d on CUDA, float32: the three products of training for a pruned convolution
// (formulas in kernels/sparse/conv2d_sparse.h; they equal the dense kernels of
// kernels/conv2d.h applied to w * mask). Layout NCHW activations, KCRS weight.
//
// A SparsePattern is uploaded once per pruned layer (SparsePatternCuda::upload): CSR of the
// K x CRS weight plus the transposed copy, as int32 arrays on the device. The weight values
// are not part of the pattern: every call gathers them from the dense weight w at the
// pattern's positions into the pattern's own value buffers, so an optimizer that updates w in
// place needs no refresh. Consequence: calls that share one SparsePatternCuda must run on one
// stream (or be otherwise ordered), as they write the same value buffers.
//
// Versions (CudaExec::version; both are plain fp32, CudaMath is ignored):
//   v1 "cusparse": per chunk of images, im2col into the workspace and cuSPARSE products:
//      forward SpMM (CSR W x col), backward-data SpMM with the transposed structure as a CSR
//      of W^T (never CUSPARSE_OPERATION_TRANSPOSE, which is not deterministic) and a gather
//      col2im, backward-weight SDDMM (gy x col^T sampled at the pattern).
//   v2 "direct": hand-written, no im2col: each kernel reads x or gy directly with padding
//      checks (forward per (k, tile of output pixels), backward-data in gather form through
//      the transposed structure per (c, tile of input pixels), backward-weight one or a few
//      warps per nonzero).
// Default (version 0): v2, provisionally. At 95% sparsity a kept weight costs one load and one
// multiply-add per output pixel in both versions, but v1 must also write and read back the
// whole dense im2col matrix (CRS x N*P*Q floats, whatever the sparsity: at 5% density that is
// about 20x the traffic of the useful products) and pay four launches per chunk; v2 reads the
// input window through L1/L2. This was reasoned, not measured (no GPU was lent when it was
// written): bench/bench_conv2d_sparse_cuda.cpp decides it.
//
// Every output is overwritten, never accumulated into; every call is deterministic (no
// atomics; reductions in a fixed order). Limits: every tensor below 2^31 elements.
// Tests: tests/cuda/test_conv2d_sparse_cuda.cpp. Benchmark: bench/bench_conv2d_sparse_cuda.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/conv2d.h"
#include "kernels/cuda_exec.h"
#include "kernels/sparse/conv2d_sparse.h"

namespace lethe::kernels {

/// A SparsePattern on one device (RAII: freed with the object), plus its value buffers.
struct SparsePatternCuda {
  /// Copies `pat` to device `device` (two cudaMalloc: once per pruned layer, not per step).
  static std::shared_ptr<SparsePatternCuda> upload(const SparsePattern& pat, int device);
  ~SparsePatternCuda();
  SparsePatternCuda(const SparsePatternCuda&) = delete;
  SparsePatternCuda& operator=(const SparsePatternCuda&) = delete;

  int device = 0;
  int64_t rows = 0, cols = 0, nnz = 0;  ///< K, CRS, kept weights
  // Device arrays (int32, as cuSPARSE takes them); never null, even when nnz == 0.
  int32_t* row_ptr = nullptr;  ///< rows + 1: CSR offsets
  int32_t* col_idx = nullptr;  ///< nnz: column j = (c, r, s) of each CSR entry
  int32_t* row_idx = nullptr;  ///< nnz: row k of each CSR entry (for per-nonzero kernels)
  int32_t* t_ptr = nullptr;    ///< cols + 1: offsets of the transpose (column j's entries)
  int32_t* t_row = nullptr;    ///< nnz: row k of each transposed entry
  int32_t* t_src = nullptr;    ///< nnz: the CSR entry each transposed entry stands for
  float* vals = nullptr;       ///< nnz: w at the CSR entries, re-gathered by every call
  float* tvals = nullptr;      ///< nnz: w at the transposed entries, re-gathered likewise

  /// v1's cached cuSPARSE descriptors and buffers, one set per (product, chunk width); opaque.
  struct Plans;
  struct PlansDeleter {
    void operator()(Plans* p) const;
  };
  std::unique_ptr<Plans, PlansDeleter> plans;

 private:
  SparsePatternCuda() = default;
  void* ints_ = nullptr;    // the one allocation behind the int32 arrays
  void* floats_ = nullptr;  // the one allocation behind vals and tvals
};

/// Number of versions (valid CudaExec::version values are 0..sparse_conv2d_cuda_versions()).
int sparse_conv2d_cuda_versions();
/// Short name of version v (1..sparse_conv2d_cuda_versions()): "cusparse", "direct".
const char* sparse_conv2d_cuda_version_name(int v);
/// The version a call with `e` runs (e.version, or the default for 0).
int sparse_conv2d_cuda_resolved_version(const CudaExec& e);

/// Bytes of device scratch the three products need for shape s under e (the largest of the
/// three); 0 when none is needed, and then the workspace may be nullptr.
size_t sparse_conv2d_cuda_workspace_bytes(const Conv2dShape& s, const SparsePatternCuda& p,
                                          const CudaExec& e = {});

/// x: N*C*H*W, w: K*C*R*S (dense; only the pattern's positions are read), bias: K or nullptr,
/// y: N*K*P*Q (device pointers).
/// @param workspace device scratch of workspace_bytes >= sparse_conv2d_cuda_workspace_bytes
void sparse_conv2d_forward_cuda(const Conv2dShape& s, SparsePatternCuda& p, const float* x,
                                const float* w, const float* bias, float* y, void* workspace,
                                size_t workspace_bytes, const CudaExec& e = {});
/// gy: N*K*P*Q, w: K*C*R*S, gx: N*C*H*W (device pointers).
void sparse_conv2d_backward_data_cuda(const Conv2dShape& s, SparsePatternCuda& p,
                                      const float* gy, const float* w, float* gx,
                                      void* workspace, size_t workspace_bytes,
                                      const CudaExec& e = {});
/// x: N*C*H*W, gy: N*K*P*Q, gw: K*C*R*S (0 off the pattern), gb: K or nullptr (device).
void sparse_conv2d_backward_weight_cuda(const Conv2dShape& s, SparsePatternCuda& p,
                                        const float* x, const float* gy, float* gw, float* gb,
                                        void* workspace, size_t workspace_bytes,
                                        const CudaExec& e = {});

}  // namespace lethe::kernels
