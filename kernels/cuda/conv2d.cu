// conv2d on CUDA, float32, NCHW activations and KCRS weights (formulas in kernels/conv2d.h):
//   forward:          y[n,k,p,q]  = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*st+r-pad,q*st+s-pad]
//   backward-data:    gx[n,c,h,w] = sum_{k,r,s} w[k,c,r,s] * gy[n,k,(h+pad-r)/st,(w+pad-s)/st]
//                                   (only where the division is whole and inside P x Q)
//   backward-weight:  gw[k,c,r,s] = sum_{n,p,q} gy[n,k,p,q] * x[n,c,p*st+r-pad,q*st+s-pad],
//                     gb[k] = sum_{n,p,q} gy[n,k,p,q]
// Versions (CudaExec::version; 0 = v2 under CudaMath::FP32, v3 under CudaMath::TF32):
//   v1  the CPU oracle's loops, one thread per output element (gw: per weight; gb: per k).
//   v2  fp32 implicit GEMM (conv2d_internal.cuh): 64 x 128 block tiles, 256 threads each
//       computing 4 x 8 outputs, depth staged 8 at a time through double-buffered shared memory.
//       Backward-data runs one GEMM per stride phase, so no tap between the strides is ever
//       multiplied. Backward-weight splits its long N*P*Q reduction over images into the
//       caller's workspace and adds the slabs in a fixed order; gb is a block reduction per k.
//   v3  the same GEMMs on TF32 tensor cores (conv2d_tc.cu), only under CudaMath::TF32.
//   v4  v2's kernel with 128 x 128 tiles, 8 x 8 outputs per thread (fp32; not the default
//       until the H100 benchmark says it is faster).
//   v5  v4 compiled for one block per SM instead of two: no 128-register cap, so none of
//       v4's spills, at half the resident warps (which one wins is the benchmark's call).
// No atomics anywhere: every output element is written by exactly one thread, and every sum
// runs in an order fixed by the shape alone, so repeated calls are bit-identical.
// Tests: tests/cuda/test_conv2d_cuda.cpp. Benchmark: bench/bench_conv2d_cuda.cpp.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv2d_internal.cuh"

namespace lethe::kernels {

namespace cuda {
namespace {

constexpr int kVersions = 5;
constexpr const char* kVersionNames[kVersions] = {"direct", "igemm_fp32", "igemm_tf32",
                                                  "igemm_fp32_128", "igemm_fp32_128_1blk"};

/// Output rows (channels) per block tile of a GEMM version: v4 and v5 double v2's 64.
constexpr int tile_rows(int version) { return version >= 4 ? 2 * kBM : kBM; }
/// Blocks of a GEMM version resident per SM (its __launch_bounds__): v5 runs one.
constexpr int blocks_per_sm(int version) { return version == 5 ? 1 : 2; }

// ---- v1: the oracle's loops -------------------------------------------------------------

// One thread per y element, grid-stride over y in memory order (n, k, p, q), so neighbouring
// threads read neighbouring x columns and write neighbouring y floats.
__global__ void forward_v1(ConvDims d, const float* __restrict__ x /* N*C*H*W */,
                           const float* __restrict__ w /* K*C*R*S */,
                           const float* __restrict__ bias /* K or nullptr */,
                           float* __restrict__ y /* N*K*P*Q */) {
  const int64_t total = static_cast<int64_t>(d.N) * d.K * d.PQ;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int idx = static_cast<int>(i);
    const int q = idx % d.Q, p = (idx / d.Q) % d.P, k = (idx / d.PQ) % d.K, n = idx / (d.K * d.PQ);
    float acc = bias ? bias[k] : 0.f;
    for (int c = 0; c < d.C; ++c)
      for (int r = 0; r < d.R; ++r) {
        const int h = p * d.stride + r - d.pad;
        if (h < 0 || h >= d.H) continue;  // zero padding
        for (int s = 0; s < d.S; ++s) {
          const int ww = q * d.stride + s - d.pad;
          if (ww < 0 || ww >= d.W) continue;
          acc = fmaf(w[((k * d.C + c) * d.R + r) * d.S + s],
                     x[((n * d.C + c) * d.H + h) * d.W + ww], acc);
        }
      }
    y[idx] = acc;
  }
}

// One thread per gx element, gathering every (k, r, s) tap whose output lands on it: the
// output row is p = (h + pad - r) / stride, which must be whole and inside [0, P). No thread
// writes another's element, so there are no atomics.
__global__ void backward_data_v1(ConvDims d, const float* __restrict__ gy /* N*K*P*Q */,
                                 const float* __restrict__ w /* K*C*R*S */,
                                 float* __restrict__ gx /* N*C*H*W */) {
  const int64_t total = static_cast<int64_t>(d.N) * d.C * d.HW;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int idx = static_cast<int>(i);
    const int ww = idx % d.W, h = (idx / d.W) % d.H, c = (idx / d.HW) % d.C, n = idx / (d.C * d.HW);
    float acc = 0.f;
    for (int k = 0; k < d.K; ++k)
      for (int r = 0; r < d.R; ++r) {
        const int ph = h + d.pad - r;
        if (ph < 0 || ph % d.stride != 0 || ph / d.stride >= d.P) continue;
        const int p = ph / d.stride;
        for (int s = 0; s < d.S; ++s) {
          const int qw = ww + d.pad - s;
          if (qw < 0 || qw % d.stride != 0 || qw / d.stride >= d.Q) continue;
          acc = fmaf(w[((k * d.C + c) * d.R + r) * d.S + s],
                     gy[((n * d.K + k) * d.P + p) * d.Q + qw / d.stride], acc);
        }
      }
    gx[idx] = acc;
  }
}

// One thread per gw element looping over the whole batch and image.
__global__ void backward_weight_v1(ConvDims d, const float* __restrict__ x /* N*C*H*W */,
                                   const float* __restrict__ gy /* N*K*P*Q */,
                                   float* __restrict__ gw /* K*C*R*S */) {
  const int total = d.K * d.CRS;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int idx = static_cast<int>(i);
    const int s = idx % d.S, r = (idx / d.S) % d.R, c = (idx / d.RS) % d.C, k = idx / d.CRS;
    float acc = 0.f;
    for (int n = 0; n < d.N; ++n)
      for (int p = 0; p < d.P; ++p) {
        const int h = p * d.stride + r - d.pad;
        if (h < 0 || h >= d.H) continue;
        for (int q = 0; q < d.Q; ++q) {
          const int ww = q * d.stride + s - d.pad;
          if (ww < 0 || ww >= d.W) continue;
          acc = fmaf(gy[((n * d.K + k) * d.P + p) * d.Q + q],
                     x[((n * d.C + c) * d.H + h) * d.W + ww], acc);
        }
      }
    gw[idx] = acc;
  }
}

// gb[k]: one thread per output channel, summing its N planes in order.
__global__ void bias_grad_v1(ConvDims d, const float* __restrict__ gy /* N*K*P*Q */,
                             float* __restrict__ gb /* K */) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= d.K) return;
  float acc = 0.f;
  for (int n = 0; n < d.N; ++n)
    for (int i = 0; i < d.PQ; ++i) acc += gy[(n * d.K + k) * d.PQ + i];
  gb[k] = acc;
}

// ---- v2: fp32 implicit GEMM ---------------------------------------------------------------
//
// Block tile 64 (M) x 128 (Ncol), depth step 8. Thread t computes rows 4*(t/16) + {0..3} and
// columns 4*(t%16) + {0..3} and 64 + 4*(t%16) + {0..3}: 32 accumulators in registers, fed per
// depth step by one float4 of A and two float4s of B from shared memory (32 FMAs per 3 shared
// loads). The two column groups are 64 apart so each 8-thread phase of a float4 load reads 32
// consecutive floats of a B row (no bank conflicts), and the A read is a broadcast.
//
// Staging: each thread gathers 2 A and 4 B elements per depth step from global memory.
//   A: kk = t%8, rows t/8 and t/8 + 32 -- 8 threads cover one row's 8 consecutive kk (w and
//      gy are contiguous along kk). Stored transposed, As[kk][m], so the compute loop reads 4
//      rows as one float4; the +4 pad puts the 8 kk rows of one warp's store in different banks.
//   B: row kk = warp, columns lane + 32*i -- a warp reads 32 neighbouring columns, i.e.
//      neighbouring output positions and so (for stride 1) neighbouring floats of x. Each
//      thread keeps its 4 columns' decoded (n, p, q) for the whole K loop; per step it decodes
//      only its one row (c, r, s).
// Pipelining: the next step's global loads are issued into registers before the current
// step's FMAs, and stored into the other shared buffer after them, so one __syncthreads per
// step suffices (see the loop).
//
// v4 = the same kernel with RG = 2 row groups: a 128 x 128 tile, each thread 8 rows (4 at
// 4*(t/16) and 4 at 64 + 4*(t/16)) x 8 columns = 64 accumulators, fed per depth step by two
// float4s of A and two of B (64 FMAs per 4 shared loads, twice v2's ratio), and 4 A elements
// staged per thread (rows t/8 + 32*i). Added 2026-11-27 after the H100 profile put v2's
// forward at 25 TFLOP/s; not yet measured: bench_conv2d_cuda's cuda_v4 rows decide whether
// it becomes the fp32 default.
template <class G, int RG, int MinBlocks = 2>
__global__ void __launch_bounds__(kThreads, MinBlocks) igemm_fp32(G g) {
  constexpr int kBK = 8, kTM = RG * kBM;  // tile rows
  __shared__ __align__(16) float As[2][kBK][kTM + 4];
  __shared__ __align__(16) float Bs[2][kBK][kBN];

  g.select_part(blockIdx.z);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = blockIdx.y * kTM, j0 = blockIdx.x * kBN;
  const int a_kk = tid & 7, a_m = tid >> 3;  // staging roles (see above)
  typename G::Col bcol[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) bcol[i] = g.col(j0 + lane + 32 * i);

  float a_reg[2 * RG], b_reg[4];
  auto load = [&](int k0) {  // global -> registers, zero outside the matrix and in the padding
#pragma unroll
    for (int i = 0; i < 2 * RG; ++i) a_reg[i] = g.a(m0 + a_m + 32 * i, k0 + a_kk);
    const typename G::Row brow = g.row(k0 + warp);
#pragma unroll
    for (int i = 0; i < 4; ++i) b_reg[i] = g.b(brow, bcol[i]);
  };
  auto stash = [&](int buf) {  // registers -> shared buffer `buf`
#pragma unroll
    for (int i = 0; i < 2 * RG; ++i) As[buf][a_kk][a_m + 32 * i] = a_reg[i];
#pragma unroll
    for (int i = 0; i < 4; ++i) Bs[buf][warp][lane + 32 * i] = b_reg[i];
  };

  const int ty = tid >> 4, tx = tid & 15;
  float acc[4 * RG][8] = {};
  const int steps = (g.depth() + kBK - 1) / kBK;
  if (steps > 0) {
    load(0);
    stash(0);
  }
  __syncthreads();  // buffer 0 complete before anyone reads it

  for (int t = 0; t < steps; ++t) {
    const int buf = t & 1;
    if (t + 1 < steps) load((t + 1) * kBK);  // in flight during the FMAs below
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[4 * RG];
#pragma unroll
      for (int r = 0; r < RG; ++r) {
        const float4 av = *reinterpret_cast<const float4*>(&As[buf][kk][r * 64 + ty * 4]);
        a[4 * r] = av.x, a[4 * r + 1] = av.y, a[4 * r + 2] = av.z, a[4 * r + 3] = av.w;
      }
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 4 * RG; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // Writing buffer buf^1 is safe: its last readers ran in step t-1, and every thread has
    // passed the barrier that ended step t-1. The barrier below publishes it for step t+1 and
    // keeps step t+1's stash from overwriting buffer buf while someone still reads it here.
    if (t + 1 < steps) stash(buf ^ 1);
    __syncthreads();
  }

  // Epilogue: each thread owns two runs of 4 neighbouring columns per row; where the
  // description says they are 4 neighbouring aligned floats of the output, one float4 store.
  const int rows = g.rows(), cols = g.cols();
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int j = j0 + half * 64 + tx * 4;
    if (j >= cols) continue;
    const bool whole = g.vec4 && j + 3 < cols;
    const int oc = g.out_col(j);
#pragma unroll
    for (int i = 0; i < 4 * RG; ++i) {
      const int m = m0 + (i / 4) * 64 + ty * 4 + (i % 4);
      if (m >= rows) continue;
      if (whole) {
        g.store4(m, oc,
                 make_float4(acc[i][half * 4], acc[i][half * 4 + 1], acc[i][half * 4 + 2],
                             acc[i][half * 4 + 3]));
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)  // unrolled: acc indices stay compile-time (registers)
          if (j + e < cols) g.store(m, g.out_col(j + e), acc[i][half * 4 + e]);
      }
    }
  }
}

// Adds the split-K slabs of backward-weight: gw[i] = sum over z of part[z][i], z ascending,
// one thread per element (neighbouring threads read neighbouring floats of each slab).
__global__ void splitk_reduce(const float* __restrict__ part /* splits * n */, int splits, int n,
                              float* __restrict__ gw /* n */) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int z = 0; z < splits; ++z) acc += part[z * static_cast<int64_t>(n) + i];
    gw[i] = acc;
  }
}

// gb[k] for v2 and v3: one block per k; thread t sums elements t, t+256, ... of the k planes
// (flattened over n and p*q, so neighbouring threads read neighbouring floats even for 4x4
// planes), then a block reduction whose order depends only on blockDim: deterministic.
__global__ void __launch_bounds__(kThreads)
    bias_grad(ConvDims d, const float* __restrict__ gy, float* __restrict__ gb /* K */) {
  __shared__ float scratch[32];
  const int k = blockIdx.x, total = d.N * d.PQ;
  float acc = 0.f;
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int n = i / d.PQ;
    acc += __ldg(gy + (n * d.K + k) * d.PQ + (i - n * d.PQ));
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) gb[k] = acc;
}

// ---- host side ------------------------------------------------------------------------------

constexpr int64_t kIntMax = 2147483647;

ConvDims dims_of(const Conv2dShape& s, const char* op) {
  LETHE_CHECK(s.N >= 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 && s.pad >= 0 &&
                  s.H >= 0 && s.W >= 0 && s.H + 2 * s.pad >= s.R && s.W + 2 * s.pad >= s.S,
              op, ": bad shape N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K, " R=", s.R,
              " S=", s.S, " stride=", s.stride, " pad=", s.pad);
  const int64_t P = s.P(), Q = s.Q();
  // Products in double: exact for anything near 2^31, and they cannot overflow. The padded
  // image must also stay well inside kFar (the out-of-matrix marker of the GEMM descriptions).
  const auto small = [](double v) { return v <= static_cast<double>(kIntMax); };
  const double N = s.N, C = s.C, H = s.H, W = s.W, K = s.K, RS = double(s.R) * s.S;
  const bool fits = small(N * C * H * W) && small(N * K * P * Q) && small(K * C * RS) &&
                    small(C * H * W) && small(K * double(P) * Q) && H + 2.0 * s.pad < kFar / 2 &&
                    W + 2.0 * s.pad < kFar / 2 && s.stride <= 255 &&
                    (s.K + kBM - 1) / kBM <= 65535 && (s.C + kBM - 1) / kBM <= 65535;
  LETHE_CHECK(fits, op, ": shape N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K,
              " stride=", s.stride, " is too large for the CUDA kernels (every tensor must have",
              " < 2^31 elements, the stride be <= 255)");
  ConvDims d{};
  d.N = static_cast<int>(s.N), d.C = static_cast<int>(s.C), d.H = static_cast<int>(s.H);
  d.W = static_cast<int>(s.W), d.K = static_cast<int>(s.K), d.R = static_cast<int>(s.R);
  d.S = static_cast<int>(s.S), d.P = static_cast<int>(P), d.Q = static_cast<int>(Q);
  d.stride = static_cast<int>(s.stride), d.pad = static_cast<int>(s.pad);
  d.HW = d.H * d.W, d.PQ = d.P * d.Q, d.RS = d.R * d.S, d.CRS = d.C * d.RS;
  // P or Q is 0 only for an empty output, which no kernel divides by (1 stands in).
  d.by_PQ = FastDiv(d.PQ > 0 ? d.PQ : 1), d.by_Q = FastDiv(d.Q > 0 ? d.Q : 1);
  d.by_RS = FastDiv(d.RS), d.by_S = FastDiv(d.S);
  return d;
}

int pick_version(const CudaExec& e, const char* op) {
  LETHE_CHECK(e.version >= 0 && e.version <= kVersions, op, ": version ", e.version,
              " does not exist; use 0 (the default for the math mode) or 1..", kVersions);
  if (e.version == 0) return e.math == CudaMath::TF32 ? 3 : 2;  // v4, v5: until measured
  LETHE_CHECK(e.version != 3 || e.math == CudaMath::TF32, op,
              ": version 3 runs on TF32 tensor cores, which CudaMath::FP32 forbids; set "
              "math = CudaMath::TF32 or pick version 1, 2, 4 or 5");
  return e.version;
}

// Backward-weight split count of v2..v5, a function of the shape alone (so results are
// reproducible): whole images per split and at least kMinSplitDepth reduction steps per
// split, so the partial slabs stay cheap to add; among those counts, one whose blocks fill
// the H100's block slots (132 SMs, 2 blocks each; 1 for v5) in whole waves. Every
// block of a split runs the whole depth of its images, so `tiles * s` blocks take
// ceil(tiles * s / slots) block times of 1/s each: the cost below. The smallest count within
// 5% of the least cost wins (more splits mean more partial slabs to add).
// Measured on the H100 (bench_conv2d_cuda, 2026-11-27) with the first rule, "as many blocks
// as fit at once, rounded up": ResNet-18's 64-channel backward-weight ran 265 blocks on 264
// slots in 1.93 ms against 0.77 ms for the forward's same FLOPs (two block times for one).
// This rule gives one wave there (51 splits, 255 blocks). Layer4's 512-channel convs have 288
// tiles, more than one wave without any split (1.23 ms against the forward's 0.77): here 6
// splits, 1728 blocks in 7 waves of 1/6 the work, 1.17 block times instead of 2; layer3's
// convs go from 3 to 7 splits, layer4's strided one from 1 to 5. Not yet measured on a GPU.
constexpr int64_t kSms = 132, kMinSplitDepth = 512;

int weight_splits(const Conv2dShape& s, int version) {
  const int64_t tm = tile_rows(version), slots = kSms * blocks_per_sm(version);
  const int64_t tiles = ((s.K + tm - 1) / tm) * ((s.C * s.R * s.S + kBN - 1) / kBN);
  const int64_t smax =
      std::max<int64_t>(1, std::min<int64_t>(s.N, s.N * s.P() * s.Q() / kMinSplitDepth));
  const auto cost = [&](int64_t k) {
    return static_cast<double>((tiles * k + slots - 1) / slots) / static_cast<double>(k);
  };
  double least = cost(1);
  for (int64_t k = 2; k <= smax; ++k) least = std::min(least, cost(k));
  int64_t best = 1;
  while (cost(best) > 1.05 * least) ++best;
  return static_cast<int>(best);
}

size_t workspace_for(const Conv2dShape& s, int version) {
  if (version == 1) return 0;
  const int splits = weight_splits(s, version);
  return splits > 1 ? static_cast<size_t>(splits) * s.K * s.C * s.R * s.S * sizeof(float) : 0;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class G>
void launch_igemm(int version, const G& g, dim3 grid, cudaStream_t st, const char* what) {
  if (version == 3) {
    launch_igemm_tf32(g, grid, st, what);
  } else if (version == 4) {
    igemm_fp32<G, 2><<<grid, kThreads, 0, st>>>(g);
    check_launch(what, st);
  } else if (version == 5) {
    igemm_fp32<G, 2, 1><<<grid, kThreads, 0, st>>>(g);
    check_launch(what, st);
  } else {
    igemm_fp32<G, 1><<<grid, kThreads, 0, st>>>(g);
    check_launch(what, st);
  }
}

}  // namespace
}  // namespace cuda

int conv2d_cuda_versions() { return cuda::kVersions; }

const char* conv2d_cuda_version_name(int v) {
  LETHE_CHECK(v >= 1 && v <= cuda::kVersions, "conv2d_cuda_version_name: version ", v,
              " does not exist; versions are 1..", cuda::kVersions);
  return cuda::kVersionNames[v - 1];
}

int conv2d_cuda_resolved_version(const CudaExec& e) {
  return cuda::pick_version(e, "conv2d_cuda_resolved_version");
}

size_t conv2d_cuda_workspace_bytes(const Conv2dShape& s, const CudaExec& e) {
  const char* op = "conv2d_cuda_workspace_bytes";
  cuda::dims_of(s, op);
  return cuda::workspace_for(s, cuda::pick_version(e, op));
}

void conv2d_forward_cuda(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                         float* y, const CudaExec& e) {
  using namespace cuda;
  const char* op = "conv2d_forward_cuda";
  const ConvDims d = dims_of(s, op);
  const int v = pick_version(e, op);
  const int64_t ny = static_cast<int64_t>(d.N) * d.K * d.PQ;
  if (ny == 0) return;
  LETHE_CHECK(w != nullptr && y != nullptr && (x != nullptr || s.C * s.H * s.W == 0), op,
              ": x, w and y must be device pointers, got nullptr");
  const cudaStream_t st = stream_of(e);
  if (v == 1) {
    forward_v1<<<blocks_for(ny, kThreads), kThreads, 0, st>>>(d, x, w, bias, y);
    check_launch("conv2d forward v1", st);
    return;
  }
  const ForwardGemm g{d, x, w, bias, y, d.PQ % 4 == 0 && aligned16(y)};
  launch_igemm(v, g, gemm_grid(d.K, d.N * d.PQ, 1, tile_rows(v)), st,
               v == 3   ? "conv2d forward v3 (tf32 implicit GEMM)"
               : v == 4 ? "conv2d forward v4 (implicit GEMM, 128x128 tile)"
               : v == 5 ? "conv2d forward v5 (implicit GEMM, 128x128 tile, 1 block/SM)"
                        : "conv2d forward v2 (implicit GEMM)");
}

void conv2d_backward_data_cuda(const Conv2dShape& s, const float* gy, const float* w, float* gx,
                               const CudaExec& e) {
  using namespace cuda;
  const char* op = "conv2d_backward_data_cuda";
  const ConvDims d = dims_of(s, op);
  const int v = pick_version(e, op);
  const int64_t nx = static_cast<int64_t>(d.N) * d.C * d.HW;
  if (nx == 0) return;
  LETHE_CHECK(gy != nullptr && w != nullptr && gx != nullptr, op,
              ": gy, w and gx must be device pointers, got nullptr");
  const cudaStream_t st = stream_of(e);
  if (v == 1) {
    backward_data_v1<<<blocks_for(nx, kThreads), kThreads, 0, st>>>(d, gy, w, gx);
    check_launch("conv2d backward-data v1", st);
    return;
  }
  // One grid layer per stride phase, as wide as the largest phase (phase 0, 0).
  const int hs = (d.H + d.stride - 1) / d.stride, ws = (d.W + d.stride - 1) / d.stride;
  const BackwardDataGemm g{d, gy, w, gx, d.stride == 1 && d.HW % 4 == 0 && aligned16(gx)};
  launch_igemm(v, g, gemm_grid(d.C, d.N * hs * ws, d.stride * d.stride, tile_rows(v)), st,
               v == 3   ? "conv2d backward-data v3 (tf32 implicit GEMM)"
               : v == 4 ? "conv2d backward-data v4 (implicit GEMM, 128x128 tile)"
               : v == 5 ? "conv2d backward-data v5 (implicit GEMM, 128x128 tile, 1 block/SM)"
                        : "conv2d backward-data v2 (implicit GEMM)");
}

void conv2d_backward_weight_cuda(const Conv2dShape& s, const float* x, const float* gy, float* gw,
                                 float* gb, void* workspace, size_t workspace_bytes,
                                 const CudaExec& e) {
  using namespace cuda;
  const char* op = "conv2d_backward_weight_cuda";
  const ConvDims d = dims_of(s, op);
  const int v = pick_version(e, op);
  const size_t need = workspace_for(s, v);
  LETHE_CHECK(workspace_bytes >= need && (need == 0 || workspace != nullptr), op,
              ": this shape needs a workspace of ", need,
              " bytes (conv2d_cuda_workspace_bytes(shape, exec)), got ", workspace_bytes, " bytes",
              (workspace == nullptr ? " at nullptr" : ""));
  LETHE_CHECK(gw != nullptr && ((x != nullptr && gy != nullptr) || d.N == 0), op,
              ": x, gy and gw must be device pointers, got nullptr");
  const cudaStream_t st = stream_of(e);
  if (v == 1) {
    backward_weight_v1<<<blocks_for(static_cast<int64_t>(d.K) * d.CRS, kThreads), kThreads, 0,
                         st>>>(d, x, gy, gw);
    check_launch("conv2d backward-weight v1", st);
    if (gb != nullptr) {
      bias_grad_v1<<<blocks_for(d.K, kThreads), kThreads, 0, st>>>(d, gy, gb);
      check_launch("conv2d backward-bias v1", st);
    }
    return;
  }
  const int splits = weight_splits(s, v);
  float* out = splits > 1 ? static_cast<float*>(workspace) : gw;
  const BackwardWeightGemm g{d, x, gy, out, splits, d.CRS % 4 == 0 && aligned16(out)};
  launch_igemm(v, g, gemm_grid(d.K, d.CRS, splits, tile_rows(v)), st,
               v == 3   ? "conv2d backward-weight v3 (tf32 implicit GEMM)"
               : v == 4 ? "conv2d backward-weight v4 (implicit GEMM, 128x128 tile)"
               : v == 5 ? "conv2d backward-weight v5 (implicit GEMM, 128x128 tile, 1 block/SM)"
                        : "conv2d backward-weight v2 (implicit GEMM)");
  if (splits > 1) {
    const int n = d.K * d.CRS;
    splitk_reduce<<<blocks_for(n, kThreads), kThreads, 0, st>>>(out, splits, n, gw);
    check_launch("conv2d backward-weight split-K reduce", st);
  }
  if (gb != nullptr) {
    bias_grad<<<d.K, kThreads, 0, st>>>(d, gy, gb);
    check_launch("conv2d backward-bias", st);
  }
}

}  // namespace lethe::kernels
