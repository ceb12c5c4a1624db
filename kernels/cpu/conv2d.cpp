// conv2d on the CPU, the fast path. Formulas in kernels/conv2d.h; layouts x NCHW, w KCRS (a
// K x CRS matrix), y NKPQ. With col = im2col(x[n]), the CRS x PQ matrix whose row (c,r,s)
// holds the input pixel that tap (c,r,s) reads for every output position:
//   forward:          y[n] (K x PQ)  = w (K x CRS) * col[n] (CRS x PQ)  (+ b[k])
//   backward-data:    gcol (CRS x PQ) = w^T (CRS x K) * gy[n] (K x PQ);  gx[n] = col2im(gcol)
//   backward-weight:  gw (K x CRS)   = sum_n gy[n] (K x PQ) * col[n]^T (PQ x CRS)
//
// Work split. The GEMM columns (output positions) are cut into tiles of a few hundred; each
// OpenMP thread takes whole tiles and runs single-threaded GEMMs on them, the im2col block
// staying in that core's cache (measured on the 2-core Zen 4 machine: two independent 1-thread
// GEMMs beat one 2-thread GEMM on every ResNet-18 shape). A tile is a band of one image's
// output positions when an image has enough of them, else several whole images side by side
// (the 8x8 and 4x4 layers), so that the GEMM stays wide and the weights are reused.
//
// Two implementations of the same plan:
//   - AVX-512, float (the shapes where Q == ceil(W/stride) and PQ % 16 == 0: every ResNet
//     layer). The weights are packed once per call into 8-row panels shared by the threads;
//     im2col is done by masked 16-lane loads straight into 32-column panels ("flat" im2col:
//     x is first split into stride x stride phase planes, after which the pixel a tap reads
//     for output i = p*Q + q is at i + const, padding lanes masked off); an 8x32 register-tile
//     micro-kernel writes y (with the bias) directly. backward-data packs w^T and gy the same
//     way and adds each 8-row strip of gcol into gx at once (col2im by masked adds);
//     backward-weight uses the flat im2col with OpenBLAS, which does the transposes it needs.
//     Gathers are avoided on purpose: on Zen 4 a 16-lane gather costs ~2 cycles per element,
//     a masked load ~0.35.
//   - Generic, any shape and float/double: scalar im2col / col2im and gemm_cpu (OpenBLAS).
// 1x1 stride-1 unpadded convolutions skip im2col on the generic path (x[n] is the column
// matrix); a 1x1 stride-2 shortcut is a strided gather (generic) or one phase plane (AVX-512).
//
// Determinism: every output element is produced by one tile with a fixed summation order, and
// the tile plan depends only on the shape and thread count. backward-weight sums over tiles:
// each thread accumulates a fixed contiguous range of tiles into its own K x CRS partial, and
// the partials are added in thread order. Workspace (packed operands, im2col blocks, phase
// planes, partials) lives in thread_local buffers that grow to the largest shape seen.
// Tests: tests/kernels/test_conv2d.cpp; benchmark: bench/bench_conv2d_cpu.cpp, results in
// docs/benchmarks-cpu.md.
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"

namespace lethe::kernels {

namespace {

// ---- workspace ---------------------------------------------------------------------------

// A 64-byte aligned buffer that only grows: aligned so that packed panels load whole lines.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(data_);
      data_ = nullptr;
      cap_ = 0;
      const size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
      cap_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t cap_ = 0;
};

enum Slot { kCol, kGather, kOut, kPartial, kPacked, kPhase, kSlots };

// The calling thread's buffer for one role (float and double calls share it, in bytes).
template <typename T>
T* workspace(Slot slot, int64_t elems) {
  thread_local Workspace ws[kSlots];
  return static_cast<T*>(ws[slot].get(static_cast<size_t>(elems) * sizeof(T)));
}

// ---- shape helpers -----------------------------------------------------------------------

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

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// ---- tiling ------------------------------------------------------------------------------

// A tile: images [n0, n1) and, when n1 == n0 + 1, units [u0, u1) of that image. A unit is an
// output row (generic path) or a chunk of 16 output positions (AVX-512 path).
struct Tile {
  int64_t n0, n1, u0, u1;
};

struct TilePlan {
  int64_t units = 0;      // units per image
  int64_t nb = 1;         // images per tile (> 1 only for small images)
  int64_t per_tile = 0;   // units per tile when nb == 1
  int64_t per_image = 1;  // tiles per image when nb == 1
  int64_t count = 0;      // number of tiles

  Tile tile(int64_t i, int64_t N) const {
    if (nb > 1) return {i * nb, std::min(N, (i + 1) * nb), 0, units};
    const int64_t n = i / per_image, u0 = (i % per_image) * per_tile;
    return {n, n + 1, u0, std::min(units, u0 + per_tile)};
  }
};

// About `target` GEMM columns per tile. whole_images: never split an image (backward-data:
// col2im of one band would write rows that the neighbouring band also writes).
TilePlan plan_tiles(int64_t N, int64_t units, int64_t unit_cols, int64_t target, int nthreads,
                    bool whole_images) {
  TilePlan plan;
  plan.units = units;
  plan.per_tile = units;
  if (N == 0) return plan;  // nothing to do: count 0
  if (units * unit_cols >= target || N == 1) {
    if (!whole_images) plan.per_tile = std::clamp<int64_t>(target / unit_cols, 1, units);
    plan.per_image = ceil_div(units, plan.per_tile);
    plan.count = N * plan.per_image;
    return plan;
  }
  // Small images: batch them, but leave at least one tile per thread, then even the tiles
  // out (32 images in tiles of 12 would be 12, 12, 8).
  int64_t nb = std::max<int64_t>(1, target / (units * unit_cols));
  nb = std::min(nb, ceil_div(N, nthreads));
  plan.nb = ceil_div(N, ceil_div(N, nb));
  plan.count = ceil_div(N, plan.nb);
  return plan;
}

// ---- generic path: scalar im2col + gemm_cpu ----------------------------------------------

// GEMM columns per tile for OpenBLAS: about 512 keeps its micro-kernel streaming and the
// packed weights reused; fewer for deep filters so the CRS x cols block stays near 2.5 MiB.
int64_t generic_target(int64_t crs, int64_t elem_bytes) {
  static const int64_t wb = getenv("WB") ? atoll(getenv("WB")) : (int64_t{5} << 19);
  return std::clamp<int64_t>(wb / (crs * elem_bytes), 128, 512);
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

// backward-weight over a tile plan, for either path: columns(tile, &ld) returns the tile's
// CRS x cols column block (cols = the tile's output positions, in image-then-position order).
template <typename T, typename Columns>
void backward_weight_tiles(const Conv2dShape& s, const TilePlan& plan, int64_t unit_cols,
                           const T* gy, T* gw, T* gb, const Columns& columns) {
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
      const T* colm = columns(t, &ldc);
      // gy of the tile as a K x cols matrix: in place for one image, else gathered.
      const T* gyt = gy + t.n0 * K * PQ + t.u0 * unit_cols;
      int64_t lda = PQ, cols = (t.u1 - t.u0) * unit_cols;
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
    // Bias gradient: one channel per iteration, summed in image-then-position order.
    if (gb != nullptr) {
#pragma omp for schedule(static)
      for (int64_t k = 0; k < K; ++k) {
        T sum = T(0);
        for (int64_t n = 0; n < s.N; ++n) {
          const T* g = gy + (n * K + k) * PQ;
          T part = T(0);
          for (int64_t i = 0; i < PQ; ++i) part += g[i];
          sum += part;
        }
        gb[k] = sum;
      }
    }
  }
}

#if defined(__AVX512F__)
// ---- AVX-512 float path ------------------------------------------------------------------

constexpr int kMR = 8;   // micro-tile rows: output channels (forward), CRS rows (backward-data)
constexpr int kNR = 32;  // micro-tile columns: two 16-lane vectors of output positions

// Geometry of the flat im2col. With stride st, each channel plane of x is split into st*st
// phase planes of Hp x Wp pixels, phase (a,b) holding x[a + st*u, b + st*v]; for stride 1 the
// single phase plane is x's plane itself. When Wp == Q, the pixel that tap (r,s) reads for
// output position i = p*Q + q is element i + off[tap] of the channel's phase planes, so 16
// consecutive outputs read 16 consecutive floats: one masked load, the padding lanes masked.
struct Flat {
  int64_t st = 1, Hp = 0, Wp = 0, plane = 0;
  int64_t chan = 0;             // floats per channel: st*st phase planes
  int64_t cpi = 0;              // 16-position chunks per image (PQ / 16)
  std::vector<int64_t> off;     // [tap]: phase * plane + dr * Wp + ds
  std::vector<uint16_t> mask;   // [tap][chunk]: lanes whose pixel is inside the image
  std::vector<char> used;       // [phase]: read by some tap (the others are never built)
};

bool flat_ok(const Conv2dShape& s) {
  return ceil_div(s.W, s.stride) == s.Q() && (s.P() * s.Q()) % 16 == 0;
}

Flat make_flat(const Conv2dShape& s) {
  Flat f;
  const int64_t st = s.stride, Q = s.Q(), PQ = s.P() * Q;
  f.st = st;
  f.Hp = ceil_div(s.H, st);
  f.Wp = ceil_div(s.W, st);
  f.plane = f.Hp * f.Wp;
  f.chan = st * st * f.plane;
  f.cpi = PQ / 16;
  f.off.resize(s.R * s.S);
  f.mask.assign(s.R * s.S * f.cpi, 0);
  f.used.assign(st * st, 0);
  for (int64_t r = 0; r < s.R; ++r)
    for (int64_t t = 0; t < s.S; ++t) {
      // Input row p*st + r - pad = a + st*(p + dr) with phase a in [0, st); likewise columns.
      const int64_t dr = floor_div(r - s.pad, st), a = r - s.pad - st * dr;
      const int64_t ds = floor_div(t - s.pad, st), b = t - s.pad - st * ds;
      const int64_t tap = r * s.S + t;
      f.used[a * st + b] = 1;
      f.off[tap] = (a * st + b) * f.plane + dr * f.Wp + ds;
      for (int64_t i = 0; i < PQ; ++i) {
        const int64_t u = i / Q + dr, v = i % Q + ds;
        if (u >= 0 && u < f.Hp && v >= 0 && v < f.Wp && a + st * u < s.H && b + st * v < s.W)
          f.mask[tap * f.cpi + i / 16] |= static_cast<uint16_t>(1u << (i % 16));
      }
    }
  return f;
}

// Lanes [0, n) of a 16-lane mask, n clamped to [0, 16].
__mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// x[n] (C*H*W) -> its used phase planes (C * chan), pixels beyond the image zero.
void split_phases(const Conv2dShape& s, const Flat& f, const float* x, float* dst) {
  const int64_t st = f.st;
  // Stride 2: 16 outputs are the even lanes of two loads, picked by one permute.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t a = 0; a < st; ++a)
      for (int64_t b = 0; b < st; ++b) {
        if (!f.used[a * st + b]) continue;
        const int64_t vn = std::min(f.Wp, ceil_div(s.W - b, st));  // valid columns
        for (int64_t u = 0; u < f.Hp; ++u) {
          float* d = dst + c * f.chan + (a * st + b) * f.plane + u * f.Wp;
          const int64_t h = a + st * u;
          if (h >= s.H) {
            std::fill(d, d + f.Wp, 0.f);
            continue;
          }
          const float* src = x + (c * s.H + h) * s.W + b;
          int64_t v = 0;
          if (st == 2)  // loads masked to the row, so the last row never reads past x
            for (; v < vn; v += 16) {
              const int64_t left = s.W - b - 2 * v;
              const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(left), src + 2 * v);
              const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(left - 16), src + 2 * v + 16);
              _mm512_mask_storeu_ps(d + v, first_lanes(vn - v),
                                    _mm512_permutex2var_ps(lo, even, hi));
            }
          for (; v < vn; ++v) d[v] = src[v * st];
          std::fill(d + vn, d + f.Wp, 0.f);
        }
      }
}

// The adjoint: phase planes (C * chan) -> gx[n] (C*H*W); pixels no tap reads get 0.
void merge_phases(const Conv2dShape& s, const Flat& f, const float* src, float* gx) {
  const int64_t st = f.st;
  // Stride 2: an output row interleaves two phase rows, 32 outputs from two permutes.
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,
                                           7, 23);
  const __m512i hi_idx = _mm512_add_epi32(lo_idx, _mm512_set1_epi32(8));
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t h = 0; h < s.H; ++h) {
      float* out = gx + (c * s.H + h) * s.W;
      const int64_t a = h % st;
      const float* row = src + c * f.chan + a * st * f.plane + (h / st) * f.Wp;
      if (st == 2) {
        const bool u0 = f.used[a * 2], u1 = f.used[a * 2 + 1];
        for (int64_t w = 0; w < s.W; w += 32) {
          const __mmask16 in_row = first_lanes(f.Wp - w / 2);  // never read past the planes
          const __m512 p0 = u0 ? _mm512_maskz_loadu_ps(in_row, row + w / 2) : _mm512_setzero_ps();
          const __m512 p1 =
              u1 ? _mm512_maskz_loadu_ps(in_row, row + f.plane + w / 2) : _mm512_setzero_ps();
          _mm512_mask_storeu_ps(out + w, first_lanes(s.W - w),
                                _mm512_permutex2var_ps(p0, lo_idx, p1));
          _mm512_mask_storeu_ps(out + w + 16, first_lanes(s.W - w - 16),
                                _mm512_permutex2var_ps(p0, hi_idx, p1));
        }
        continue;
      }
      for (int64_t w = 0; w < s.W; ++w) {
        const int64_t ph = a * st + w % st;
        out[w] = f.used[ph] ? row[(w % st) * f.plane + w / st] : 0.f;
      }
    }
}

// The 16-position chunks of a tile: the phase-plane base of each chunk's image and the
// chunk's index inside its image.
struct Chunks {
  std::vector<const float*> base;  // stride 1: x[n]; else the image's phase planes
  std::vector<int64_t> ci;
  std::vector<int64_t> n;
};

// Lists the chunks of tile t; for stride > 1 splits its images into the kPhase workspace.
Chunks tile_chunks(const Conv2dShape& s, const Flat& f, const Tile& t, const float* x) {
  Chunks ch;
  const int64_t CHW = s.C * s.H * s.W;
  float* phases = f.st > 1 ? workspace<float>(kPhase, (t.n1 - t.n0) * s.C * f.chan) : nullptr;
  for (int64_t n = t.n0; n < t.n1; ++n) {
    const float* base = x + n * CHW;
    if (phases != nullptr) {
      float* dst = phases + (n - t.n0) * s.C * f.chan;
      split_phases(s, f, x + n * CHW, dst);
      base = dst;
    }
    for (int64_t u = t.u0; u < t.u1; ++u) {
      ch.base.push_back(base + u * 16);
      ch.ci.push_back(u);
      ch.n.push_back(n);
    }
  }
  return ch;
}

// Flat im2col of the tile's chunks: row kk, chunk u goes to
// dst + (u/2) * panel_stride + kk * row_stride + (u%2) * 16. The AVX-512 GEMM wants 32-wide
// panels (panel_stride = CRS*32, row_stride = 32, an odd chunk count padded with zeros);
// OpenBLAS a plain CRS x cols matrix (panel_stride = 32, row_stride = cols).
void flat_columns(const Conv2dShape& s, const Flat& f, const Chunks& ch, float* dst,
                  int64_t panel_stride, int64_t row_stride, bool pad_panel) {
  const int64_t nch = static_cast<int64_t>(ch.ci.size()), rs = s.R * s.S;
  for (int64_t kk = 0; kk < s.C * rs; ++kk) {
    const int64_t c = kk / rs, tap = kk % rs;
    const int64_t src_off = c * f.chan + f.off[tap];
    const uint16_t* mask = f.mask.data() + tap * f.cpi;
    float* row = dst + kk * row_stride;
    for (int64_t u = 0; u < nch; ++u) {
      // Masked-off lanes may point outside the planes; AVX-512 suppresses their faults.
      const __m512 v = _mm512_maskz_loadu_ps(mask[ch.ci[u]], ch.base[u] + src_off);
      _mm512_storeu_ps(row + (u / 2) * panel_stride + (u % 2) * 16, v);
    }
    if (pad_panel && nch % 2 == 1)
      _mm512_storeu_ps(row + (nch / 2) * panel_stride + 16, _mm512_setzero_ps());
  }
}

// Panel i of a rows x cols matrix m for the micro-kernel's A operand: dst[k*8 + j] =
// m[(i*8 + j) * cols + k] (transposed: false) or m[k * rows + i*8 + j] (true: panel of m^T,
// m stored cols x rows); rows past the end are zero.
void pack_a(const float* m, int64_t rows, int64_t cols, bool transposed, int64_t i,
            float* dst) {
  for (int64_t k = 0; k < cols; ++k)
    for (int64_t j = 0; j < kMR; ++j) {
      const int64_t r = i * kMR + j;
      dst[k * kMR + j] = r >= rows ? 0.f : transposed ? m[k * rows + r] : m[r * cols + k];
    }
}

// The register-tile kernel: for rows j < mr and the two 16-lane column vectors v with
// out[v] != nullptr, out[v][j*ldc + l] = init[j] + sum_k A[k*8 + j] * B[k*32 + 16v + l].
// A 8 x 32 tile is 16 zmm accumulators: per k, 2 vector loads and 8 broadcasts feed 16 FMAs.
inline void micro_kernel(int64_t kc, const float* A, const float* B, const float* init,
                         float* const out[2], int64_t ldc, int mr) {
  __m512 acc[kMR][2];
  for (int j = 0; j < kMR; ++j) {
    const __m512 v = _mm512_set1_ps(init != nullptr && j < mr ? init[j] : 0.f);
    acc[j][0] = v;
    acc[j][1] = v;
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(B + k * kNR), b1 = _mm512_load_ps(B + k * kNR + 16);
    for (int j = 0; j < kMR; ++j) {
      const __m512 a = _mm512_set1_ps(A[k * kMR + j]);
      acc[j][0] = _mm512_fmadd_ps(a, b0, acc[j][0]);
      acc[j][1] = _mm512_fmadd_ps(a, b1, acc[j][1]);
    }
  }
  // Constant indices only (the loops unroll), so acc stays in registers.
  for (int j = 0; j < kMR; ++j)
    for (int v = 0; v < 2; ++v)
      if (j < mr && out[v] != nullptr) _mm512_storeu_ps(out[v] + j * ldc, acc[j][v]);
}

// Packs the 8-row panels of m (or m^T) into the kPacked workspace of the calling thread, in
// parallel; returns it. Called inside a parallel region by every thread (ends in a barrier).
float* pack_a_panels(float* packed, const float* m, int64_t rows, int64_t cols,
                     bool transposed) {
  const int64_t panels = ceil_div(rows, kMR);
#pragma omp for schedule(static)
  for (int64_t i = 0; i < panels; ++i)
    pack_a(m, rows, cols, transposed, i, packed + i * cols * kMR);
  return packed;
}

// Columns per tile: the CRS x cols panel block near 768 KiB (within the 1 MiB L2), 64..512.
int64_t flat_target(int64_t crs) {
  static const int64_t fb = getenv("FB") ? atoll(getenv("FB")) : (int64_t{3} << 18);
  static const int64_t fmax = getenv("FMAX") ? atoll(getenv("FMAX")) : 512;
  return std::clamp<int64_t>(fb / (crs * 4), 64, fmax) / 32 * 32;
}

void flat_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  float* y) {
  const Flat f = make_flat(s);
  const int64_t K = s.K, PQ = s.P() * s.Q(), crs = s.C * s.R * s.S;
  float* packed = workspace<float>(kPacked, ceil_div(K, kMR) * crs * kMR);
  const TilePlan plan =
      plan_tiles(s.N, f.cpi, 16, flat_target(crs), omp_get_max_threads(), false);
#pragma omp parallel
  {
    const float* ap = pack_a_panels(packed, w, K, crs, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < plan.count; ++ti) {
      const Chunks ch = tile_chunks(s, f, plan.tile(ti, s.N), x);
      const int64_t nch = static_cast<int64_t>(ch.ci.size()), npanels = ceil_div(nch, 2);
      float* bp = workspace<float>(kCol, npanels * crs * kNR);
      flat_columns(s, f, ch, bp, crs * kNR, kNR, true);
      // A panel (8 channels x CRS) stays in L1/L2 while the tile's B panels stream past it.
      for (int64_t i = 0; i < ceil_div(K, kMR); ++i)
        for (int64_t j = 0; j < npanels; ++j) {
          float* out[2] = {nullptr, nullptr};
          for (int v = 0; v < 2; ++v) {
            const int64_t u = 2 * j + v;
            if (u < nch) out[v] = y + (ch.n[u] * K + i * kMR) * PQ + ch.ci[u] * 16;
          }
          micro_kernel(crs, ap + i * crs * kMR, bp + j * crs * kNR,
                       bias != nullptr ? bias + i * kMR : nullptr, out, PQ,
                       static_cast<int>(std::min<int64_t>(kMR, K - i * kMR)));
        }
    }
  }
}

void flat_backward_data(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  const Flat f = make_flat(s);
  const int64_t K = s.K, PQ = s.P() * s.Q(), crs = s.C * s.R * s.S, rs = s.R * s.S;
  const int64_t CHW = s.C * s.H * s.W;
  float* packed = workspace<float>(kPacked, ceil_div(crs, kMR) * K * kMR);
  const TilePlan plan = plan_tiles(s.N, f.cpi, 16, std::clamp<int64_t>((getenv("DB") ? atoll(getenv("DB")) : (int64_t{1} << 18)) / K,
                                   64, 1024), omp_get_max_threads(), true);
#pragma omp parallel
  {
    const float* ap = pack_a_panels(packed, w, crs, K, true);  // w^T: CRS rows, K columns
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < plan.count; ++ti) {
      const Tile t = plan.tile(ti, s.N);
      const int64_t nimg = t.n1 - t.n0, nch = nimg * f.cpi, npanels = ceil_div(nch, 2);
      // B: gy of the tile's images in 32-column panels (plain copies, no padding to mask).
      float* bp = workspace<float>(kCol, npanels * K * kNR);
      for (int64_t u = 0; u < 2 * npanels; ++u)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t n = t.n0 + u / f.cpi, ci = u % f.cpi;
          _mm512_store_ps(bp + (u / 2) * K * kNR + k * kNR + (u % 2) * 16,
                          u < nch ? _mm512_loadu_ps(gy + (n * K + k) * PQ + ci * 16)
                                  : _mm512_setzero_ps());
        }
      // The gradient planes the strips are added into: gx[n] itself for stride 1.
      float* planes = f.st == 1 ? gx + t.n0 * CHW : workspace<float>(kPhase, nimg * s.C * f.chan);
      std::fill(planes, planes + nimg * s.C * f.chan, 0.f);
      const int64_t ldc = npanels * kNR;
      float* strip = workspace<float>(kOut, kMR * ldc);
      for (int64_t i = 0; i < ceil_div(crs, kMR); ++i) {
        // gcol rows i*8 .. i*8+7 for every position of the tile...
        for (int64_t j = 0; j < npanels; ++j) {
          float* out[2] = {strip + j * kNR, strip + j * kNR + 16};
          micro_kernel(K, ap + i * K * kMR, bp + j * K * kNR, nullptr, out, ldc, kMR);
        }
        // ...then col2im: each row is one tap of one channel, added at its flat offset. Rows
        // go in (c, r, s) order and chunks in order: a fixed summation order. Taps of a row
        // overlap the previous row's stores only a whole strip later, so the masked
        // read-modify-writes do not stall on store forwarding.
        for (int64_t j = 0; j < kMR && i * kMR + j < crs; ++j) {
          const int64_t c = (i * kMR + j) / rs, tap = (i * kMR + j) % rs;
          const uint16_t* mask = f.mask.data() + tap * f.cpi;
          for (int64_t u = 0; u < nch; ++u) {
            float* d = planes + (u / f.cpi) * s.C * f.chan + c * f.chan + f.off[tap] +
                       (u % f.cpi) * 16;
            const __mmask16 m = mask[u % f.cpi];
            const __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d),
                                             _mm512_loadu_ps(strip + j * ldc + u * 16));
            _mm512_mask_storeu_ps(d, m, sum);
          }
        }
      }
      if (f.st > 1)
        for (int64_t n = t.n0; n < t.n1; ++n)
          merge_phases(s, f, planes + (n - t.n0) * s.C * f.chan, gx + n * CHW);
    }
  }
}

void flat_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw,
                          float* gb) {
  const Flat f = make_flat(s);
  const int64_t crs = s.C * s.R * s.S;
  const TilePlan plan =
      plan_tiles(s.N, f.cpi, 16, generic_target(crs, 4), omp_get_max_threads(), false);
  backward_weight_tiles(s, plan, 16, gy, gw, gb, [&](const Tile& t, int64_t* ld) {
    const Chunks ch = tile_chunks(s, f, t, x);
    const int64_t cols = static_cast<int64_t>(ch.ci.size()) * 16;
    float* col = workspace<float>(kCol, crs * cols);
    flat_columns(s, f, ch, col, kNR, cols, false);
    *ld = cols;
    return static_cast<const float*>(col);
  });
}
#endif  // __AVX512F__

}  // namespace

template <typename T>
void conv2d_forward_cpu(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s, "conv2d_forward_cpu");
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (flat_ok(s)) return flat_forward(s, x, w, bias, y);
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
  if constexpr (std::is_same_v<T, float>)
    if (flat_ok(s)) return flat_backward_data(s, gy, w, gx);
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
    if (flat_ok(s)) return flat_backward_weight(s, x, gy, gw, gb);
#endif
  const TilePlan plan = plan_tiles(s.N, s.P(), s.Q(), generic_target(s.C * s.R * s.S, sizeof(T)),
                                   omp_get_max_threads(), false);
  backward_weight_tiles(s, plan, s.Q(), gy, gw, gb, [&](const Tile& t, int64_t* ld) {
    return generic_columns(s, t, x, ld);
  });
}

#define LETHE_CONV2D_CPU(T)                                                                  \
  template void conv2d_forward_cpu<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data_cpu<T>(const Conv2dShape&, const T*, const T*, T*);     \
  template void conv2d_backward_weight_cpu<T>(const Conv2dShape&, const T*, const T*, T*, T*);
LETHE_CONV2D_CPU(float)
LETHE_CONV2D_CPU(double)
#undef LETHE_CONV2D_CPU

}  // namespace lethe::kernels
