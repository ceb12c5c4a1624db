// conv2d on the CPU, the fast path: entry points and the generic implementation. Formulas
// in kernels/conv2d.h; layouts x NCHW, w KCRS (a K x CRS matrix), y NKPQ. With col =
// im2col(x[n]), the CRS x PQ matrix whose row (c,r,s) holds the input pixel that tap (c,r,s)
// reads for every output position:
//   forward:          y[n] (K x PQ)   = w (K x CRS) * col[n] (CRS x PQ)  (+ b[k])
//   backward-data:    gcol (CRS x PQ) = w^T (CRS x K) * gy[n] (K x PQ);  gx[n] = col2im(gcol)
//   backward-weight:  gw (K x CRS)    = sum_n gy[n] (K x PQ) * col[n]^T (PQ x CRS)
//
// Work split. The GEMM columns (output positions) are cut into tiles of a few hundred
// (conv2d_internal.h); each OpenMP thread takes whole tiles and runs single-threaded GEMMs on
// them, the im2col block staying in that core's cache. Measured on the 2-core Zen 4 machine,
// two independent 1-thread GEMMs beat one 2-thread GEMM on every ResNet-18 shape. A tile is a
// band of one image's output rows when an image has enough positions, else several whole
// images side by side (the 8x8 and 4x4 layers), so the GEMM stays wide and the weights reused.
//
// Two implementations of that plan:
//   - conv2d_avx512.cpp: float, when Q == ceil(W/stride) and PQ % 16 == 0 (every ResNet-18
//     layer; backward-weight only for filters larger than 1x1): masked-load im2col straight
//     into packed panels and an 8x32 AVX-512 micro-kernel, see the header comment there.
//     On the ResNet-18 shapes it reaches 60-90% of peak where this generic path reaches
//     40-65% (docs/benchmarks-cpu.md).
//   - here, any shape, float and double: scalar im2col / col2im and gemm_cpu (OpenBLAS). 1x1
//     stride-1 unpadded convolutions skip im2col (x[n] is the column matrix); a 1x1 stride-2
//     shortcut's im2col is a strided gather.
//
// Determinism: every output element comes from one tile with a fixed summation order, and the
// tile plan depends only on the shape and thread count. The generic backward-weight sums over
// tiles: each thread accumulates a fixed contiguous range of tiles into its own K x CRS
// partial, and the partials are added in thread order. Every output is overwritten, never
// accumulated into.
// Tests: tests/kernels/test_conv2d.cpp; benchmark: bench/bench_conv2d_cpu.cpp, results in
// docs/benchmarks-cpu.md.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_internal.h"
#include "kernels/gemm.h"

namespace lethe::kernels {

namespace {

using namespace conv2d_detail;  // NOLINT: this file's own internals

void check_shape(const Conv2dShape& s, const char* op) {
  LETHE_CHECK(s.N >= 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 &&
                  s.pad >= 0 && s.H + 2 * s.pad >= s.R && s.W + 2 * s.pad >= s.S,
              op, ": bad shape N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K,
              " R=", s.R, " S=", s.S, " stride=", s.stride, " pad=", s.pad);
}

// x[n] is already the CRS x PQ column matrix: no im2col needed.
bool is_pointwise(const Conv2dShape& s) {
  return s.R == 1 && s.S == 1 && s.stride == 1 && s.pad == 0;
}

// ---- generic path: scalar im2col + gemm_cpu ----------------------------------------------

// GEMM columns per tile for OpenBLAS: about 512 keeps its micro-kernel streaming and the
// packed weights reused; fewer for deep filters so the CRS x cols block stays near 2.5 MiB.
int64_t generic_target(int64_t crs, int64_t elem_bytes) {
  return std::clamp<int64_t>((int64_t{5} << 19) / (crs * elem_bytes), 128, 512);
}

// im2col of output rows [p0, p1) of one image: col row (c,r,s), column (p-p0)*Q + q holds
// x[c, p*stride + r - pad, q*stride + s - pad], or 0 in the padding. ld = col row stride.
template <typename T>
void im2col(const Conv2dShape& s, const T* x /* C*H*W */, int64_t p0, int64_t p1, T* col,
            int64_t ld) {
  const int64_t Q = s.Q(), st = s.stride;
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t t = 0; t < s.S; ++t) {
        T* dst = col + ((c * s.R + r) * s.S + t) * ld;
        // Output columns whose input column q*st + t - pad is inside [0, W): [q_lo, q_hi).
        const int64_t q_lo = std::min(Q, ceil_div(std::max<int64_t>(0, s.pad - t), st));
        const int64_t q_hi = std::max(q_lo, std::min(Q, ceil_div(s.W + s.pad - t, st)));
        for (int64_t p = p0; p < p1; ++p, dst += Q) {
          const int64_t h = p * st + r - s.pad;
          if (h < 0 || h >= s.H) {  // a whole padding row
            std::fill(dst, dst + Q, T(0));
            continue;
          }
          const T* src = x + (c * s.H + h) * s.W + t - s.pad;  // src[q*st] is column q
          std::fill(dst, dst + q_lo, T(0));
          for (int64_t q = q_lo; q < q_hi; ++q) dst[q] = src[q * st];
          std::fill(dst + q_hi, dst + Q, T(0));
        }
      }
}

// col2im of one whole image, the adjoint of im2col: gx[c,h,w] = sum of the col entries that
// im2col copied from (c,h,w). The plane is zeroed, then each tap row is added in (r,s) order:
// a fixed order, so the sums are deterministic.
template <typename T>
void col2im(const Conv2dShape& s, const T* col, int64_t ld, T* gx /* C*H*W */) {
  const int64_t P = s.P(), Q = s.Q(), st = s.stride;
  std::fill(gx, gx + s.C * s.H * s.W, T(0));
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t t = 0; t < s.S; ++t) {
        const T* src = col + ((c * s.R + r) * s.S + t) * ld;
        const int64_t q_lo = std::min(Q, ceil_div(std::max<int64_t>(0, s.pad - t), st));
        const int64_t q_hi = std::max(q_lo, std::min(Q, ceil_div(s.W + s.pad - t, st)));
        for (int64_t p = 0; p < P; ++p, src += Q) {
          const int64_t h = p * st + r - s.pad;
          if (h < 0 || h >= s.H) continue;
          T* dst = gx + (c * s.H + h) * s.W + t - s.pad;
          for (int64_t q = q_lo; q < q_hi; ++q) dst[q * st] += src[q];
        }
      }
}

// Images [n0, n1) of an N x K x PQ tensor side by side as one K x ((n1-n0)*PQ) matrix.
template <typename T>
void gather_images(const T* src, int64_t K, int64_t PQ, int64_t n0, int64_t n1, T* dst) {
  const int64_t ld = (n1 - n0) * PQ;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t k = 0; k < K; ++k)
      std::memcpy(dst + k * ld + (n - n0) * PQ, src + (n * K + k) * PQ,
                  static_cast<size_t>(PQ) * sizeof(T));
}

// The CRS x cols column block of a tile of output rows; returns it and its row stride. For a
// pointwise tile inside one image it is x itself.
template <typename T>
const T* generic_columns(const Conv2dShape& s, const Tile& t, const T* x, int64_t* ld) {
  const int64_t Q = s.Q(), PQ = s.P() * Q, CHW = s.C * s.H * s.W, crs = s.C * s.R * s.S;
  if (t.n1 - t.n0 == 1 && is_pointwise(s)) {
    *ld = PQ;
    return x + t.n0 * CHW + t.u0 * Q;
  }
  const int64_t cols = t.n1 - t.n0 == 1 ? (t.u1 - t.u0) * Q : (t.n1 - t.n0) * PQ;
  T* col = workspace<T>(kCol, crs * cols);
  for (int64_t n = t.n0; n < t.n1; ++n)
    im2col(s, x + n * CHW, t.u0, t.u1, col + (n - t.n0) * PQ, cols);
  *ld = cols;
  return col;
}

template <typename T>
void generic_forward_tile(const Conv2dShape& s, const Tile& t, const T* x, const T* w,
                          const T* bias, T* y) {
  const int64_t K = s.K, Q = s.Q(), PQ = s.P() * Q, crs = s.C * s.R * s.S;
  int64_t ldb = 0;
  const T* colm = generic_columns(s, t, x, &ldb);
  if (t.n1 - t.n0 == 1) {
    // One image: the GEMM writes its band of y[n] directly (row stride PQ).
    const int64_t cols = (t.u1 - t.u0) * Q;
    T* yt = y + t.n0 * K * PQ + t.u0 * Q;
    gemm_cpu<T>(false, false, K, cols, crs, T(1), w, crs, colm, ldb, T(0), yt, PQ);
    if (bias != nullptr)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < cols; ++i) yt[k * PQ + i] += bias[k];
    return;
  }
  // Several images: K x (images*PQ) result in scratch, then scattered to NKPQ with the bias.
  const int64_t cols = (t.n1 - t.n0) * PQ;
  T* out = workspace<T>(kOut, K * cols);
  gemm_cpu<T>(false, false, K, cols, crs, T(1), w, crs, colm, ldb, T(0), out, cols);
  for (int64_t n = t.n0; n < t.n1; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const T* src = out + k * cols + (n - t.n0) * PQ;
      T* dst = y + (n * K + k) * PQ;
      const T b = bias != nullptr ? bias[k] : T(0);
      for (int64_t i = 0; i < PQ; ++i) dst[i] = src[i] + b;
    }
}

template <typename T>
void generic_backward_data_tile(const Conv2dShape& s, const Tile& t, const T* gy, const T* w,
                                T* gx) {
  const int64_t K = s.K, PQ = s.P() * s.Q(), CHW = s.C * s.H * s.W, crs = s.C * s.R * s.S;
  const int64_t cols = (t.n1 - t.n0) * PQ;
  // The GEMM's right operand: gy[n] itself for one image, else the images side by side.
  const T* gyt = gy + t.n0 * K * PQ;
  if (t.n1 - t.n0 > 1) {
    T* g = workspace<T>(kGather, K * cols);
    gather_images(gy, K, PQ, t.n0, t.n1, g);
    gyt = g;
  }
  if (t.n1 - t.n0 == 1 && is_pointwise(s)) {  // gx[n] = w^T gy[n], no col2im
    gemm_cpu<T>(true, false, s.C, PQ, K, T(1), w, s.C, gyt, PQ, T(0), gx + t.n0 * CHW, PQ);
    return;
  }
  T* gcol = workspace<T>(kCol, crs * cols);
  gemm_cpu<T>(true, false, crs, cols, K, T(1), w, crs, gyt, cols, T(0), gcol, cols);
  for (int64_t n = t.n0; n < t.n1; ++n) col2im(s, gcol + (n - t.n0) * PQ, cols, gx + n * CHW);
}

// backward-weight: tiles as for forward; each thread sums its own range of tiles.
template <typename T>
void generic_backward_weight(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb) {
  const TilePlan plan = plan_tiles(s.N, s.P(), s.Q(), generic_target(s.C * s.R * s.S, sizeof(T)),
                                   omp_get_max_threads(), false);
  const int64_t K = s.K, PQ = s.P() * s.Q(), crs = s.C * s.R * s.S;
  // Partial sums of threads 1.. live in the calling thread's buffer; thread 0 sums into gw.
  T* partials = workspace<T>(kPartial, std::max(1, omp_get_max_threads() - 1) * K * crs);
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    // A fixed contiguous range of tiles per thread: the summation order depends only on the
    // thread count, never on timing.
    const int64_t i0 = plan.count * id / nt, i1 = plan.count * (id + 1) / nt;
    T* acc = id == 0 ? gw : partials + (id - 1) * K * crs;
    if (i0 == i1) std::fill(acc, acc + K * crs, T(0));
    for (int64_t i = i0; i < i1; ++i) {
      const Tile t = plan.tile(i, s.N);
      int64_t ldc = 0;
      const T* colm = generic_columns(s, t, x, &ldc);
      // gy of the tile as a K x cols matrix: in place for one image, else gathered.
      const T* gyt = gy + t.n0 * K * PQ + t.u0 * s.Q();
      int64_t lda = PQ, cols = (t.u1 - t.u0) * s.Q();
      if (t.n1 - t.n0 > 1) {
        cols = (t.n1 - t.n0) * PQ;
        T* g = workspace<T>(kGather, K * cols);
        gather_images(gy, K, PQ, t.n0, t.n1, g);
        gyt = g;
        lda = cols;
      }
      gemm_cpu<T>(false, true, K, crs, cols, T(1), gyt, lda, colm, ldc, i == i0 ? T(0) : T(1),
                  acc, crs);
    }
#pragma omp barrier
    // Fixed-order combine, split by element: gw += partial[1] + partial[2] + ...
#pragma omp for schedule(static)
    for (int64_t e = 0; e < K * crs; ++e)
      for (int j = 1; j < nt; ++j) gw[e] += partials[(j - 1) * K * crs + e];
    if (gb != nullptr) bias_gradient(s, gy, gb);
  }
}

}  // namespace

template <typename T>
void conv2d_forward_cpu(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s, "conv2d_forward_cpu");
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (conv2d_detail::flat_ok(s)) return conv2d_detail::flat_forward(s, x, w, bias, y);
#endif
  const TilePlan plan = plan_tiles(s.N, s.P(), s.Q(), generic_target(s.C * s.R * s.S, sizeof(T)),
                                   omp_get_max_threads(), false);
  // Tiles are independent (disjoint outputs), so any thread may take any tile.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < plan.count; ++i)
    generic_forward_tile(s, plan.tile(i, s.N), x, w, bias, y);
}

template <typename T>
void conv2d_backward_data_cpu(const Conv2dShape& s, const T* gy, const T* w, T* gx) {
  check_shape(s, "conv2d_backward_data_cpu");
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // Stride 1 and few output channels: backward-data is the forward convolution of gy with
    // the flipped, transposed filter w'[c,k,r,s] = w[k,c,R-1-r,S-1-s] and padding R-1-pad,
    // whose GEMM reduces over K*R*S instead of K alone. flat_backward_data's K-deep GEMM is
    // mostly micro-kernel set-up when K is small; through the forward kernel the width-0.25
    // layers (K = 16, 32, 64) ran 1.25-1.4x faster, width 1.0's K = 64 the same, K >= 128
    // slower (bench_conv2d_cpu, 2026-11-27, docs/benchmarks-cpu.md). C >= 8: the forward
    // kernel's 8-row panels (the stem's C = 3 ran 3x slower).
    Conv2dShape t = s;
    t.C = s.K, t.K = s.C, t.H = s.P(), t.W = s.Q(), t.pad = s.R - 1 - s.pad;
    if (s.stride == 1 && s.R == s.S && s.pad <= s.R - 1 && s.K <= 64 && s.C >= 8 &&
        conv2d_detail::flat_ok(t)) {
      const int64_t rs = s.R * s.S;
      float* wf = conv2d_detail::workspace<float>(conv2d_detail::kFlipped, s.K * s.C * rs);
      for (int64_t k = 0; k < s.K; ++k)
        for (int64_t c = 0; c < s.C; ++c)
          for (int64_t i = 0; i < rs; ++i)  // tap i = r*S + s -> (R-1-r)*S + (S-1-s)
            wf[(c * s.K + k) * rs + (rs - 1 - i)] = w[(k * s.C + c) * rs + i];
      return conv2d_detail::flat_forward(t, gy, wf, nullptr, gx);
    }
    if (conv2d_detail::flat_ok(s)) return conv2d_detail::flat_backward_data(s, gy, w, gx);
  }
#endif
  const TilePlan plan = plan_tiles(s.N, s.P(), s.Q(), generic_target(s.C * s.R * s.S, sizeof(T)),
                                   omp_get_max_threads(), true);
  // Whole-image tiles: each gx[n] is written by one tile only.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < plan.count; ++i)
    generic_backward_data_tile(s, plan.tile(i, s.N), gy, w, gx);
}

template <typename T>
void conv2d_backward_weight_cpu(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb) {
  check_shape(s, "conv2d_backward_weight_cpu");
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (conv2d_detail::flat_weight_ok(s, omp_get_max_threads()))
      return conv2d_detail::flat_backward_weight(s, x, gy, gw, gb);
#endif
  generic_backward_weight(s, x, gy, gw, gb);
}

#define LETHE_CONV2D_CPU(T)                                                                  \
  template void conv2d_forward_cpu<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data_cpu<T>(const Conv2dShape&, const T*, const T*, T*);     \
  template void conv2d_backward_weight_cpu<T>(const Conv2dShape&, const T*, const T*, T*, T*);
LETHE_CONV2D_CPU(float)
LETHE_CONV2D_CPU(double)
#undef LETHE_CONV2D_CPU

}  // namespace lethe::kernels
