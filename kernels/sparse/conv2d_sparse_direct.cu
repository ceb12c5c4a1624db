// Sparse conv2d v2 "direct" (kernels/sparse/conv2d_sparse_cuda.h): hand-written kernels that
// read the activations directly, with no im2col matrix. Layout NCHW, weight K x CRS with
// j = (c, r, s); the pattern's CSR gives each row k its kept columns, the transposed copy
// gives each column j its kept rows (see SparsePatternCuda). Values were gathered by the
// entry point into p.vals (CSR order) and p.tvals (transposed order).
//
// forward_kernel: grid (K, pixel tiles), 256 threads; thread = one output pixel
//   u = n*PQ + p*Q + q of the tile, block = one output channel k. The row's kept taps are
//   decoded once per block into shared memory as {value, offset c*HW + r*W + s, r, s}; each
//   thread then walks them: in-window check on (p*stride - pad + r, q*stride - pad + s), one
//   load of x, one multiply-add. Consecutive threads are consecutive q, so for every tap a
//   warp reads consecutive (stride 1) or every other (stride 2) floats of one input row. k
//   varies fastest over the grid, so the blocks running together share one tile of x in L2.
// backward_data_kernel: gather form through the transposed structure. Grid (C, pixel tiles);
//   thread = one input pixel u = n*HW + h*W + w, block = one input channel c. The entries of
//   the channel's RS columns are contiguous in the transpose; they are staged as {value,
//   k*PQ, r, s}. For a column (r, s) the pixel is read by output (p, q) = ((h + pad - r) /
//   stride, (w + pad - s) / stride) when both divide exactly and land inside P x Q: computed
//   once per column (entries are sorted by column), then one load of gy per entry.
// backward_weight_kernel: a group of `split` warps per nonzero (k, j): the lanes stride over
//   the N*P*Q output positions (walked with additions only: no division per element), each
//   lane sums gy[n,k,p,q] * x[n,c,ih,iw] in order, warp_sum folds the lanes, and the first
//   warp of the group adds the group's warp sums in order. split (1..8) depends only on the
//   shape and nnz, so every run adds in the same order. gw is zeroed first; each kept entry is
//   then written by exactly one thread.
// No atomics anywhere; every output element has one writer and a fixed order of additions.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/sparse/conv2d_sparse_cuda_internal.cuh"

namespace lethe::kernels::sparse_cuda {

namespace {

using cuda::check_launch;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGridY = 65535;
constexpr int64_t kTargetWarps = 8192;  // enough warps in flight to fill an H100 (132 SMs)

__global__ void __launch_bounds__(kThreads)
    forward_kernel(Geom g, const int32_t* __restrict__ row_ptr,
                   const int32_t* __restrict__ col_idx, const float* __restrict__ vals,
                   const float* __restrict__ x, const float* __restrict__ bias,
                   float* __restrict__ y) {
  __shared__ int4 taps[kThreads];  // {value bits, c*HW + r*W + s, r, s}
  const int k = blockIdx.x;
  const int i0 = row_ptr[k], i1 = row_ptr[k + 1];
  const int npq = g.N * g.PQ, tiles = (npq + kThreads - 1) / kThreads;
  const float b0 = bias ? bias[k] : 0.f;
  const int64_t chw = static_cast<int64_t>(g.C) * g.HW;
  for (int tile = blockIdx.y; tile < tiles; tile += gridDim.y) {  // uniform over the block
    // Indexing: this thread's output pixel and the top-left corner of its input window.
    const int u = tile * kThreads + threadIdx.x;
    const bool live = u < npq;
    const int n = live ? u / g.PQ : 0, pq = live ? u - n * g.PQ : 0;
    const int p = pq / g.Q, q = pq - p * g.Q;
    const int ih0 = p * g.stride - g.pad, iw0 = q * g.stride - g.pad;
    // May point before the image (padding): only read at offsets that land inside it.
    const int64_t base = n * chw + static_cast<int64_t>(ih0) * g.W + iw0;
    float acc = b0;
    for (int c0 = i0; c0 < i1; c0 += kThreads) {
      const int cnt = min(kThreads, i1 - c0);
      __syncthreads();  // every thread is done with the previous batch of taps
      // Staging: thread t decodes tap c0 + t once for the whole block.
      if (threadIdx.x < cnt) {
        const int j = col_idx[c0 + threadIdx.x];
        const int c = j / g.RS, rs = j - c * g.RS, r = rs / g.S, s = rs - r * g.S;
        taps[threadIdx.x] =
            make_int4(__float_as_int(vals[c0 + threadIdx.x]), c * g.HW + r * g.W + s, r, s);
      }
      __syncthreads();  // the batch is visible to every thread
      if (live) {
        for (int e = 0; e < cnt; ++e) {
          const int4 t = taps[e];  // the same address for all threads: a broadcast
          // Masking: one unsigned compare per axis rejects both sides of the padding.
          if (static_cast<unsigned>(ih0 + t.z) < static_cast<unsigned>(g.H) &&
              static_cast<unsigned>(iw0 + t.w) < static_cast<unsigned>(g.W))
            acc += __int_as_float(t.x) * x[base + t.y];
        }
      }
    }
    if (live) y[(static_cast<int64_t>(n) * g.K + k) * g.PQ + pq] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    backward_data_kernel(Geom g, const int32_t* __restrict__ t_ptr,
                         const int32_t* __restrict__ t_row, const int32_t* __restrict__ t_src,
                         const int32_t* __restrict__ col_idx, const float* __restrict__ tvals,
                         const float* __restrict__ gy, float* __restrict__ gx) {
  __shared__ int4 taps[kThreads];  // {value bits, k*PQ, r, s}
  const int c = blockIdx.x;
  const int e0 = t_ptr[c * g.RS], e1 = t_ptr[(c + 1) * g.RS];  // the channel's RS columns
  const int nhw = g.N * g.HW, tiles = (nhw + kThreads - 1) / kThreads;
  for (int tile = blockIdx.y; tile < tiles; tile += gridDim.y) {  // uniform over the block
    const int u = tile * kThreads + threadIdx.x;
    const bool live = u < nhw;
    const int n = live ? u / g.HW : 0, hw = live ? u - n * g.HW : 0;
    const int h = hw / g.W, w = hw - h * g.W;
    const int64_t gbase = static_cast<int64_t>(n) * g.K * g.PQ;
    float acc = 0.f;
    int cur_r = -1, cur_s = -1;  // the column whose output position is cached below
    bool ok = false;             // does that column's tap read this pixel at all?
    int64_t off = 0;             // gy offset of the output position (channel 0)
    for (int c0 = e0; c0 < e1; c0 += kThreads) {
      const int cnt = min(kThreads, e1 - c0);
      __syncthreads();  // every thread is done with the previous batch
      if (threadIdx.x < cnt) {
        const int e = c0 + threadIdx.x;
        // The entry's column j = col_idx of the CSR entry it stands for; (r, s) = j - c*RS.
        const int rs = col_idx[t_src[e]] - c * g.RS, r = rs / g.S, s = rs - r * g.S;
        taps[threadIdx.x] = make_int4(__float_as_int(tvals[e]), t_row[e] * g.PQ, r, s);
      }
      __syncthreads();
      if (live) {
        for (int e = 0; e < cnt; ++e) {
          const int4 t = taps[e];
          if (t.z != cur_r || t.w != cur_s) {  // a new column: the same for all threads
            cur_r = t.z;
            cur_s = t.w;
            const int hp = h + g.pad - cur_r, wq = w + g.pad - cur_s;
            const int p = hp / g.stride, q = wq / g.stride;
            ok = hp >= 0 && wq >= 0 && p * g.stride == hp && q * g.stride == wq && p < g.P &&
                 q < g.Q;
            off = gbase + p * g.Q + q;
          }
          if (ok) acc += __int_as_float(t.x) * gy[off + t.y];
        }
      }
    }
    if (live) gx[(static_cast<int64_t>(n) * g.C + c) * g.HW + hw] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    backward_weight_kernel(Geom g, int nnz, int split, const int32_t* __restrict__ row_idx,
                           const int32_t* __restrict__ col_idx, const float* __restrict__ x,
                           const float* __restrict__ gy, float* __restrict__ gw) {
  __shared__ float partial[kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int groups = kWarps / split;  // nonzeros per block and round
  const int group = warp / split, member = warp - group * split;
  // The walk over u = n*PQ + p*Q + q advances by step = split*32 positions per iteration;
  // step = dn*PQ + dp*Q + dq with dq < Q and dp < P, so one carry per axis suffices.
  const int step = split * 32;
  const int dn = step / g.PQ, rem = step - dn * g.PQ, dp = rem / g.Q, dq = rem - dp * g.Q;
  const int64_t chw = static_cast<int64_t>(g.C) * g.HW, kpq = static_cast<int64_t>(g.K) * g.PQ;
  for (int first = blockIdx.x * groups; first < nnz; first += gridDim.x * groups) {  // uniform
    const int i = first + group;
    float acc = 0.f;
    if (i < nnz) {
      const int k = row_idx[i], j = col_idx[i];
      const int c = j / g.RS, rs = j - c * g.RS, r = rs / g.S, s = rs - r * g.S;
      const float* xc = x + static_cast<int64_t>(c) * g.HW;
      const float* gk = gy + static_cast<int64_t>(k) * g.PQ;
      const int u0 = member * 32 + lane;
      int n = u0 / g.PQ, pq = u0 - n * g.PQ;
      int p = pq / g.Q, q = pq - p * g.Q;
      while (n < g.N) {
        const int ih = p * g.stride - g.pad + r, iw = q * g.stride - g.pad + s;
        if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) &&
            static_cast<unsigned>(iw) < static_cast<unsigned>(g.W))
          acc += gk[n * kpq + p * g.Q + q] * xc[n * chw + ih * g.W + iw];
        q += dq;
        if (q >= g.Q) {
          q -= g.Q;
          ++p;
        }
        p += dp;
        if (p >= g.P) {
          p -= g.P;
          ++n;
        }
        n += dn;
      }
    }
    // Reduction: lanes (fixed butterfly), then the group's warps in order.
    acc = cuda::warp_sum(acc);
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (member == 0 && lane == 0 && i < nnz) {
      float v = 0.f;
      for (int m = 0; m < split; ++m) v += partial[group * split + m];
      gw[static_cast<int64_t>(row_idx[i]) * g.CRS + col_idx[i]] = v;
    }
    __syncthreads();  // partial is rewritten in the next round
  }
}

dim3 tile_grid(int blocks_x, int64_t items) {
  const int64_t tiles = (items + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(blocks_x),
              static_cast<unsigned>(std::clamp<int64_t>(tiles, 1, kMaxGridY)));
}

/// Warps per nonzero: more when there are too few nonzeros to fill the GPU and each warp would
/// still have at least 64 positions per lane to sum. Depends on the shape and nnz only.
int split_for(const Geom& g, int64_t nnz) {
  const int64_t npq = static_cast<int64_t>(g.N) * g.PQ;
  int split = 1;
  while (split < kWarps && nnz * split < kTargetWarps && npq >= int64_t{4096} * (split * 2))
    split *= 2;
  return split;
}

}  // namespace

void direct_forward(const Geom& g, const SparsePatternCuda& p, const float* x,
                    const float* bias, float* y, cudaStream_t st) {
  forward_kernel<<<tile_grid(g.K, static_cast<int64_t>(g.N) * g.PQ), kThreads, 0, st>>>(
      g, p.row_ptr, p.col_idx, p.vals, x, bias, y);
  check_launch("sparse_conv2d(direct) forward_kernel", st);
}

void direct_backward_data(const Geom& g, const SparsePatternCuda& p, const float* gy,
                          float* gx, cudaStream_t st) {
  backward_data_kernel<<<tile_grid(g.C, static_cast<int64_t>(g.N) * g.HW), kThreads, 0, st>>>(
      g, p.t_ptr, p.t_row, p.t_src, p.col_idx, p.tvals, gy, gx);
  check_launch("sparse_conv2d(direct) backward_data_kernel", st);
}

void direct_backward_weight(const Geom& g, const SparsePatternCuda& p, const float* x,
                            const float* gy, float* gw, cudaStream_t st) {
  // Zero first (stream order): the kernel writes the kept entries only.
  CUDA_CHECK(cudaMemsetAsync(gw, 0, static_cast<size_t>(p.rows * p.cols) * sizeof(float), st));
  const int split = split_for(g, p.nnz), groups = kWarps / split;
  const int64_t blocks = std::min<int64_t>((p.nnz + groups - 1) / groups, int64_t{1} << 20);
  backward_weight_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(
      g, static_cast<int>(p.nnz), split, p.row_idx, p.col_idx, x, gy, gw);
  check_launch("sparse_conv2d(direct) backward_weight_kernel", st);
}

}  // namespace lethe::kernels::sparse_cuda
