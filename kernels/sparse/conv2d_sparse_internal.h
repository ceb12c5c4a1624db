// Internals shared by kernels/sparse/conv2d_sparse.cpp (entry points, the generic im2col path
// for any shape, float and double) and conv2d_sparse_avx512.cpp (the float stride-1 path
// without im2col). Not a public header.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/sparse/conv2d_sparse.h"

namespace lethe::kernels::sparse_detail {

/// The calling thread's scratch buffer `slot` (0..3), at least n elements; reused across
/// calls, so a pointer is only good until the next call with the same slot.
template <typename T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buf[4];
  auto& b = buf[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

#if defined(__AVX512F__)
/// The AVX-512 flat path takes this shape (stride 1).
bool flat_ok(const Conv2dShape& s);
/// Whether flat_forward / flat_backward_data stage their inputs in tiles (tiled_spmm) for
/// this pattern: true from about 12% density. For the tests, which must cover both forms.
bool flat_forward_tiles(const Conv2dShape& s, const SparsePattern& pat);
bool flat_backward_data_tiles(const Conv2dShape& s, const SparsePattern& pat);
/// The tiled form's block width in positions: 128 where L1 holds 48 KiB or more, else 64;
/// set_tile_positions(64 or 128) forces one for tests and benchmarks, 0 restores the rule.
/// Both give the same bits.
void set_tile_positions(int64_t positions);
/// vals: the weights at the CSR entries.
void flat_forward(const Conv2dShape& s, const SparsePattern& pat, const float* vals,
                  const float* x, const float* bias, float* y);
/// Backward-data into gx (when not null) and backward-weight (when partial is not null): adds
/// each thread's share of gw at the CSR entries into partial[thread * nnz + i] (zeroed by the
/// caller; `nthreads` threads). One task loop for both.
void flat_backward(const Conv2dShape& s, const SparsePattern& pat, const float* vals,
                   const float* x, const float* gy, float* gx, float* partial, int nthreads);
#endif

}  // namespace lethe::kernels::sparse_detail
