// Sparse conv2d on the CPU: the three products of training for a pruned convolution whose
// weight w (K x CRS, KCRS layout) is nonzero only where its mask is 1.
//   forward:          y[n,k,p,q] = b[k] + sum over nonzero (k, j) of w[k,j] * col_n[j, (p,q)]
//   backward-data:    gx = col2im(w^T gy), the sum running over the nonzeros only
//   backward-weight:  gw[k,j] = sum_{n,p,q} gy[n,k,p,q] * col_n[j,(p,q)] at the nonzeros, 0
//                     elsewhere (a sampled dense-dense product), gb[k] = sum gy when asked
// with j = (c, r, s) and col_n the im2col matrix of image n (kernels/conv2d.h has the dense
// formulas: these equal the dense kernels applied to w * mask).
//
// The pattern is built once from the mask (make_sparse_pattern) and holds CSR for the forward
// and backward-weight products and a transposed copy (CSC) for backward-data, so no product
// ever needs a transposed walk with scattered writes. The values are not stored: each call
// gathers w at the pattern's positions (nnz loads), so an optimizer that updates the dense
// weight in place needs no refresh and the structure is never rebuilt.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/conv2d.h"

namespace lethe::kernels {

/// Nonzero structure of a K x CRS weight.
struct SparsePattern {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_ptr;  ///< rows + 1: row k is entries [row_ptr[k], row_ptr[k+1])
  std::vector<int32_t> col_idx;  ///< nnz: column j of each entry, ascending within a row
  std::vector<int64_t> t_ptr;    ///< cols + 1: the transpose, column j's entries
  std::vector<int32_t> t_row;    ///< nnz: row k of each transposed entry, ascending
  std::vector<int64_t> t_src;    ///< nnz: the CSR entry each transposed entry stands for
  int64_t nnz() const { return static_cast<int64_t>(col_idx.size()); }
  double density() const {
    return rows > 0 && cols > 0 ? static_cast<double>(nnz()) / static_cast<double>(rows * cols) : 0.0;
  }
};

/// The pattern of `mask` (rows x cols, nonzero byte = kept).
SparsePattern make_sparse_pattern(int64_t rows, int64_t cols, const uint8_t* mask);

/// The measured rule behind `--sparse auto` (docs/sparse.md): true when the three sparse
/// products together beat the dense ones for this shape at this density (fraction kept).
bool sparse_conv2d_pays_off(const Conv2dShape& s, double density);

// x: N*C*H*W, w: K*C*R*S (dense storage; only the pattern's positions are read),
// bias: K or nullptr, y: N*K*P*Q (overwritten)
template <typename T>
void sparse_conv2d_forward_cpu(const Conv2dShape& s, const SparsePattern& pat, const T* x,
                               const T* w, const T* bias, T* y);
// gy: N*K*P*Q, w: K*C*R*S, gx: N*C*H*W (overwritten)
template <typename T>
void sparse_conv2d_backward_data_cpu(const Conv2dShape& s, const SparsePattern& pat,
                                     const T* gy, const T* w, T* gx);
// x: N*C*H*W, gy: N*K*P*Q, gw: K*C*R*S (overwritten; 0 off the pattern), gb: K or nullptr
template <typename T>
void sparse_conv2d_backward_weight_cpu(const Conv2dShape& s, const SparsePattern& pat,
                                       const T* x, const T* gy, T* gw, T* gb);
// Both backward products in one pass over the images (each image's gy is laid out once):
// gx when not null (needs w), gw when not null (needs x), gb when not null. The same bits
// as the two calls above.
template <typename T>
void sparse_conv2d_backward_cpu(const Conv2dShape& s, const SparsePattern& pat, const T* x,
                                const T* gy, const T* w, T* gx, T* gw, T* gb);

}  // namespace lethe::kernels
