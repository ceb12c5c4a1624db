// conv2d v3: the three implicit GEMMs of kernels/cuda/conv2d_internal.cuh on TF32 tensor cores
// (WMMA m16n16k8, precision::tf32, fp32 accumulation). Entered only through the entry points
// of kernels/cuda/conv2d.cu, and only under CudaMath::TF32: TF32 keeps 10 mantissa bits of each
// input (relative error ~5e-4 per product), which fp32 mode promises never to do.
//
// Block tile 64 (M) x 128 (Ncol) as in v2, 256 threads = 8 warps in a 2 x 4 grid, each warp
// owning a 32 x 32 piece of the tile as 2 x 2 accumulator fragments of 16 x 16. The depth is
// staged 16 at a time (two k8 steps of the tensor cores) through double-buffered shared memory,
// with the same register prefetch and one barrier per step as v2.
// Tests: tests/cuda/test_conv2d_cuda.cpp (kTf32Tol). Benchmark: bench/bench_conv2d_cuda.cpp.
#include <mma.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv2d_internal.cuh"

namespace lethe::kernels::cuda {

namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBK = 16;
// Shared-memory row lengths (floats). WMMA wants ldm % 4 == 0 and 32-byte aligned fragment
// pointers; the +4 pads spread the rows of a fragment load over different banks.
constexpr int kLdA = kBK + 4;        // As: [64 rows m][16 kk], row-major A
constexpr int kLdB = kBN + 4;        // Bs: [16 rows kk][128 cols j], row-major B
constexpr int kLdC = kBN + 4;        // Cs: [64 rows m][128 cols j], the finished tile
constexpr int kAStage = kBM * kLdA;  // 1280 floats per A buffer
constexpr int kBStage = kBK * kLdB;  // 2112 floats per B buffer
constexpr int kPipeFloats = 2 * (kAStage + kBStage);
constexpr int kTileFloats = kBM * kLdC;
// The pipeline buffers and the output tile are never live together, so they share storage.
constexpr int kSmemFloats = kPipeFloats > kTileFloats ? kPipeFloats : kTileFloats;  // 33 KiB

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <class G>
__global__ void __launch_bounds__(kThreads, 2) igemm_tf32(G g) {
  __shared__ __align__(32) float smem[kSmemFloats];
  float* const As = smem;                // 2 buffers of kAStage
  float* const Bs = smem + 2 * kAStage;  // 2 buffers of kBStage (offset 10 KiB: 32-B aligned)

  g.select_part(blockIdx.z);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = blockIdx.y * kBM, j0 = blockIdx.x * kBN;

  // Staging roles, 4 A and 8 B elements per thread and depth step:
  //   A: kk = t%16, rows t/16 + 16*i -- 16 threads read one row's 16 consecutive kk.
  //   B: rows warp and warp + 8, columns lane + 32*i -- a warp reads 32 neighbouring columns
  //      (neighbouring output positions), each thread keeping its 4 columns decoded.
  const int a_kk = tid & 15, a_m = tid >> 4;
  typename G::Col bcol[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) bcol[i] = g.col(j0 + lane + 32 * i);

  float a_reg[4], b_reg[2][4];
  auto load = [&](int k0) {  // global -> registers, zero outside the matrix and in the padding
#pragma unroll
    for (int i = 0; i < 4; ++i) a_reg[i] = g.a(m0 + a_m + 16 * i, k0 + a_kk);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const typename G::Row brow = g.row(k0 + warp + 8 * h);
#pragma unroll
      for (int i = 0; i < 4; ++i) b_reg[h][i] = g.b(brow, bcol[i]);
    }
  };
  // Registers -> shared buffer `buf`, rounded to TF32 once here rather than after every
  // fragment load (each element is loaded by 2 or 4 warps); already-rounded values pass
  // through the tensor cores unchanged.
  auto stash = [&](int buf) {
    float* a = As + buf * kAStage;
    float* b = Bs + buf * kBStage;
#pragma unroll
    for (int i = 0; i < 4; ++i) a[(a_m + 16 * i) * kLdA + a_kk] = wmma::__float_to_tf32(a_reg[i]);
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        b[(warp + 8 * h) * kLdB + lane + 32 * i] = wmma::__float_to_tf32(b_reg[h][i]);
  };

  // Warp (wm, wn) owns tile rows 32*wm .. +31 and columns 32*wn .. +31.
  const int wm = warp >> 2, wn = warp & 3;
  FragC acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int steps = (g.depth() + kBK - 1) / kBK;
  if (steps > 0) {
    load(0);
    stash(0);
  }
  __syncthreads();  // buffer 0 complete before anyone reads it

  for (int t = 0; t < steps; ++t) {
    const int buf = t & 1;
    if (t + 1 < steps) load((t + 1) * kBK);  // in flight during the MMAs below
    const float* a = As + buf * kAStage + (wm * 32) * kLdA;
    const float* b = Bs + buf * kBStage + wn * 32;
#pragma unroll
    for (int k8 = 0; k8 < kBK; k8 += 8) {
      FragA fa[2];
      FragB fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], a + i * 16 * kLdA + k8, kLdA);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], b + k8 * kLdB + j * 16, kLdB);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    // As in v2: buffer buf^1 was last read in step t-1, before the barrier that ended it; the
    // barrier below publishes it and protects buffer buf from step t+1's stash.
    if (t + 1 < steps) stash(buf ^ 1);
    __syncthreads();
  }

  // Epilogue. The fragments' element-to-thread mapping is opaque, so the tile goes through
  // shared memory (reusing the pipeline buffers: the barrier at the end of the last step, or
  // the one before the loop, means nobody reads them any more), then each thread writes 4
  // neighbouring columns of every 8th row: a warp writes one row's 128 columns.
  float* const cs = smem;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(cs + (wm * 32 + i * 16) * kLdC + wn * 32 + j * 16, acc[i][j], kLdC,
                              wmma::mem_row_major);
  __syncthreads();  // the whole tile is in shared memory

  const int rows = g.rows(), cols = g.cols();
  const int c4 = lane * 4, j = j0 + c4;
  if (j >= cols) return;  // no barrier follows
  const bool whole = g.vec4 && j + 3 < cols;
  const int oc = g.out_col(j);
#pragma unroll
  for (int it = 0; it < kBM / 8; ++it) {
    const int ml = warp + 8 * it, m = m0 + ml;
    if (m >= rows) break;  // rows grow with it
    const float4 v = *reinterpret_cast<const float4*>(cs + ml * kLdC + c4);
    if (whole) {
      g.store4(m, oc, v);
    } else {
      const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int q = 0; q < 4; ++q)
        if (j + q < cols) g.store(m, g.out_col(j + q), e[q]);
    }
  }
}

}  // namespace

template <class G>
void launch_igemm_tf32(const G& g, dim3 grid, cudaStream_t stream, const char* what) {
  igemm_tf32<G><<<grid, kThreads, 0, stream>>>(g);
  check_launch(what, stream);
}

template void launch_igemm_tf32<ForwardGemm>(const ForwardGemm&, dim3, cudaStream_t, const char*);
template void launch_igemm_tf32<BackwardDataGemm>(const BackwardDataGemm&, dim3, cudaStream_t,
                                                  const char*);
template void launch_igemm_tf32<BackwardWeightGemm>(const BackwardWeightGemm&, dim3, cudaStream_t,
                                                    const char*);

}  // namespace lethe::kernels::cuda
