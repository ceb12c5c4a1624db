// The AVX-512 float path of sparse conv2d: no im2col at all.
//
// The "flat padded" layout. A task's g images are zero-padded to (H+2pad) x (W+2pad). With
// stride st each padded channel plane is split into st*st phase planes, phase (a, b) holding
// the pixels at rows a, a+st, ... and columns b, b+st, ...; each phase plane is Hp x Wp
// (ceil of the padded size / st) and the g images' planes lie end to end:
//   xp[(c*st + a)*st + b][n*Hp*Wp + i*Wp + j] = xpad[n][c][st*i + a][st*j + b].
// Then the input pixel that tap (r, s) of output position o = n*Hp*Wp + p*Wp + q reads is
//   xp[(c*st + r%st)*st + s%st][o + (r/st)*Wp + s/st]:
// for a fixed tap, consecutive outputs read consecutive inputs, at any stride (stride 1: one
// phase, the padded plane itself). So every product is a sum of shifted contiguous vectors:
//   forward:          yflat[k][o]  = sum over nonzeros (k; c,r,s) of w * xp[tap plane][o + shift]
//   backward-data:    gxp[plane][i] = sum over nonzeros of w * gyflat[k][i - shift]
//   backward-weight:  gw[k;c,r,s]  = sum_o gyflat[k][o] * xp[tap plane][o + shift]
// Positions o with q >= Q or p >= P (padding columns and rows) are computed and dropped
// (forward), or hold zeros in gyflat so they add nothing (the two backward products). That
// waste is 6% of the work at 32x32, 27% at 16x16... rising to 56% at 4x4; a task batches
// small images so a task still has a few hundred positions.
//
// Forward and backward-data are one kernel (shifted_spmm): 64 positions in 4 registers,
// one broadcast weight and 4 unaligned loads per nonzero, 4 independent FMA chains.
// Backward-weight takes the nonzeros of a row 4 at a time so each gy vector loaded serves 4
// FMAs, folds each dot product once per task, and sums per-thread partials in thread order.
// Determinism: a fixed order everywhere for a given shape and thread count.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/check.h"
#include "kernels/sparse/conv2d_sparse_internal.h"

#if defined(__AVX512F__)

namespace lethe::kernels::sparse_detail {

namespace {

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/// The geometry of a task: g images of the flat padded layout.
struct Flat {
  int64_t st, phases, Hp, Wp, HpWp, g, L, lead, Lx, Lg;
  Flat(const Conv2dShape& s, int64_t images) {
    st = s.stride;
    phases = st * st;
    Hp = (s.H + 2 * s.pad + st - 1) / st;  // one phase plane
    Wp = (s.W + 2 * s.pad + st - 1) / st;
    HpWp = Hp * Wp;
    g = images;
    L = round_up(g * HpWp, 16);                                       // positions computed
    lead = round_up(((s.R - 1) / st) * Wp + (s.S - 1) / st, 16);      // the largest tap shift
    Lx = L + lead + 64;                                               // xp row: reads reach o + shift
    Lg = lead + L + 64;                                               // gyflat row: reads reach o - shift
  }
  /// The xp plane of channel c that tap (r, s) reads, and the shift within it.
  int64_t plane(int64_t c, int64_t r, int64_t s) const { return (c * st + r % st) * st + s % st; }
  int64_t shift(int64_t r, int64_t s) const { return (r / st) * Wp + s / st; }
};

int64_t images_per_task(const Conv2dShape& s) {
  const int64_t HpWp = Flat(s, 1).HpWp;
  return std::min<int64_t>(std::max<int64_t>(s.N, 1), std::max<int64_t>(1, (256 + HpWp - 1) / HpWp));
}

/// xp[plane * Lx + ...]: images n0 .. n0+g-1 of x, zero padded, split into phase planes.
void fill_xp(const Conv2dShape& s, const Flat& f, const float* x, int64_t n0, int64_t g, float* xp) {
  std::memset(xp, 0, static_cast<size_t>(s.C * f.phases * f.Lx) * sizeof(float));
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t n = 0; n < g; ++n) {
      const float* src = x + ((n0 + n) * s.C + c) * s.H * s.W;
      if (f.st == 1) {
        float* dst = xp + c * f.Lx + n * f.HpWp + s.pad * f.Wp + s.pad;
        for (int64_t h = 0; h < s.H; ++h)
          std::memcpy(dst + h * f.Wp, src + h * s.W, static_cast<size_t>(s.W) * sizeof(float));
        continue;
      }
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t hh = h + s.pad;
        for (int64_t w = 0; w < s.W; ++w) {
          const int64_t ww = w + s.pad;
          xp[f.plane(c, hh, ww) * f.Lx + n * f.HpWp + (hh / f.st) * f.Wp + ww / f.st] =
              src[h * s.W + w];
        }
      }
    }
}

/// gyflat[k * Lg + lead + o]: gy of images n0 .. n0+g-1 at the flat output positions, 0 at
/// the padding positions and around.
void fill_gyflat(const Conv2dShape& s, const Flat& f, const float* gy, int64_t n0, int64_t g,
                 float* gyf) {
  const int64_t P = s.P(), Q = s.Q();
  std::memset(gyf, 0, static_cast<size_t>(s.K * f.Lg) * sizeof(float));
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t n = 0; n < g; ++n) {
      const float* src = gy + ((n0 + n) * s.K + k) * P * Q;
      float* dst = gyf + k * f.Lg + f.lead + n * f.HpWp;
      for (int64_t p = 0; p < P; ++p)
        std::memcpy(dst + p * f.Wp, src + p * Q, static_cast<size_t>(Q) * sizeof(float));
    }
}

/// out[m * L + o] = sum over e in [ptr[m], ptr[m+1]) of val[e] * in[off[e] + o], o in [0, L),
/// L a multiple of 16. Positions in blocks of 64 (4 accumulators), then a 16-wide tail.
void shifted_spmm(int64_t M, int64_t L, const int64_t* ptr, const float* val,
                  const int64_t* off, const float* in, float* out) {
  int64_t o0 = 0;
  for (; o0 + 64 <= L; o0 += 64)
    for (int64_t m = 0; m < M; ++m) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t e = ptr[m]; e < ptr[m + 1]; ++e) {
        const __m512 w = _mm512_set1_ps(val[e]);
        const float* p = in + off[e] + o0;
        a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p), a0);
        a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 16), a1);
        a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 32), a2);
        a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 48), a3);
      }
      float* d = out + m * L + o0;
      _mm512_storeu_ps(d, a0);
      _mm512_storeu_ps(d + 16, a1);
      _mm512_storeu_ps(d + 32, a2);
      _mm512_storeu_ps(d + 48, a3);
    }
  for (; o0 < L; o0 += 16)
    for (int64_t m = 0; m < M; ++m) {
      __m512 a0 = _mm512_setzero_ps();
      for (int64_t e = ptr[m]; e < ptr[m + 1]; ++e)
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(val[e]), _mm512_loadu_ps(in + off[e] + o0), a0);
      _mm512_storeu_ps(out + m * L + o0, a0);
    }
}

/// For each CSR entry (k; c, r, s): where in xp the tap's inputs start (plane and shift).
std::vector<int64_t> tap_offsets(const Conv2dShape& s, const SparsePattern& pat, const Flat& f) {
  const int64_t RS = s.R * s.S;
  std::vector<int64_t> off(static_cast<size_t>(pat.nnz()));
  for (int64_t i = 0; i < pat.nnz(); ++i) {
    const int64_t j = pat.col_idx[static_cast<size_t>(i)], c = j / RS, r = (j / s.S) % s.R, q = j % s.S;
    off[static_cast<size_t>(i)] = f.plane(c, r, q) * f.Lx + f.shift(r, q);
  }
  return off;
}

/// The parallel loop over tasks of g images.
template <typename F>
void for_each_task(const Conv2dShape& s, int64_t g, F&& body) {
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tasks; ++t) body(t * g, std::min(g, s.N - t * g));
}

}  // namespace

bool flat_ok(const Conv2dShape& s) {
  // A strided 1x1 conv reads one phase plane of four: splitting costs more than the product
  // (measured: 2.5 ms vs 0.9 dense for the layer2 shortcut); the im2col path takes it.
  if (s.stride > 1 && s.R * s.S == 1) return false;
  const Flat f(s, images_per_task(s));
  // The per-thread buffers must stay a sane size.
  return s.C * f.phases * f.Lx < (int64_t{1} << 28) && s.K * f.Lg < (int64_t{1} << 28);
}

void flat_forward(const Conv2dShape& s, const SparsePattern& pat, const float* vals,
                  const float* x, const float* bias, float* y) {
  const int64_t g = images_per_task(s), P = s.P(), Q = s.Q();
  const Flat f0(s, g);
  const std::vector<int64_t> off = tap_offsets(s, pat, f0);
  for_each_task(s, g, [&](int64_t n0, int64_t gn) {
    const Flat& f = f0;  // a short last task uses the first gn images of the full layout
    float* xp = scratch<float>(0, s.C * f.phases * f.Lx);
    float* yf = scratch<float>(1, s.K * f.L);
    fill_xp(s, f, x, n0, gn, xp);
    shifted_spmm(s.K, f.L, pat.row_ptr.data(), vals, off.data(), xp, yf);
    for (int64_t k = 0; k < s.K; ++k) {
      const float b = bias ? bias[k] : 0.f;
      for (int64_t n = 0; n < gn; ++n)
        for (int64_t p = 0; p < P; ++p) {
          const float* src = yf + k * f.L + n * f.HpWp + p * f.Wp;
          float* dst = y + ((n0 + n) * s.K + k) * P * Q + p * Q;
          for (int64_t q = 0; q < Q; ++q) dst[q] = src[q] + b;
        }
    }
  });
}

void flat_backward_data(const Conv2dShape& s, const SparsePattern& pat, const float* tvals,
                        const float* gy, float* gx) {
  const int64_t g = images_per_task(s), RS = s.R * s.S, nnz = pat.nnz();
  const Flat f0(s, g);
  // Rows of the transposed product: the xp planes (c, a, b). Each CSC entry (k; c, r, s)
  // goes to plane f.plane(c, r, s), at shift -f.shift(r, s) in gyflat; a counting sort over
  // the planes keeps the CSC order within each.
  const int64_t M = s.C * f0.phases;
  std::vector<int64_t> ptr(static_cast<size_t>(M + 1), 0), off(static_cast<size_t>(nnz));
  std::vector<float> val(static_cast<size_t>(nnz));
  auto plane_of = [&](int64_t j) { return f0.plane(j / RS, (j / s.S) % s.R, j % s.S); };
  for (int64_t j = 0; j < pat.cols; ++j)
    ptr[static_cast<size_t>(plane_of(j) + 1)] += pat.t_ptr[static_cast<size_t>(j + 1)] - pat.t_ptr[static_cast<size_t>(j)];
  for (int64_t m = 0; m < M; ++m) ptr[static_cast<size_t>(m + 1)] += ptr[static_cast<size_t>(m)];
  std::vector<int64_t> next(ptr.begin(), ptr.end() - 1);
  for (int64_t j = 0; j < pat.cols; ++j) {
    const int64_t shift = f0.shift((j / s.S) % s.R, j % s.S);
    int64_t& d = next[static_cast<size_t>(plane_of(j))];
    for (int64_t e = pat.t_ptr[static_cast<size_t>(j)]; e < pat.t_ptr[static_cast<size_t>(j + 1)]; ++e, ++d) {
      off[static_cast<size_t>(d)] = pat.t_row[static_cast<size_t>(e)] * f0.Lg + f0.lead - shift;
      val[static_cast<size_t>(d)] = tvals[e];
    }
  }
  for_each_task(s, g, [&](int64_t n0, int64_t gn) {
    const Flat& f = f0;
    float* gyf = scratch<float>(2, s.K * f.Lg);
    float* gxp = scratch<float>(3, M * f.L);
    fill_gyflat(s, f, gy, n0, gn, gyf);
    shifted_spmm(M, f.L, ptr.data(), val.data(), off.data(), gyf, gxp);
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t n = 0; n < gn; ++n) {
        float* dst = gx + ((n0 + n) * s.C + c) * s.H * s.W;
        for (int64_t h = 0; h < s.H; ++h) {
          const int64_t hh = h + s.pad;
          if (f.st == 1) {
            std::memcpy(dst + h * s.W, gxp + c * f.L + n * f.HpWp + hh * f.Wp + s.pad,
                        static_cast<size_t>(s.W) * sizeof(float));
            continue;
          }
          for (int64_t w = 0; w < s.W; ++w) {
            const int64_t ww = w + s.pad;
            dst[h * s.W + w] =
                gxp[f.plane(c, hh, ww) * f.L + n * f.HpWp + (hh / f.st) * f.Wp + ww / f.st];
          }
        }
      }
  });
}

namespace {

// A pairwise fold through memory (GCC 12 warns falsely inside _mm512_reduce_add_ps); once per
// dot product of a few hundred terms, so its cost does not show.
float hsum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  for (int width = 8; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) t[l] += t[l + width];
  return t[0];
}

}  // namespace

void flat_backward_weight(const Conv2dShape& s, const SparsePattern& pat, const float* x,
                          const float* gy, float* partial_all, int nthreads) {
  const int64_t g = images_per_task(s), nnz = pat.nnz();
  const Flat f0(s, g);
  const std::vector<int64_t> off = tap_offsets(s, pat, f0);
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
#pragma omp parallel num_threads(nthreads)
  {
    float* part = partial_all + omp_get_thread_num() * nnz;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t n0 = t * g, gn = std::min(g, s.N - n0);
      const Flat& f = f0;
      float* xp = scratch<float>(0, s.C * f.phases * f.Lx);
      float* gyf = scratch<float>(2, s.K * f.Lg);
      fill_xp(s, f, x, n0, gn, xp);
      fill_gyflat(s, f, gy, n0, gn, gyf);
      for (int64_t k = 0; k < s.K; ++k) {
        const float* gk = gyf + k * f.Lg + f.lead;
        int64_t i = pat.row_ptr[static_cast<size_t>(k)];
        const int64_t i1 = pat.row_ptr[static_cast<size_t>(k + 1)];
        for (; i + 4 <= i1; i += 4) {  // 4 nonzeros share each gy load
          const float* p0 = xp + off[static_cast<size_t>(i)];
          const float* p1 = xp + off[static_cast<size_t>(i + 1)];
          const float* p2 = xp + off[static_cast<size_t>(i + 2)];
          const float* p3 = xp + off[static_cast<size_t>(i + 3)];
          __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
          for (int64_t o = 0; o < f.L; o += 16) {
            const __m512 gv = _mm512_loadu_ps(gk + o);
            a0 = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p0 + o), a0);
            a1 = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p1 + o), a1);
            a2 = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p2 + o), a2);
            a3 = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p3 + o), a3);
          }
          part[i] += hsum(a0);
          part[i + 1] += hsum(a1);
          part[i + 2] += hsum(a2);
          part[i + 3] += hsum(a3);
        }
        for (; i < i1; ++i) {
          const float* p0 = xp + off[static_cast<size_t>(i)];
          __m512 a0 = _mm512_setzero_ps(), a1 = a0;
          int64_t o = 0;
          for (; o + 32 <= f.L; o += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(gk + o), _mm512_loadu_ps(p0 + o), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(gk + o + 16), _mm512_loadu_ps(p0 + o + 16), a1);
          }
          for (; o < f.L; o += 16)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(gk + o), _mm512_loadu_ps(p0 + o), a0);
          part[i] += hsum(_mm512_add_ps(a0, a1));
        }
      }
    }
  }
}

}  // namespace lethe::kernels::sparse_detail

#endif  // __AVX512F__
