// Sparse conv2d on the CPU (formulas in kernels/sparse/conv2d_sparse.h).
//
// Plan. The output positions of all images are cut into chunks of kTW = 64 columns. A task
// owns whole images (one image when it has >= 64 positions, else a few side by side, so a
// 4x4 layer still fills a chunk) and walks its chunks in order; OpenMP threads take whole
// tasks. Per chunk:
//   col  (CRS x 64): the im2col block of those positions, built from the precomputed
//        (image, row, column) of each position; out-of-image taps read as 0.
//   forward:          for each output channel k, 64 accumulators (4 AVX-512 registers for
//                     float) += w[k,j] * col[j] over the nonzeros j of row k: one load per
//                     multiply-add, no materialised dense weight.
//   backward-data:    gy's chunk (K x 64), then for each input tap j the sum over the
//                     nonzeros of column j (the CSC copy) and a scatter-add into gx; a task
//                     owns its images, so the scatter never races.
//   backward-weight:  for each nonzero (k, j) the 64-long dot product gy[k] . col[j] in 16
//                     partial lanes folded pairwise; each thread sums its tasks into its own
//                     nnz-long partial, and the partials are added in thread order.
// Every loop over the 64 columns has a fixed trip count, so GCC vectorises it (-march=native).
//
// Determinism: each output element is produced by one task with a fixed order; the
// backward-weight partials depend only on the shape and the thread count (static schedule).
// Tests: tests/kernels/test_conv2d_sparse.cpp (against the dense kernels on w * mask).
#include "kernels/sparse/conv2d_sparse.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/check.h"
#include "kernels/sparse/conv2d_sparse_internal.h"

namespace lethe::kernels {

SparsePattern make_sparse_pattern(int64_t rows, int64_t cols, const uint8_t* mask) {
  LETHE_CHECK(rows >= 0 && cols >= 0 && cols < (int64_t{1} << 31) && (mask || rows * cols == 0),
              "make_sparse_pattern: bad arguments (", rows, " x ", cols, ")");
  SparsePattern p;
  p.rows = rows;
  p.cols = cols;
  p.row_ptr.assign(static_cast<size_t>(rows + 1), 0);
  for (int64_t k = 0; k < rows; ++k) {
    for (int64_t j = 0; j < cols; ++j)
      if (mask[k * cols + j]) p.col_idx.push_back(static_cast<int32_t>(j));
    p.row_ptr[static_cast<size_t>(k + 1)] = p.nnz();
  }
  // The transpose by counting sort: rows stay ascending within each column.
  p.t_ptr.assign(static_cast<size_t>(cols + 1), 0);
  for (int32_t j : p.col_idx) ++p.t_ptr[static_cast<size_t>(j) + 1];
  for (int64_t j = 0; j < cols; ++j) p.t_ptr[static_cast<size_t>(j + 1)] += p.t_ptr[static_cast<size_t>(j)];
  p.t_row.resize(p.col_idx.size());
  p.t_src.resize(p.col_idx.size());
  std::vector<int64_t> next(p.t_ptr.begin(), p.t_ptr.end() - 1);
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t i = p.row_ptr[static_cast<size_t>(k)]; i < p.row_ptr[static_cast<size_t>(k + 1)]; ++i) {
      const int64_t dst = next[static_cast<size_t>(p.col_idx[static_cast<size_t>(i)])]++;
      p.t_row[static_cast<size_t>(dst)] = static_cast<int32_t>(k);
      p.t_src[static_cast<size_t>(dst)] = i;
    }
  return p;
}

bool sparse_conv2d_pays_off(const Conv2dShape& s, double density) {
  // Crossover densities read off bench_conv2d_sparse_cpu (forward + both backward products,
  // width-1.0 ResNet-18 shapes, batch 32, 2-core Zen 4; docs/sparse.md), a little on the
  // dense side. The flat stride-1 path wastes more on small images (padding positions), the
  // im2col path pays for building the column block whatever the density.
#if defined(__AVX512F__)
  if (sparse_detail::flat_ok(s)) {
    const int64_t pq = s.P() * s.Q();
    const double limit = pq >= 1024 ? 0.5 : pq >= 256 ? 0.33 : pq >= 64 ? 0.2 : 0.1;
    return density <= limit;
  }
#endif
  return s.K >= 256 && density <= 0.04;
}

namespace {

using sparse_detail::scratch;

constexpr int64_t kTW = 64;           // columns (output positions) per chunk
constexpr int32_t kOff = -(1 << 28);  // input row of a padding column: always out of range

void check_call(const Conv2dShape& s, const SparsePattern& pat, const char* op) {
  LETHE_CHECK(s.N >= 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 &&
                  s.pad >= 0 && s.H + 2 * s.pad >= s.R && s.W + 2 * s.pad >= s.S,
              op, ": bad shape");
  LETHE_CHECK(pat.rows == s.K && pat.cols == s.C * s.R * s.S, op, ": the pattern is ",
              pat.rows, " x ", pat.cols, " but the weight is ", s.K, " x ", s.C * s.R * s.S);
}

/// Images per task: one when an image fills a chunk, else enough to fill one.
int64_t images_per_task(const Conv2dShape& s) {
  const int64_t pq = s.P() * s.Q();
  return pq >= kTW ? 1 : std::min<int64_t>(std::max<int64_t>(s.N, 1), (kTW + pq - 1) / pq);
}

/// Where each of a chunk's columns comes from and goes to.
struct Chunk {
  int64_t count = 0;      // valid columns; the rest are zero padding
  int64_t img[kTW];       // n * C*H*W: the input image of the column
  int32_t ih0[kTW];       // p*stride - pad (kOff for padding columns)
  int32_t iw0[kTW];       // q*stride - pad
  int64_t out[kTW];       // n * K*P*Q + p*Q + q: the output position (channel 0)
};

/// Columns [u0, u0 + count) of the task whose first image is n0.
void make_chunk(const Conv2dShape& s, int64_t n0, int64_t u0, int64_t count, Chunk* c) {
  const int64_t Q = s.Q(), PQ = s.P() * Q;
  c->count = count;
  for (int64_t t = 0; t < kTW; ++t) {
    if (t < count) {
      const int64_t u = u0 + t, n = n0 + u / PQ, pq = u % PQ;
      c->img[t] = n * s.C * s.H * s.W;
      c->ih0[t] = static_cast<int32_t>((pq / Q) * s.stride - s.pad);
      c->iw0[t] = static_cast<int32_t>((pq % Q) * s.stride - s.pad);
      c->out[t] = n * s.K * PQ + pq;
    } else {
      c->img[t] = 0;
      c->ih0[t] = kOff;
      c->iw0[t] = kOff;
      c->out[t] = 0;
    }
  }
}

/// col[j * kTW + t] = the input pixel tap j reads for column t (0 outside the image).
template <typename T>
void build_col(const Conv2dShape& s, const T* x, const Chunk& c, T* col) {
  const int64_t HW = s.H * s.W;
  const uint32_t H = static_cast<uint32_t>(s.H), W = static_cast<uint32_t>(s.W);
  for (int64_t ch = 0; ch < s.C; ++ch)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t q = 0; q < s.S; ++q) {
        T* row = col + ((ch * s.R + r) * s.S + q) * kTW;
        const T* xc = x + ch * HW;
        for (int64_t t = 0; t < kTW; ++t) {
          const int32_t ih = c.ih0[t] + static_cast<int32_t>(r);
          const int32_t iw = c.iw0[t] + static_cast<int32_t>(q);
          const bool in = static_cast<uint32_t>(ih) < H && static_cast<uint32_t>(iw) < W;
          row[t] = in ? xc[c.img[t] + ih * s.W + iw] : T(0);
        }
      }
}

/// gyc[k * kTW + t] = gy at channel k of column t (0 for padding columns).
template <typename T>
void gather_gy(const Conv2dShape& s, const T* gy, const Chunk& c, T* gyc) {
  const int64_t PQ = s.P() * s.Q();
  for (int64_t k = 0; k < s.K; ++k) {
    T* row = gyc + k * kTW;
    for (int64_t t = 0; t < kTW; ++t) row[t] = t < c.count ? gy[c.out[t] + k * PQ] : T(0);
  }
}

/// vals[i] = w at the i-th nonzero (CSR order).
template <typename T>
std::vector<T> gather_values(const SparsePattern& pat, const T* w) {
  std::vector<T> v(static_cast<size_t>(pat.nnz()));
  for (int64_t k = 0; k < pat.rows; ++k)
    for (int64_t i = pat.row_ptr[static_cast<size_t>(k)]; i < pat.row_ptr[static_cast<size_t>(k + 1)]; ++i)
      v[static_cast<size_t>(i)] = w[k * pat.cols + pat.col_idx[static_cast<size_t>(i)]];
  return v;
}

}  // namespace

template <typename T>
void sparse_conv2d_forward_cpu(const Conv2dShape& s, const SparsePattern& pat, const T* x,
                               const T* w, const T* bias, T* y) {
  check_call(s, pat, "sparse_conv2d_forward");
  const std::vector<T> vals = gather_values(pat, w);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (sparse_detail::flat_ok(s)) {
      sparse_detail::flat_forward(s, pat, vals.data(), x, bias, y);
      return;
    }
  }
#endif
  const int64_t PQ = s.P() * s.Q(), CRS = pat.cols, g = images_per_task(s);
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n0 = task * g, U = (std::min(s.N, n0 + g) - n0) * PQ;
    T* col = scratch<T>(0, CRS * kTW);
    Chunk c;
    for (int64_t u0 = 0; u0 < U; u0 += kTW) {
      make_chunk(s, n0, u0, std::min(kTW, U - u0), &c);
      build_col(s, x, c, col);
      for (int64_t k = 0; k < s.K; ++k) {
        T acc[kTW];
        const T b0 = bias ? bias[k] : T(0);
        for (int64_t t = 0; t < kTW; ++t) acc[t] = b0;
        for (int64_t i = pat.row_ptr[static_cast<size_t>(k)]; i < pat.row_ptr[static_cast<size_t>(k + 1)]; ++i) {
          const T wv = vals[static_cast<size_t>(i)];
          const T* cr = col + static_cast<int64_t>(pat.col_idx[static_cast<size_t>(i)]) * kTW;
          for (int64_t t = 0; t < kTW; ++t) acc[t] += wv * cr[t];
        }
        T* yk = y + k * PQ;
        for (int64_t t = 0; t < c.count; ++t) yk[c.out[t]] = acc[t];
      }
    }
  }
}

namespace {

/// The im2col path's backward-data (any shape, float and double).
template <typename T>
void generic_backward_data(const Conv2dShape& s, const SparsePattern& pat, const std::vector<T>& vals,
                           const T* gy, T* gx) {
  std::vector<T> tvals(vals.size());  // values in the transposed order
  for (size_t e = 0; e < tvals.size(); ++e) tvals[e] = vals[static_cast<size_t>(pat.t_src[e])];
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W, g = images_per_task(s);
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
  const uint32_t H = static_cast<uint32_t>(s.H), W = static_cast<uint32_t>(s.W);
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n0 = task * g, n1 = std::min(s.N, n0 + g), U = (n1 - n0) * PQ;
    std::memset(gx + n0 * s.C * HW, 0, static_cast<size_t>((n1 - n0) * s.C * HW) * sizeof(T));
    T* gyc = scratch<T>(1, s.K * kTW);
    Chunk c;
    for (int64_t u0 = 0; u0 < U; u0 += kTW) {
      make_chunk(s, n0, u0, std::min(kTW, U - u0), &c);
      gather_gy(s, gy, c, gyc);
      for (int64_t j = 0; j < pat.cols; ++j) {
        const int64_t e0 = pat.t_ptr[static_cast<size_t>(j)], e1 = pat.t_ptr[static_cast<size_t>(j + 1)];
        if (e0 == e1) continue;
        T acc[kTW] = {};
        for (int64_t e = e0; e < e1; ++e) {
          const T wv = tvals[static_cast<size_t>(e)];
          const T* gr = gyc + static_cast<int64_t>(pat.t_row[static_cast<size_t>(e)]) * kTW;
          for (int64_t t = 0; t < kTW; ++t) acc[t] += wv * gr[t];
        }
        const int64_t ch = j / (s.R * s.S), r = (j / s.S) % s.R, q = j % s.S;
        T* gxc = gx + ch * HW;
        for (int64_t t = 0; t < c.count; ++t) {
          const int32_t ih = c.ih0[t] + static_cast<int32_t>(r);
          const int32_t iw = c.iw0[t] + static_cast<int32_t>(q);
          if (static_cast<uint32_t>(ih) < H && static_cast<uint32_t>(iw) < W)
            gxc[c.img[t] + ih * s.W + iw] += acc[t];
        }
      }
    }
  }
}

/// The im2col path's backward-weight: each thread's share into partial[thread * nnz + i].
template <typename T>
void generic_backward_weight(const Conv2dShape& s, const SparsePattern& pat, const T* x,
                             const T* gy, T* partial, int nthreads) {
  const int64_t PQ = s.P() * s.Q(), CRS = pat.cols, nnz = pat.nnz(), g = images_per_task(s);
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
#pragma omp parallel num_threads(nthreads)
  {
    T* part = partial + omp_get_thread_num() * nnz;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t n0 = task * g, U = (std::min(s.N, n0 + g) - n0) * PQ;
      T* col = scratch<T>(0, CRS * kTW);
      T* gyc = scratch<T>(1, s.K * kTW);
      Chunk c;
      for (int64_t u0 = 0; u0 < U; u0 += kTW) {
        make_chunk(s, n0, u0, std::min(kTW, U - u0), &c);
        build_col(s, x, c, col);
        gather_gy(s, gy, c, gyc);
        for (int64_t k = 0; k < s.K; ++k) {
          const T* gr = gyc + k * kTW;
          for (int64_t i = pat.row_ptr[static_cast<size_t>(k)]; i < pat.row_ptr[static_cast<size_t>(k + 1)]; ++i) {
            const T* cr = col + static_cast<int64_t>(pat.col_idx[static_cast<size_t>(i)]) * kTW;
            // 16 independent lanes (one vector register for float), folded pairwise.
            T lanes[16] = {};
            for (int64_t t = 0; t < kTW; t += 16)
              for (int l = 0; l < 16; ++l) lanes[l] += gr[t + l] * cr[t + l];
            for (int width = 8; width > 0; width /= 2)
              for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
            part[i] += lanes[0];
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void sparse_conv2d_backward_cpu(const Conv2dShape& s, const SparsePattern& pat, const T* x,
                                const T* gy, const T* w, T* gx, T* gw, T* gb) {
  check_call(s, pat, "sparse_conv2d_backward");
  const int64_t PQ = s.P() * s.Q(), CRS = pat.cols, nnz = pat.nnz();
  const int nthreads = omp_get_max_threads();
  const std::vector<T> vals = gx ? gather_values(pat, w) : std::vector<T>{};
  std::vector<T> partial(gw ? static_cast<size_t>(nthreads * nnz) : 0, T(0));
  bool done = false;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (sparse_detail::flat_ok(s) && (gx || gw)) {
      sparse_detail::flat_backward(s, pat, vals.data(), x, gy, gx, gw ? partial.data() : nullptr,
                                   nthreads);
      done = true;
    }
  }
#endif
  if (!done) {
    if (gx) generic_backward_data(s, pat, vals, gy, gx);
    if (gw) generic_backward_weight(s, pat, x, gy, partial.data(), nthreads);
  }
  if (gw) {
    // Partials added in thread order: the result depends only on the shape and thread count.
    // Rows are independent, so the dense gw is zeroed and filled in parallel.
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < s.K; ++k) {
      T* row = gw + k * CRS;
      std::memset(row, 0, static_cast<size_t>(CRS) * sizeof(T));
      for (int64_t i = pat.row_ptr[static_cast<size_t>(k)]; i < pat.row_ptr[static_cast<size_t>(k + 1)]; ++i) {
        T v = 0;
        for (int th = 0; th < nthreads; ++th) v += partial[static_cast<size_t>(th * nnz + i)];
        row[pat.col_idx[static_cast<size_t>(i)]] = v;
      }
    }
  }
  if (gb) {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < s.K; ++k) {
      T lanes[16] = {};
      for (int64_t n = 0; n < s.N; ++n) {
        const T* gk = gy + (n * s.K + k) * PQ;
        for (int64_t u = 0; u < PQ; ++u) lanes[u % 16] += gk[u];
      }
      for (int width = 8; width > 0; width /= 2)
        for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
      gb[k] = lanes[0];
    }
  }
}

template <typename T>
void sparse_conv2d_backward_data_cpu(const Conv2dShape& s, const SparsePattern& pat,
                                     const T* gy, const T* w, T* gx) {
  sparse_conv2d_backward_cpu<T>(s, pat, nullptr, gy, w, gx, nullptr, nullptr);
}

template <typename T>
void sparse_conv2d_backward_weight_cpu(const Conv2dShape& s, const SparsePattern& pat,
                                       const T* x, const T* gy, T* gw, T* gb) {
  sparse_conv2d_backward_cpu<T>(s, pat, x, gy, nullptr, nullptr, gw, gb);
}

#define LETHE_SPARSE_CONV_INSTANTIATE(T)                                                      \
  template void sparse_conv2d_forward_cpu<T>(const Conv2dShape&, const SparsePattern&,       \
                                             const T*, const T*, const T*, T*);              \
  template void sparse_conv2d_backward_data_cpu<T>(const Conv2dShape&, const SparsePattern&, \
                                                   const T*, const T*, T*);                  \
  template void sparse_conv2d_backward_weight_cpu<T>(const Conv2dShape&, const SparsePattern&, \
                                                     const T*, const T*, T*, T*);            \
  template void sparse_conv2d_backward_cpu<T>(const Conv2dShape&, const SparsePattern&,      \
                                              const T*, const T*, const T*, T*, T*, T*);
LETHE_SPARSE_CONV_INSTANTIATE(float)
LETHE_SPARSE_CONV_INSTANTIATE(double)
#undef LETHE_SPARSE_CONV_INSTANTIATE

}  // namespace lethe::kernels
