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
// one broadcast weight and 4 unaligned loads per nonzero, 4 independent FMA chains. Where a
// row has many nonzeros per 64 sources (density above ~12%), tiled_spmm first copies the 64
// sources' inputs into an aligned tile in L1 and runs the same sums against it (128
// positions in 8 registers where L1 is large enough).
// Backward-weight takes the nonzeros of a row 4 at a time so each gy vector loaded serves 4
// FMAs, folds each dot product once per task, and sums per-thread partials in thread order.
// Determinism: a fixed order everywhere for a given shape and thread count.
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
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

/// Fills dst[0, end) with rows copied at ascending, non-overlapping starts (copy) and zeros
/// in the gaps between them and after the last (zero_to): each float written once. Why not
/// memset the whole buffer first: that doubles the stores of a fill, and the padding is a
/// small part of it.
struct RowCopier {
  float* dst;
  int64_t pos = 0;
  void copy(int64_t start, const float* src, int64_t len) {
    std::memset(dst + pos, 0, static_cast<size_t>(start - pos) * sizeof(float));
    std::memcpy(dst + start, src, static_cast<size_t>(len) * sizeof(float));
    pos = start + len;
  }
  void zero_to(int64_t end) {
    std::memset(dst + pos, 0, static_cast<size_t>(end - pos) * sizeof(float));
    pos = end;
  }
};

/// xp[plane * Lx + ...]: images n0 .. n0+g-1 of x, zero padded, split into phase planes.
void fill_xp(const Conv2dShape& s, const Flat& f, const float* x, int64_t n0, int64_t g, float* xp) {
  if (f.st == 1) {
    for (int64_t c = 0; c < s.C; ++c) {
      RowCopier out{xp + c * f.Lx};
      for (int64_t n = 0; n < g; ++n) {
        const float* src = x + ((n0 + n) * s.C + c) * s.H * s.W;
        for (int64_t h = 0; h < s.H; ++h)
          out.copy(n * f.HpWp + (h + s.pad) * f.Wp + s.pad, src + h * s.W, s.W);
      }
      out.zero_to(f.Lx);
    }
    return;
  }
  std::memset(xp, 0, static_cast<size_t>(s.C * f.phases * f.Lx) * sizeof(float));
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t n = 0; n < g; ++n) {
      const float* src = x + ((n0 + n) * s.C + c) * s.H * s.W;
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
  for (int64_t k = 0; k < s.K; ++k) {
    RowCopier out{gyf + k * f.Lg};
    for (int64_t n = 0; n < g; ++n) {
      const float* src = gy + ((n0 + n) * s.K + k) * P * Q;
      for (int64_t p = 0; p < P; ++p) out.copy(f.lead + n * f.HpWp + p * f.Wp, src + p * Q, Q);
    }
    out.zero_to(f.Lg);
  }
}

/// body.template run<n>(o0) for the n registers of positions left at the end, 1 <= n <= V.
template <int V, class Body>
void run_tail(int n, int64_t o0, const Body& body) {
  if constexpr (V >= 1) {
    if (n == V) body.template run<V>(o0);
    else run_tail<V - 1>(n, o0, body);
  }
}

/// Calls body.template run<n>(o0) for each block of positions of [0, L): blocks of V
/// registers (16V positions), then one block of the (L % 16V) / 16 left (L a multiple of 16).
/// Each register is an accumulator, one FMA chain, one link per nonzero.
template <int V, class Body>
void for_each_position_block(int64_t L, const Body& body) {
  int64_t o0 = 0;
  for (; o0 + 16 * V <= L; o0 += 16 * V) body.template run<V>(o0);
  run_tail<V - 1>(static_cast<int>((L - o0) / 16), o0, body);
}

/// out[m * L + o] = sum over e in [ptr[m], ptr[m+1]) of val[e] * in[off[e] + o], o in [0, L),
/// L a multiple of 16: per block of positions and row, one broadcast weight and V unaligned
/// loads per nonzero into V accumulators.
struct ShiftedSpmm {
  int64_t M, L;
  const int64_t* ptr;
  const float* val;
  const int64_t* off;
  const float* in;
  float* out;
  template <int V>
  void run(int64_t o0) const {
    for (int64_t m = 0; m < M; ++m) {
      __m512 a[V];
      for (int v = 0; v < V; ++v) a[v] = _mm512_setzero_ps();
      for (int64_t e = ptr[m]; e < ptr[m + 1]; ++e) {
        const __m512 w = _mm512_set1_ps(val[e]);
        const float* p = in + off[e] + o0;
        for (int v = 0; v < V; ++v) a[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 16 * v), a[v]);
      }
      float* d = out + m * L + o0;
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(d + 16 * v, a[v]);
    }
  }
};

void shifted_spmm(int64_t M, int64_t L, const int64_t* ptr, const float* val,
                  const int64_t* off, const float* in, float* out) {
  // 4 registers: 8 measured no faster here (Zen 5), unlike in the tiled form.
  for_each_position_block<4>(L, ShiftedSpmm{M, L, ptr, val, off, in, out});
}

/// The staged form of shifted_spmm, for rows dense enough that each staged input serves many
/// entries. The entries of a row are sorted by source (src[e] ascending), source i reading
/// in[soff[i] + o]. Per block of positions and block of kSrcBlock sources, each source's
/// inputs are copied once into an aligned tile that stays in L1, and every row's entries of
/// that source block run against it. Why: shifted_spmm reads its inputs straight from the
/// shifted windows, which from 64 channels up no longer fit L1, so each entry's unaligned
/// loads mostly come from L2; here they are aligned L1 loads (1.2-1.4x faster at 25-50%
/// density, docs/sparse.md). Same sums, in the same order, whatever the block width.
///
/// The block width: 128 positions (8 accumulators, a 32 KiB tile) where L1 holds 48 KiB or
/// more, else 64 (4, 16 KiB). Why: with 4 accumulators each nonzero waits on the last one's
/// FMAs (4 cycles), so a core that issues two 512-bit FMAs per cycle (Zen 5) idles half the
/// time; 8 are 10-20% faster there at 25-50% density. Fewer sources per tile to keep it at
/// 16 KiB cost more in per-block overhead than they gained (measured, docs/sparse.md).
constexpr int64_t kSrcBlock = 64;

std::atomic<int64_t> forced_tile_positions{0};

bool wide_tiles() {
  const int64_t forced = forced_tile_positions.load(std::memory_order_relaxed);
  if (forced != 0) return forced == 128;
  static const bool wide = sysconf(_SC_LEVEL1_DCACHE_SIZE) >= 48 * 1024;
  return wide;
}

int64_t source_blocks(int64_t nsrc) { return (nsrc + kSrcBlock - 1) / kSrcBlock; }

/// seg[m * (nb + 1) + b]: row m's first entry whose source is in block b or later, for the
/// nb = source_blocks(nsrc) blocks.
std::vector<int64_t> source_segments(int64_t M, const int64_t* ptr, const int32_t* src, int64_t nsrc) {
  const int64_t nb = source_blocks(nsrc);
  std::vector<int64_t> seg(static_cast<size_t>(M * (nb + 1)));
  for (int64_t m = 0; m < M; ++m) {
    int64_t e = ptr[m];
    for (int64_t b = 0; b <= nb; ++b) {
      while (e < ptr[m + 1] && src[e] < b * kSrcBlock) ++e;
      seg[static_cast<size_t>(m * (nb + 1) + b)] = e;
    }
  }
  return seg;
}

struct TiledSpmm {
  int64_t M, L, nsrc, nb;
  const int64_t* seg;
  const float* val;
  const int32_t* src;
  const int64_t* soff;
  const float* in;
  float* out;
  float* tile;     // kSrcBlock x stride, 64-byte aligned
  int64_t stride;  // positions per tile row: 16 x the block's registers
  template <int V>
  void run(int64_t o0) const {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t s0 = b * kSrcBlock, s1 = std::min(nsrc, s0 + kSrcBlock);
      for (int64_t i = s0; i < s1; ++i)
        for (int v = 0; v < V; ++v)
          _mm512_store_ps(tile + (i - s0) * stride + 16 * v, _mm512_loadu_ps(in + soff[i] + o0 + 16 * v));
      for (int64_t m = 0; m < M; ++m) {
        const int64_t* sm = seg + m * (nb + 1);
        const int64_t e0 = sm[b], e1 = sm[b + 1];
        if (e0 == e1 && b > 0) continue;  // block 0 always writes: it starts every sum at 0
        float* d = out + m * L + o0;
        __m512 a[V];
        for (int v = 0; v < V; ++v) a[v] = b == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(d + 16 * v);
        for (int64_t e = e0; e < e1; ++e) {
          const __m512 w = _mm512_set1_ps(val[e]);
          const float* t = tile + (src[e] - s0) * stride;
          for (int v = 0; v < V; ++v) a[v] = _mm512_fmadd_ps(w, _mm512_load_ps(t + 16 * v), a[v]);
        }
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(d + 16 * v, a[v]);
      }
    }
  }
};

/// seg: source_segments of the rows' entries.
void tiled_spmm(int64_t M, int64_t L, const float* val, const int32_t* src, int64_t nsrc,
                const int64_t* soff, const std::vector<int64_t>& seg, const float* in, float* out) {
  alignas(64) thread_local float tile[kSrcBlock * 128];
  TiledSpmm body{M, L, nsrc, source_blocks(nsrc), seg.data(), val, src, soff, in, out, tile, 64};
  if (wide_tiles()) {
    body.stride = 128;
    for_each_position_block<8>(L, body);
  } else {
    for_each_position_block<4>(L, body);
  }
}

/// Staging pays when a row's entries per source block average at least this many, i.e. from
/// about 12% density (measured with bench_conv2d_sparse_cpu at 50/75/90/95%, docs/sparse.md):
/// below it the accumulators' loads and stores per block outweigh the aligned loads.
constexpr int64_t kMinEntriesPerBlock = 8;
bool tiling_pays(int64_t M, int64_t nnz, int64_t nsrc) {
  // Each staged source must also serve several entries: the tile is rebuilt per 64 positions.
  return nnz >= kMinEntriesPerBlock * M * source_blocks(nsrc) && nnz >= 4 * nsrc;
}

/// For each column j = (c, r, s) of the weight: where in xp the tap's inputs start.
std::vector<int64_t> column_offsets(const Conv2dShape& s, const Flat& f) {
  const int64_t RS = s.R * s.S;
  std::vector<int64_t> off(static_cast<size_t>(s.C * RS));
  for (int64_t j = 0; j < s.C * RS; ++j) {
    const int64_t c = j / RS, r = (j / s.S) % s.R, q = j % s.S;
    off[static_cast<size_t>(j)] = f.plane(c, r, q) * f.Lx + f.shift(r, q);
  }
  return off;
}

/// For each entry: where its source's inputs start (src_off[src[e]]), for shifted_spmm and
/// backward-weight, which read them in place.
std::vector<int64_t> entry_offsets(const std::vector<int32_t>& src, const std::vector<int64_t>& src_off) {
  std::vector<int64_t> off(src.size());
  for (size_t e = 0; e < src.size(); ++e) off[e] = src_off[static_cast<size_t>(src[e])];
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

void set_tile_positions(int64_t positions) {
  LETHE_CHECK(positions == 0 || positions == 64 || positions == 128,
              "set_tile_positions: 0 (by L1 size), 64 or 128, not ", positions);
  forced_tile_positions.store(positions, std::memory_order_relaxed);
}

bool flat_forward_tiles(const Conv2dShape& s, const SparsePattern& pat) {
  return tiling_pays(s.K, pat.nnz(), pat.cols);
}

bool flat_backward_data_tiles(const Conv2dShape& s, const SparsePattern& pat) {
  return tiling_pays(s.C * s.stride * s.stride, pat.nnz(), s.K * s.R * s.S);
}

void flat_forward(const Conv2dShape& s, const SparsePattern& pat, const float* vals,
                  const float* x, const float* bias, float* y) {
  const int64_t g = images_per_task(s), P = s.P(), Q = s.Q();
  const Flat f0(s, g);
  const std::vector<int64_t> col_off = column_offsets(s, f0);
  const bool tiled = flat_forward_tiles(s, pat);
  const std::vector<int64_t> off = tiled ? std::vector<int64_t>{} : entry_offsets(pat.col_idx, col_off);
  const std::vector<int64_t> seg =
      tiled ? source_segments(s.K, pat.row_ptr.data(), pat.col_idx.data(), pat.cols) : std::vector<int64_t>{};
  for_each_task(s, g, [&](int64_t n0, int64_t gn) {
    const Flat& f = f0;  // a short last task uses the first gn images of the full layout
    float* xp = scratch<float>(0, s.C * f.phases * f.Lx);
    float* yf = scratch<float>(1, s.K * f.L);
    fill_xp(s, f, x, n0, gn, xp);
    if (tiled)
      tiled_spmm(s.K, f.L, vals, pat.col_idx.data(), pat.cols, col_off.data(), seg, xp, yf);
    else
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

namespace {

// A pairwise fold by halves, in registers: lanes l and l+8, then l and l+4, l+2, l+1. Written
// with GCC's vector extensions: the AVX-512 extract and cast intrinsics read an undefined
// source that GCC 12 flags as uninitialised (an error under -Werror in some build types).
float hsum(__m512 v) {
  typedef float v16 __attribute__((vector_size(64)));
  typedef float v8 __attribute__((vector_size(32)));
  typedef float v4 __attribute__((vector_size(16)));
  const v16 x = reinterpret_cast<v16>(v);
  const v8 s8 = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
  const v4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// part[u] += sum_o gk[o] * xp[off[u] + o] for u < U, o in [0, L): U dot products sharing each
/// gk load, each in C accumulators (positions 16c, 16(c + C), ...; L a multiple of 16 * C).
template <int U, int C>
void dot_products(const float* gk, const float* xp, const int64_t* off, int64_t L, float* part) {
  const float* p[U];
  for (int u = 0; u < U; ++u) p[u] = xp + off[u];
  __m512 a[U][C];
  for (int u = 0; u < U; ++u)
    for (int c = 0; c < C; ++c) a[u][c] = _mm512_setzero_ps();
  int64_t o = 0;
  for (; o + 16 * C <= L; o += 16 * C)
    for (int c = 0; c < C; ++c) {
      const __m512 gv = _mm512_loadu_ps(gk + o + 16 * c);
      for (int u = 0; u < U; ++u) a[u][c] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p[u] + o + 16 * c), a[u][c]);
    }
  for (; o < L; o += 16) {
    const __m512 gv = _mm512_loadu_ps(gk + o);
    for (int u = 0; u < U; ++u) a[u][0] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(p[u] + o), a[u][0]);
  }
  for (int u = 0; u < U; ++u) {
    __m512 t = a[u][0];
    for (int c = 1; c < C; ++c) t = _mm512_add_ps(t, a[u][c]);
    part[u] += hsum(t);
  }
}

/// Backward-data as a product over the xp planes (c, a, b), built once per call.
struct BackwardDataPlan {
  const Conv2dShape& s;
  Flat f;
  int64_t M, nsrc;
  std::vector<int64_t> ptr, src_off, off, seg;
  std::vector<int32_t> src;
  std::vector<float> val;
  bool tiled;

  // Rows of the transposed product: the xp planes (c, a, b). Its sources are the (k, r, s):
  // gyflat row k at shift -f.shift(r, s). Each CSR entry (k; c, r, s) goes to row
  // f.plane(c, r, s) as source k*RS + r*S + s; a counting sort over the planes, walking the
  // CSR in order, leaves each row's entries sorted by source, as tiled_spmm needs.
  BackwardDataPlan(const Conv2dShape& shape, const SparsePattern& pat, const float* vals)
      : s(shape), f(shape, images_per_task(shape)) {
    const int64_t RS = s.R * s.S, nnz = pat.nnz();
    M = s.C * f.phases;
    nsrc = s.K * RS;
    ptr.assign(static_cast<size_t>(M + 1), 0);
    src_off.resize(static_cast<size_t>(nsrc));
    src.resize(static_cast<size_t>(nnz));
    val.resize(static_cast<size_t>(nnz));
    for (int64_t q = 0; q < nsrc; ++q)
      src_off[static_cast<size_t>(q)] = (q / RS) * f.Lg + f.lead - f.shift((q % RS) / s.S, q % s.S);
    // Per column j: its plane and tap, looked up per entry (divisions per entry cost ~10 ms a
    // call at a million entries).
    std::vector<int32_t> plane_of(static_cast<size_t>(pat.cols)), tap_of(static_cast<size_t>(pat.cols));
    for (int64_t j = 0; j < pat.cols; ++j) {
      plane_of[static_cast<size_t>(j)] = static_cast<int32_t>(f.plane(j / RS, (j / s.S) % s.R, j % s.S));
      tap_of[static_cast<size_t>(j)] = static_cast<int32_t>(j % RS);
    }
    for (int64_t e = 0; e < nnz; ++e)
      ++ptr[static_cast<size_t>(plane_of[static_cast<size_t>(pat.col_idx[static_cast<size_t>(e)])] + 1)];
    for (int64_t m = 0; m < M; ++m) ptr[static_cast<size_t>(m + 1)] += ptr[static_cast<size_t>(m)];
    std::vector<int64_t> next(ptr.begin(), ptr.end() - 1);
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t e = pat.row_ptr[static_cast<size_t>(k)]; e < pat.row_ptr[static_cast<size_t>(k + 1)]; ++e) {
        const size_t j = static_cast<size_t>(pat.col_idx[static_cast<size_t>(e)]);
        const int64_t d = next[static_cast<size_t>(plane_of[j])]++;
        src[static_cast<size_t>(d)] = static_cast<int32_t>(k * RS + tap_of[j]);
        val[static_cast<size_t>(d)] = vals[e];
      }
    tiled = flat_backward_data_tiles(s, pat);
    if (tiled)
      seg = source_segments(M, ptr.data(), src.data(), nsrc);
    else
      off = entry_offsets(src, src_off);
  }

  /// gx of images n0 .. n0+gn-1 from their gyflat.
  void task(const float* gyf, int64_t n0, int64_t gn, float* gx) const {
    float* gxp = scratch<float>(3, M * f.L);
    if (tiled)
      tiled_spmm(M, f.L, val.data(), src.data(), nsrc, src_off.data(), seg, gyf, gxp);
    else
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
  }
};

/// Backward-weight: the dot products at the CSR entries, per task into a thread's partial.
struct BackwardWeightPlan {
  const Conv2dShape& s;
  const SparsePattern& pat;
  Flat f;
  std::vector<int64_t> off;

  BackwardWeightPlan(const Conv2dShape& shape, const SparsePattern& p)
      : s(shape), pat(p), f(shape, images_per_task(shape)),
        off(entry_offsets(p.col_idx, column_offsets(shape, f))) {}

  /// Adds the images n0 .. n0+gn-1 (x, and their gyflat) into part.
  void task(const float* x, const float* gyf, int64_t n0, int64_t gn, float* part) const {
    float* xp = scratch<float>(0, s.C * f.phases * f.Lx);
    fill_xp(s, f, x, n0, gn, xp);
    for (int64_t k = 0; k < s.K; ++k) {
      const float* gk = gyf + k * f.Lg + f.lead;
      int64_t i = pat.row_ptr[static_cast<size_t>(k)];
      const int64_t i1 = pat.row_ptr[static_cast<size_t>(k + 1)];
      // 4 nonzeros share each gy load (8 measured no faster, on Zen 4 and Zen 5); the rest of
      // the row one at a time, in two chains.
      for (; i + 4 <= i1; i += 4) dot_products<4, 1>(gk, xp, off.data() + i, f.L, part + i);
      for (; i < i1; ++i) dot_products<1, 2>(gk, xp, off.data() + i, f.L, part + i);
    }
  }
};

}  // namespace

void flat_backward(const Conv2dShape& s, const SparsePattern& pat, const float* vals,
                   const float* x, const float* gy, float* gx, float* partial_all, int nthreads) {
  const int64_t g = images_per_task(s), nnz = pat.nnz();
  const int64_t tasks = s.N == 0 ? 0 : (s.N + g - 1) / g;
  std::optional<BackwardDataPlan> data;
  std::optional<BackwardWeightPlan> weight;
  if (gx) data.emplace(s, pat, vals);
  if (partial_all) weight.emplace(s, pat);
  const Flat f(s, g);
  // One task loop for both products: each task's gy is laid out once and is still in L2 when
  // the second product reads it. The static schedule gives each thread the same tasks as the
  // separate loops would, so backward-weight's partials (and gw) are the same bits.
#pragma omp parallel num_threads(nthreads)
  {
    float* part = partial_all ? partial_all + omp_get_thread_num() * nnz : nullptr;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t n0 = t * g, gn = std::min(g, s.N - n0);
      float* gyf = scratch<float>(2, s.K * f.Lg);
      fill_gyflat(s, f, gy, n0, gn, gyf);
      if (data) data->task(gyf, n0, gn, gx);
      if (weight) weight->task(x, gyf, n0, gn, part);
    }
  }
}

}  // namespace lethe::kernels::sparse_detail

#endif  // __AVX512F__
