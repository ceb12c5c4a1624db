// What the two conv2d CUDA files share (kernels/cuda/conv2d.cu: v1, v2 and the entry points;
// kernels/cuda/conv2d_tc.cu: v3): the shape in 32-bit ints, the block tile, and the three
// conv products written as implicit GEMMs  Out (M x Ncol) = A (M x depth) * B (depth x Ncol).
//
//   product          M   Ncol    depth   A[m, kk]                 B[kk, j]
//   forward          K   N*P*Q   C*R*S   w[k, (c,r,s)]            x at (n,c,p*st+r-pad,q*st+s-pad)
//   backward-data    C   N*H*W   K*R*S   w[(k,r,s) -> k,c,r,s]    gy at (n,k,(h+pad-r)/st,...)
//                    (split into stride^2 phases, each with its share of columns and taps)
//   backward-weight  K   C*R*S   N*P*Q   gy[n,k,p,q]              x at (n,c,p*st+r-pad,q*st+s-pad)
//
// Neither A nor B is ever materialised: a kernel asks the description for one element at a
// time (a(), b()) while staging a tile into shared memory, and B positions that fall into the
// zero padding read as 0. The description also
// knows where output (m, j) lives in the NCHW / KCRS output (out_col(), store()), and which
// part of the problem blockIdx.z selects (select_part(): a stride phase of backward-data, a
// split of backward-weight's reduction; nothing for forward).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/fastdiv.h"

namespace lethe::kernels::cuda {

/// Conv2dShape in ints (the entry points check every tensor has < 2^31 elements), with the
/// products and fast divisors the index arithmetic needs precomputed.
struct ConvDims {
  int N, C, H, W, K, R, S, P, Q, stride, pad;
  int HW, PQ, RS, CRS;
  FastDiv by_PQ, by_Q, by_RS, by_S;
};

// Block tile of v2 and v3: 64 output rows (channels) x 128 output columns, 256 threads. The
// backward-weight split count depends on it, so both versions use the same one.
constexpr int kBM = 64, kBN = 128, kThreads = 256;

// A row or column outside the matrix is given this offset as its spatial origin: every
// position derived from it is far outside the image, so the bounds test that zero-pads also
// zeroes the out-of-matrix parts of a tile (one test instead of two). The entry points keep
// padded images below kFar / 2, so no sum of positions comes near int overflow.
constexpr int kFar = 1 << 29;

// ---- forward: y (K x NPQ) = w (K x CRS) * im2col(x) (CRS x NPQ) ---------------------------
struct ForwardGemm {
  ConvDims d;
  const float* x;     // N*C*H*W
  const float* w;     // K*C*R*S
  const float* bias;  // K or nullptr
  float* y;           // N*K*P*Q
  bool vec4;          // 4 neighbouring columns are 4 neighbouring, 16-byte aligned floats of y

  __device__ int rows() const { return d.K; }
  __device__ int cols() const { return d.N * d.PQ; }
  __device__ int depth() const { return d.CRS; }
  __device__ void select_part(int) {}

  // A is w read as a K x CRS row-major matrix.
  __device__ float a(int m, int kk) const {
    return (m < d.K && kk < d.CRS) ? __ldg(w + m * d.CRS + kk) : 0.f;
  }
  // Column j = (n, p, q): where its receptive field starts (may be negative: padding).
  struct Col {
    int base, h0, w0;
  };
  __device__ Col col(int j) const {
    if (j >= cols()) return {0, -kFar, 0};
    const int n = d.by_PQ.div(j), pq = j - n * d.PQ, p = d.by_Q.div(pq), q = pq - p * d.Q;
    return {n * d.C * d.HW, p * d.stride - d.pad, q * d.stride - d.pad};
  }
  // Row kk = (c, r, s): the input channel's plane and the filter tap.
  struct Row {
    int off, r, s;
  };
  __device__ Row row(int kk) const {
    if (kk >= d.CRS) return {0, -kFar, 0};
    const int c = d.by_RS.div(kk), rs = kk - c * d.RS, r = d.by_S.div(rs);
    return {c * d.HW, r, rs - r * d.S};
  }
  __device__ float b(const Row& r, const Col& c) const {
    const int h = c.h0 + r.r, ww = c.w0 + r.s;
    return (h >= 0 && h < d.H && ww >= 0 && ww < d.W) ? __ldg(x + c.base + r.off + h * d.W + ww)
                                                      : 0.f;
  }
  // y[n, m, p, q] = y[out_col(j) + m*P*Q]
  __device__ int out_col(int j) const {
    const int n = d.by_PQ.div(j);
    return n * d.K * d.PQ + (j - n * d.PQ);
  }
  __device__ void store(int m, int oc, float v) const {
    y[oc + m * d.PQ] = v + (bias ? __ldg(bias + m) : 0.f);
  }
  __device__ void store4(int m, int oc, float4 v) const {
    const float b = bias ? __ldg(bias + m) : 0.f;
    v.x += b, v.y += b, v.z += b, v.w += b;
    *reinterpret_cast<float4*>(y + oc + m * d.PQ) = v;
  }
};

// ---- backward-data: gx (C x NHW) = w^T (C x KRS) * cols(gy) (KRS x NHW), by stride phase ----
// Input row h receives tap r only when h + pad - r is a multiple of the stride, i.e. when
// r = r0 (mod stride) with r0 = (h + pad) % stride, which depends only on h % stride. So the
// GEMM is split by phase (h % st, w % st) = (ha, wb), one per blockIdx.z: its columns are the
// input positions of that phase, its depth only the taps that reach them (about K*R*S/st^2),
// and the output row is a subtraction, p = (h + pad - r) / st = ah + hh - ir with
// h = ha + st*hh, r = r0 + st*ir. For stride 1 there is one phase and this is the plain transposed
// GEMM. Gathering every gx element from its own GEMM row and column needs no atomics.
struct BackwardDataGemm {
  ConvDims d;
  const float* gy;  // N*K*P*Q
  const float* w;   // K*C*R*S
  float* gx;        // N*C*H*W
  bool vec4;
  // The phase (select_part): input rows ha + st*hh (hh < Hs), taps r0 + st*ir (ir < nr), and
  // ah = (ha + pad - r0) / st; likewise wb, Ws, s0, ns, bw for columns.
  int ha = 0, wb = 0, Hs = 0, Ws = 0, r0 = 0, s0 = 0, nr = 0, ns = 0, ah = 0, bw = 0;
  FastDiv by_taps, by_ns, by_HsWs, by_Ws;  // nr*ns, ns, Hs*Ws, Ws (1 where one is 0)

  __device__ int rows() const { return d.C; }
  __device__ int cols() const { return d.N * Hs * Ws; }
  __device__ int depth() const { return d.K * nr * ns; }
  __device__ void select_part(int z) {
    const int st = d.stride;
    ha = z / st, wb = z - ha * st;
    Hs = (d.H - ha + st - 1) / st, Ws = (d.W - wb + st - 1) / st;  // 0 when ha >= H
    r0 = (ha + d.pad) % st, s0 = (wb + d.pad) % st;
    nr = r0 < d.R ? (d.R - r0 + st - 1) / st : 0;  // 0: this phase receives no tap, gx = 0
    ns = s0 < d.S ? (d.S - s0 + st - 1) / st : 0;
    ah = (ha + d.pad - r0) / st, bw = (wb + d.pad - s0) / st;  // exact by the choice of r0, s0
    // Every thread of the block computes these once; a zero divisor (an empty phase) is
    // never divided by (the range tests come first), so it gets 1.
    by_taps = FastDiv(nr * ns > 0 ? nr * ns : 1), by_ns = FastDiv(ns > 0 ? ns : 1);
    by_HsWs = FastDiv(Hs * Ws > 0 ? Hs * Ws : 1), by_Ws = FastDiv(Ws > 0 ? Ws : 1);
  }

  // A[c, (k,ir,is)] = w[k, c, r0 + st*ir, s0 + st*is]. (Every division below comes after the
  // range test, so an empty phase never divides by zero.)
  __device__ float a(int m, int kk) const {
    if (m >= d.C || kk >= depth()) return 0.f;
    const int k = by_taps.div(kk), t = kk - k * nr * ns, ir = by_ns.div(t), is = t - ir * ns;
    return __ldg(w + ((k * d.C + m) * d.R + r0 + d.stride * ir) * d.S + s0 + d.stride * is);
  }
  // Column j = (n, hh, ww): gy's image and the output position tap (0, 0) would read.
  struct Col {
    int base, p0, q0;
  };
  __device__ Col col(int j) const {
    if (j >= cols()) return {0, -kFar, 0};
    const int n = by_HsWs.div(j), t = j - n * Hs * Ws, hh = by_Ws.div(t);
    return {n * d.K * d.PQ, ah + hh, bw + t - hh * Ws};
  }
  // Row kk = (k, ir, is): gy's channel plane and how far the tap steps back (an invalid row
  // steps back kFar, so p < 0).
  struct Row {
    int off, ir, is;
  };
  __device__ Row row(int kk) const {
    if (kk >= depth()) return {0, kFar, 0};
    const int k = by_taps.div(kk), t = kk - k * nr * ns, ir = by_ns.div(t);
    return {k * d.PQ, ir, t - ir * ns};
  }
  __device__ float b(const Row& r, const Col& c) const {
    const int p = c.p0 - r.ir, q = c.q0 - r.is;
    return (p >= 0 && p < d.P && q >= 0 && q < d.Q) ? __ldg(gy + c.base + r.off + p * d.Q + q)
                                                    : 0.f;
  }
  // gx[n, m, ha + st*hh, wb + st*ww] = gx[out_col(j) + m*H*W]
  __device__ int out_col(int j) const {
    const int n = by_HsWs.div(j), t = j - n * Hs * Ws, hh = by_Ws.div(t);
    return n * d.C * d.HW + (ha + d.stride * hh) * d.W + wb + d.stride * (t - hh * Ws);
  }
  __device__ void store(int m, int oc, float v) const { gx[oc + m * d.HW] = v; }
  __device__ void store4(int m, int oc, float4 v) const {
    *reinterpret_cast<float4*>(gx + oc + m * d.HW) = v;
  }
};

// ---- backward-weight: gw (K x CRS) = gy (K x NPQ) * im2col(x)^T (NPQ x CRS) ----------------
// The reduction N*P*Q is long and the output small, so blockIdx.z splits it over images:
// split z sums images [N*z/splits, N*(z+1)/splits) into its own K x CRS slab of `out` (the
// workspace; gw itself when splits == 1), and a fixed-order reduce adds the slabs.
struct BackwardWeightGemm {
  ConvDims d;
  const float* x;   // N*C*H*W
  const float* gy;  // N*K*P*Q
  float* out;       // splits * K*C*R*S
  int splits;
  bool vec4;
  int n_begin = 0, n_count = 0;  // this block's images (select_part: the split)

  __device__ int rows() const { return d.K; }
  __device__ int cols() const { return d.CRS; }
  __device__ int depth() const { return n_count * d.PQ; }
  __device__ void select_part(int z) {
    n_begin = static_cast<int>(static_cast<int64_t>(d.N) * z / splits);
    n_count = static_cast<int>(static_cast<int64_t>(d.N) * (z + 1) / splits) - n_begin;
    out += static_cast<int64_t>(z) * d.K * d.CRS;
  }

  // A[k, (n,p,q)] = gy[n_begin + n, k, p, q]: consecutive kk are consecutive floats of one plane.
  __device__ float a(int m, int kk) const {
    if (m >= d.K || kk >= depth()) return 0.f;
    const int n = d.by_PQ.div(kk);
    return __ldg(gy + ((n_begin + n) * d.K + m) * d.PQ + (kk - n * d.PQ));
  }
  // Column j = (c, r, s): the input plane and the tap.
  struct Col {
    int off, r, s;
  };
  __device__ Col col(int j) const {
    if (j >= d.CRS) return {0, -kFar, 0};
    const int c = d.by_RS.div(j), rs = j - c * d.RS, r = d.by_S.div(rs);
    return {c * d.HW, r, rs - r * d.S};
  }
  // Row kk = (n, p, q): the image and the receptive field's origin.
  struct Row {
    int off, h0, w0;
  };
  __device__ Row row(int kk) const {
    if (kk >= depth()) return {0, -kFar, 0};
    const int n = d.by_PQ.div(kk), pq = kk - n * d.PQ, p = d.by_Q.div(pq);
    return {(n_begin + n) * d.C * d.HW, p * d.stride - d.pad, (pq - p * d.Q) * d.stride - d.pad};
  }
  __device__ float b(const Row& r, const Col& c) const {
    const int h = r.h0 + c.r, ww = r.w0 + c.s;
    return (h >= 0 && h < d.H && ww >= 0 && ww < d.W) ? __ldg(x + r.off + c.off + h * d.W + ww)
                                                      : 0.f;
  }
  __device__ int out_col(int j) const { return j; }
  __device__ void store(int m, int oc, float v) const { out[m * d.CRS + oc] = v; }
  __device__ void store4(int m, int oc, float4 v) const {
    *reinterpret_cast<float4*>(out + m * d.CRS + oc) = v;
  }
};

/// Grid of a GEMM description: x over 128-column tiles, y over tile_m-row tiles (64, or 128
/// for conv2d v4), z over its parts (select_part: backward-data stride phases, backward-weight
/// splits; 1 for forward).
inline dim3 gemm_grid(int rows, int cols, int splits, int tile_m = kBM) {
  return dim3(static_cast<unsigned>((cols + kBN - 1) / kBN),
              static_cast<unsigned>((rows + tile_m - 1) / tile_m), static_cast<unsigned>(splits));
}

/// v3 (conv2d_tc.cu): one launch of the TF32 tensor-core implicit GEMM for description g,
/// followed by check_launch(what).
template <class G>
void launch_igemm_tf32(const G& g, dim3 grid, cudaStream_t stream, const char* what);

}  // namespace lethe::kernels::cuda
