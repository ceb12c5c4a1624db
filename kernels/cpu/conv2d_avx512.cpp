// conv2d on the CPU, the AVX-512 float path. The entry points, the generic path and the
// overall plan (tiles of output positions, one thread per tile) are in conv2d.cpp; this file
// is used for float when Q == ceil(W/stride) and P*Q % 16 == 0, true of every ResNet-18 layer
// (backward-weight: for filters larger than 1x1, see flat_weight_ok).
//
// Flat im2col. With stride st, each channel plane of x is split into st*st phase planes
// (phase (a,b) holds x[a + st*u, b + st*v], Hp x Wp pixels; for stride 1 the one phase plane
// is x's plane itself). Because Wp == Q, the pixel that tap (r,s) reads for output position
// i = p*Q + q is element i + off[r,s] of the channel's phase planes: 16 consecutive outputs
// read 16 consecutive floats, one masked load with the padding lanes masked off (masks
// precomputed per tap and 16-position chunk). Gathers are avoided on purpose: on Zen 4 a
// 16-lane gather costs about 2 cycles per element, a masked load about 0.35.
//
// The micro-kernel: an 8 x 32 register tile, 16 zmm accumulators; per reduction step two
// 16-float loads of B and 8 broadcasts of A feed 16 FMAs. A is packed in 8-row panels
// ([k][8]), B in 32-column panels ([k][32]). Measured alone it runs at about 90% of the FMA
// peak.
//   forward:         A = w (8 output channels x CRS, packed once per call, shared by the
//                    threads), B = the tile's im2col, 256 CRS rows at a time so that both
//                    stay in L1/L2. The kernel writes y in place: the first block starts
//                    from the bias, the later ones add on.
//   backward-data:   A = w^T (8 CRS rows x K), B = gy in 32-column panels. Each 8-row
//                    strip of gcol is added into gx right away by masked adds at the same flat
//                    offsets (col2im), rows in (c,r,s) order: a fixed order.
//   backward-weight: gw (K x CRS) = sum over tiles of gy (K x cols) * col^T (cols x CRS).
//                    A = gy^T (packed once for the batch), B = col^T in [position][32 CRS
//                    rows] panels, both made by 16x16 in-register transposes. The CRS
//                    columns of gw are split over the threads and each thread sums every
//                    tile in order: no partials, no atomics, no waiting.
// Tests: tests/kernels/test_conv2d.cpp (its flat_* and ResNet18 cases take this path);
// benchmark: bench/bench_conv2d_cpu.cpp.
#include "kernels/cpu/conv2d_internal.h"

#if defined(__AVX512F__)

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lethe::kernels::conv2d_detail {

namespace {

constexpr int kMR = 8;   // micro-tile rows
constexpr int kNR = 32;  // micro-tile columns: two 16-lane vectors
constexpr int64_t kBlockF = 256;  // forward: reduction steps (CRS rows) per kernel call
constexpr int64_t kBlock = 128;   // backward-weight: reduction steps per kernel call

// ---- flat im2col geometry ----------------------------------------------------------------

struct Flat {
  int64_t st = 1, Hp = 0, Wp = 0, plane = 0;
  int64_t chan = 0;            // floats per channel: st*st phase planes
  int64_t cpi = 0;             // 16-position chunks per image (PQ / 16)
  std::vector<int64_t> off;    // [tap]: phase * plane + dr * Wp + ds
  std::vector<uint16_t> mask;  // [tap][chunk]: lanes whose pixel is inside the image
  std::vector<char> used;      // [phase]: read by some tap (the others are never built)
};

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

// Channel c of x[n] (x: C*H*W) -> its used phase planes (dst: C * chan), pixels beyond the
// image zero.
void split_phases(const Conv2dShape& s, const Flat& f, const float* x, int64_t c, float* dst) {
  const int64_t st = f.st;
  float* planes = dst + c * f.chan;
  if (st == 2) {
    // One pass per input row: two loads hold 16 even and 16 odd pixels, which two permutes
    // send to phases (a, 0) and (a, 1). The loads are masked to the row, so the missing odd
    // pixel of an odd-width row reads as 0 and the last row never reads past x.
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t u = 0; u < f.Hp; ++u)
      for (int64_t a = 0; a < 2; ++a) {
        const bool use0 = f.used[a * 2], use1 = f.used[a * 2 + 1];
        float* d0 = planes + a * 2 * f.plane + u * f.Wp;  // phase (a, 0); (a, 1) follows
        const int64_t h = a + 2 * u;
        const float* src = h < s.H ? x + (c * s.H + h) * s.W : x;
        for (int64_t v = 0; v < f.Wp; v += 16) {
          const int64_t left = h < s.H ? s.W - 2 * v : 0;  // a row past the image is zeros
          const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(left), src + 2 * v);
          const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(left - 16), src + 2 * v + 16);
          const __mmask16 m = first_lanes(f.Wp - v);
          if (use0) _mm512_mask_storeu_ps(d0 + v, m, _mm512_permutex2var_ps(lo, even, hi));
          if (use1)
            _mm512_mask_storeu_ps(d0 + f.plane + v, m, _mm512_permutex2var_ps(lo, odd, hi));
        }
      }
    return;
  }
  for (int64_t a = 0; a < st; ++a)
    for (int64_t b = 0; b < st; ++b) {
      if (!f.used[a * st + b]) continue;
      const int64_t vn = std::min(f.Wp, ceil_div(s.W - b, st));  // valid columns
      for (int64_t u = 0; u < f.Hp; ++u) {
        float* d = planes + (a * st + b) * f.plane + u * f.Wp;
        const int64_t h = a + st * u;
        if (h >= s.H) {
          std::fill(d, d + f.Wp, 0.f);
          continue;
        }
        const float* src = x + (c * s.H + h) * s.W + b;
        for (int64_t v = 0; v < vn; ++v) d[v] = src[v * st];
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

// The 16-position chunks of a tile: where each chunk's image's phase planes start (offset
// by the chunk's first position), the chunk's index in its image, and its image.
struct Chunks {
  std::vector<const float*> base;
  std::vector<int64_t> ci, n;
  int64_t size() const { return static_cast<int64_t>(ci.size()); }
};

// Lists the chunks of tile t. phases: the tile's images split into phase planes (stride > 1)
// or nullptr (stride 1: x itself).
Chunks list_chunks(const Conv2dShape& s, const Tile& t, const float* x, const float* phases,
                   int64_t chan) {
  Chunks ch;
  for (int64_t n = t.n0; n < t.n1; ++n) {
    const float* base = phases != nullptr ? phases + (n - t.n0) * s.C * chan
                                          : x + n * s.C * s.H * s.W;
    for (int64_t u = t.u0; u < t.u1; ++u) {
      ch.base.push_back(base + u * 16);
      ch.ci.push_back(u);
      ch.n.push_back(n);
    }
  }
  return ch;
}

// The chunks of tile t, splitting its images (stride > 1) into this thread's kPhase buffer.
Chunks tile_chunks(const Conv2dShape& s, const Flat& f, const Tile& t, const float* x) {
  float* phases = nullptr;
  if (f.st > 1) {
    phases = workspace<float>(kPhase, (t.n1 - t.n0) * s.C * f.chan);
    for (int64_t n = t.n0; n < t.n1; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        split_phases(s, f, x + n * s.C * s.H * s.W, c, phases + (n - t.n0) * s.C * f.chan);
  }
  return list_chunks(s, t, x, phases, f.chan);
}

// ---- packing and the micro-kernel ----------------------------------------------------------

// Every thread packs its share of the 8-row panels of m (rows x cols; transposed: panels of
// m^T, m stored cols x rows) into `packed` ([panel][k][8], rows past the end zero). An
// orphaned `omp for`: the implicit barrier at its end publishes the panels to all threads.
void pack_a_panels(float* packed, const float* m, int64_t rows, int64_t cols, bool transposed) {
#pragma omp for schedule(static)
  for (int64_t i = 0; i < ceil_div(rows, kMR); ++i)
    for (int64_t k = 0; k < cols; ++k)
      for (int64_t j = 0; j < kMR; ++j) {
        const int64_t r = i * kMR + j;
        packed[(i * cols + k) * kMR + j] =
            r >= rows ? 0.f : transposed ? m[k * rows + r] : m[r * cols + k];
      }
}

// Where the kernel's two 16-column halves go: row 0 of each (rows ldc apart) and the columns
// of each to store (mask 0: that half is not stored, nor read when accumulating).
struct Out {
  float* p[2];
  __mmask16 m[2];
};

// out rows j < mr: out = (accumulate ? out : bias[j] or 0) + sum_k A[k*8 + j] * B[k*32 + l],
// columns l of the two 16-column halves.
inline void micro_kernel(int64_t kc, const float* A, const float* B, const float* bias,
                         const Out& out, int64_t ldc, int mr, bool accumulate) {
  __m512 acc[kMR][2];
  for (int j = 0; j < kMR; ++j)
    for (int v = 0; v < 2; ++v)
      acc[j][v] = accumulate && j < mr && out.m[v] != 0
                      ? _mm512_maskz_loadu_ps(out.m[v], out.p[v] + j * ldc)
                      : _mm512_set1_ps(bias != nullptr && j < mr ? bias[j] : 0.f);
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
      if (j < mr && out.m[v] != 0) _mm512_mask_storeu_ps(out.p[v] + j * ldc, out.m[v], acc[j][v]);
}

// In-register transpose of a 16 x 16 block: afterwards r[l] holds what was lane l of each row.
// (The all-lanes maskz_ forms are the plain instructions; GCC 12's unmasked intrinsics trip
// -Wuninitialized on their internal undefined source operand.)
void transpose16(__m512 r[16]) {
  constexpr __mmask16 kAll = 0xFFFF;
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // interleave row pairs
    t[i] = _mm512_maskz_unpacklo_ps(kAll, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // 2 x 2 blocks of pairs
    r[i] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 16; i += 8)  // 128-bit lanes
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_maskz_shuffle_f32x4(kAll, r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_maskz_shuffle_f32x4(kAll, r[i + k], r[i + k + 4], 0xdd);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_maskz_shuffle_f32x4(kAll, t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_maskz_shuffle_f32x4(kAll, t[k], t[k + 8], 0xdd);
  }
}

// Forward's B: im2col rows [k0, k1) of the tile in 32-column panels,
// bp[(u/2)*rows*32 + (kk-k0)*32 + (u%2)*16] for row kk and chunk u (an odd last chunk's
// partner half is zero).
void forward_columns(const Conv2dShape& s, const Flat& f, const Chunks& ch, int64_t k0,
                     int64_t k1, float* bp) {
  const int64_t nch = ch.size(), rs = s.R * s.S, rows = k1 - k0;
  for (int64_t kk = k0; kk < k1; ++kk) {
    const int64_t c = kk / rs, tap = kk % rs, src = c * f.chan + f.off[tap];
    const uint16_t* mask = f.mask.data() + tap * f.cpi;
    float* row = bp + (kk - k0) * kNR;
    // Masked-off lanes may point outside the planes: AVX-512 suppresses their faults.
    for (int64_t u = 0; u < nch; ++u)
      _mm512_store_ps(row + (u / 2) * rows * kNR + (u % 2) * 16,
                      _mm512_maskz_loadu_ps(mask[ch.ci[u]], ch.base[u] + src));
    if (nch % 2 == 1) _mm512_store_ps(row + (nch / 2) * rows * kNR + 16, _mm512_setzero_ps());
  }
}

}  // namespace

bool flat_ok(const Conv2dShape& s) {
  return ceil_div(s.W, s.stride) == s.Q() && (s.P() * s.Q()) % 16 == 0;
}

bool flat_weight_ok(const Conv2dShape& s, int nthreads) {
  // A 1x1 convolution reduces over only C rows, so the transposes of gy and x cost about as
  // much as the product: OpenBLAS (generic path) measured faster there. And every thread
  // needs at least one 32-column panel of gw.
  return flat_ok(s) && s.R * s.S > 1 && ceil_div(s.C * s.R * s.S, kNR) >= nthreads;
}

void flat_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  float* y) {
  const Flat f = make_flat(s);
  const int64_t K = s.K, PQ = s.P() * s.Q(), crs = s.C * s.R * s.S, kpanels = ceil_div(K, kMR);
  float* packed = workspace<float>(kPacked, kpanels * crs * kMR);
  // Columns per tile: the tile's K x cols block of y near 256 KiB, so it stays in L2 while
  // the reduction goes through CRS in steps of kBlockF (B block kBlockF x cols, also in L2).
  const int64_t target = std::clamp<int64_t>((int64_t{1} << 16) / K, 64, 512);
  const TilePlan plan = plan_tiles(s.N, f.cpi, 16, target, omp_get_max_threads(), false, 2);
#pragma omp parallel
  {
    pack_a_panels(packed, w, K, crs, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < plan.count; ++ti) {
      const Chunks ch = tile_chunks(s, f, plan.tile(ti, s.N), x);
      const int64_t nch = ch.size(), npanels = ceil_div(nch, 2);
      float* bp = workspace<float>(kCol, npanels * std::min(crs, kBlockF) * kNR);
      for (int64_t k0 = 0; k0 < crs; k0 += kBlockF) {
        const int64_t k1 = std::min(crs, k0 + kBlockF), kc = k1 - k0;
        forward_columns(s, f, ch, k0, k1, bp);
        // An A block (8 channels x kc) stays in L1 while the tile's B panels pass; the first
        // block starts from the bias, the others add onto y.
        for (int64_t i = 0; i < kpanels; ++i)
          for (int64_t j = 0; j < npanels; ++j) {
            Out out{};
            for (int v = 0; v < 2; ++v) {
              const int64_t u = 2 * j + v;
              if (u >= nch) continue;
              out.p[v] = y + (ch.n[u] * K + i * kMR) * PQ + ch.ci[u] * 16;
              out.m[v] = 0xFFFF;
            }
            micro_kernel(kc, packed + (i * crs + k0) * kMR, bp + j * kc * kNR,
                         bias != nullptr ? bias + i * kMR : nullptr, out, PQ,
                         static_cast<int>(std::min<int64_t>(kMR, K - i * kMR)), k0 > 0);
          }
      }
    }
  }
}

void flat_backward_data(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  const Flat f = make_flat(s);
  const int64_t K = s.K, PQ = s.P() * s.Q(), crs = s.C * s.R * s.S, rs = s.R * s.S;
  const int64_t CHW = s.C * s.H * s.W, cpanels = ceil_div(crs, kMR);
  float* packed = workspace<float>(kPacked, cpanels * K * kMR);
  // Whole images per tile; the tile's packed gy (K x cols) near 256 KiB.
  const int64_t target = std::clamp<int64_t>((int64_t{1} << 16) / K, 64, 1024);
  const TilePlan plan = plan_tiles(s.N, f.cpi, 16, target, omp_get_max_threads(), true, 2);
#pragma omp parallel
  {
    pack_a_panels(packed, w, crs, K, true);  // w^T: CRS rows, K columns
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < plan.count; ++ti) {
      const Tile t = plan.tile(ti, s.N);
      const int64_t nimg = t.n1 - t.n0, nch = nimg * f.cpi, npanels = ceil_div(nch, 2);
      // The planes the strips are added into: gx[n] itself for stride 1, else phase planes.
      float* planes = f.st == 1 ? gx + t.n0 * CHW : workspace<float>(kPhase, nimg * s.C * f.chan);
      // Zero what the taps add into: for stride > 1 only the used phases (a 1x1 stride-2
      // shortcut uses one of four).
      for (int64_t e = 0; e < nimg * s.C; ++e)
        for (int64_t ph = 0; ph < f.st * f.st; ++ph)
          if (f.used[ph]) std::fill_n(planes + e * f.chan + ph * f.plane, f.plane, 0.f);
      // B: the tile's gy in 32-column panels [k][32]. Read in place, rows PQ apart, the 1-4 KiB
      // strides of the big layers would map a panel's rows onto a few L1 sets.
      float* bp = workspace<float>(kCol, npanels * K * kNR);
      for (int64_t j = 0; j < npanels; ++j)
        for (int v = 0; v < 2; ++v) {
          const int64_t u = 2 * j + v, n = t.n0 + u / f.cpi;
          for (int64_t k = 0; k < K; ++k)
            _mm512_store_ps(bp + (j * K + k) * kNR + v * 16,
                            u < nch ? _mm512_loadu_ps(gy + (n * K + k) * PQ + (u % f.cpi) * 16)
                                    : _mm512_setzero_ps());
        }
      const int64_t ldc = npanels * kNR;
      float* strip = workspace<float>(kOut, kMR * ldc);
      for (int64_t i = 0; i < cpanels; ++i) {
        // gcol rows i*8 .. i*8+7 for every position of the tile...
        for (int64_t j = 0; j < npanels; ++j) {
          const Out out{{strip + j * kNR, strip + j * kNR + 16}, {0xFFFF, 0xFFFF}};
          micro_kernel(K, packed + i * K * kMR, bp + j * K * kNR, nullptr, out, ldc, kMR, false);
        }
        // ...then col2im: each row is one tap of one channel, added at its flat offset. Rows
        // in (c, r, s) order and chunks in order: a fixed summation order. A tap's stores
        // overlap the previous tap's only a whole strip later, so the masked read-modify-
        // writes do not stall on store forwarding.
        for (int64_t j = 0; j < kMR && i * kMR + j < crs; ++j) {
          const int64_t c = (i * kMR + j) / rs, tap = (i * kMR + j) % rs;
          const uint16_t* mask = f.mask.data() + tap * f.cpi;
          for (int64_t u = 0; u < nch; ++u) {
            float* d = planes + ((u / f.cpi) * s.C + c) * f.chan + f.off[tap] + (u % f.cpi) * 16;
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
  const int64_t K = s.K, PQ = s.P() * s.Q(), rs = s.R * s.S, crs = s.C * rs;
  const int64_t kpanels = ceil_div(K, kMR), npanels = ceil_div(crs, kNR), npq = s.N * PQ;
  // Positions per tile: the tile's share of the packed gy^T (K x cols) near 512 KiB, so it
  // stays in L2 while the thread's gw panels pass over it.
  const int64_t target = std::clamp<int64_t>((int64_t{1} << 17) / K, 128, 2048);
  const TilePlan plan = plan_tiles(s.N, f.cpi, 16, target, 1, false, 2);
  if (plan.count == 0) std::fill(gw, gw + K * crs, 0.f);  // no images: an empty sum
  // Operands every thread reads, built once by all threads together: the phase planes of
  // the whole batch (stride > 1) and gy^T of the whole batch in 8-channel panels
  // ([panel][position][8]). After that the threads never wait for each other.
  float* phases = f.st > 1 ? workspace<float>(kPhase, s.N * s.C * f.chan) : nullptr;
  float* ap = workspace<float>(kPacked, kpanels * npq * kMR);
#pragma omp parallel
  {
    if (phases != nullptr) {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < s.N * s.C; ++e)
        split_phases(s, f, x + (e / s.C) * s.C * s.H * s.W, e % s.C,
                     phases + (e / s.C) * s.C * f.chan);
    }
    // One 16 x 16 transpose turns 16 channels x 16 positions into two panels' worth (lanes
    // 0-7 and 8-15).
    const int64_t pairs = ceil_div(kpanels, 2), chunks = npq / 16;
#pragma omp for schedule(static)
    for (int64_t e = 0; e < pairs * chunks; ++e) {
      const int64_t i2 = e / chunks, g = e % chunks, n = g / f.cpi, ci = g % f.cpi;
      __m512 r[16];
      for (int m = 0; m < 16; ++m) {
        const int64_t k = i2 * 16 + m;
        r[m] = k < K ? _mm512_loadu_ps(gy + (n * K + k) * PQ + ci * 16) : _mm512_setzero_ps();
      }
      transpose16(r);
      float* lo = ap + (2 * i2 * npq + g * 16) * kMR;
      for (int l = 0; l < 16; ++l) {
        _mm512_mask_storeu_ps(lo + l * kMR, 0x00FF, r[l]);
        // Lanes 8-15 into the next panel: a store 8 floats early, masked to its top half.
        if (2 * i2 + 1 < kpanels) _mm512_mask_storeu_ps(lo + (npq + l - 1) * kMR, 0xFF00, r[l]);
      }
    }
    // This thread's 32-column panels of gw, the same for every tile; tiles in order.
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t j0 = npanels * id / nt, j1 = npanels * (id + 1) / nt;
    for (int64_t ti = 0; ti < plan.count; ++ti) {
      const Tile t = plan.tile(ti, s.N);
      // `phases` holds the whole batch; list_chunks counts images from the tile's first.
      const Chunks ch = list_chunks(s, t, x, phases ? phases + t.n0 * s.C * f.chan : nullptr,
                                    f.chan);
      const int64_t nch = ch.size(), cols = nch * 16, pos0 = (t.n0 * f.cpi + t.u0) * 16;
      float* bp = workspace<float>(kCol, cols * kNR);
      for (int64_t j = j0; j < j1; ++j) {
        // B: im2col rows j*32 .. j*32+31 transposed to [position][32]; rows past CRS zero.
        int64_t src[kNR], tap[kNR];
        for (int l = 0; l < kNR; ++l) {
          const int64_t kk = std::min(j * kNR + l, crs - 1);
          tap[l] = kk % rs;
          src[l] = (kk / rs) * f.chan + f.off[tap[l]];
        }
        for (int64_t u = 0; u < nch; ++u)
          for (int half = 0; half < 2; ++half) {
            __m512 r[16];
            for (int l = 0; l < 16; ++l) {
              const int e = half * 16 + l;
              r[l] = j * kNR + e < crs
                         ? _mm512_maskz_loadu_ps(f.mask[tap[e] * f.cpi + ch.ci[u]],
                                                 ch.base[u] + src[e])
                         : _mm512_setzero_ps();
            }
            transpose16(r);
            for (int l = 0; l < 16; ++l)
              _mm512_store_ps(bp + (u * 16 + l) * kNR + half * 16, r[l]);
          }
        // gw[i*8.., j*32..] += gy^T panel * col^T panel; the first block overwrites. The
        // positions go in blocks of kBlock so the B block (16 KiB) stays in L1 for all i.
        for (int64_t kb = 0; kb < cols; kb += kBlock)
          for (int64_t i = 0; i < kpanels; ++i) {
            Out out{};
            for (int v = 0; v < 2; ++v) {
              const int64_t col0 = j * kNR + v * 16;
              out.m[v] = first_lanes(crs - col0);
              if (out.m[v] != 0) out.p[v] = gw + i * kMR * crs + col0;
            }
            micro_kernel(std::min(kBlock, cols - kb), ap + (i * npq + pos0 + kb) * kMR,
                         bp + kb * kNR, nullptr, out, crs,
                         static_cast<int>(std::min<int64_t>(kMR, K - i * kMR)), ti > 0 || kb > 0);
          }
      }
    }
    if (gb != nullptr) bias_gradient(s, gy, gb);
  }
}

}  // namespace lethe::kernels::conv2d_detail

#endif  // __AVX512F__
