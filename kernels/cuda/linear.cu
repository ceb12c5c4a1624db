// linear on the GPU (kernels/linear.h): y = x w^T + b with x N x I, w O x I (PyTorch's
// layout), y N x O, all row-major float32 device arrays. As on the CPU, every product is one
// GEMM, here gemm_cuda, which receives the caller's CudaExec unchanged (its version and math
// mode pick the GEMM kernel, kernels/cuda/gemm.cu):
//   forward:  y  (N x O) = x (N x I) * w^T (I x O)   (y pre-filled with b, beta = 1)
//   backward: gx (N x I) = gy (N x O) * w (O x I)
//             gw (O x I) = gy^T (O x N) * x (N x I)
//             gb (O)     = column sums of gy: linear_bias_grad, a fixed-order reduction
// Every output is overwritten; an empty inner dimension (I == 0 for y, O == 0 for gx, N == 0
// for gw and gb) gives the bias alone or zeros, since gemm_cuda with K == 0 writes beta * C.
// Kernels: linear_bias_broadcast (grid-stride, one thread per element of y) and
// linear_bias_grad (32 columns x 8 row-stripes per block). No atomics: deterministic.
// Tested by tests/cuda/test_linear_cuda.cpp against linear_*_ref in double.
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"
#include "kernels/linear.h"

namespace lethe::kernels {
namespace cuda {
namespace {

constexpr int kBroadcastThreads = 256;
constexpr int kGbCols = 32;     // columns per block: one warp reads 32 consecutive floats
constexpr int kGbStripes = 8;   // row stripes per block, summed in shared memory at the end

/// y[n, o] = b[o]: the bias broadcast into every row, so the GEMM can add onto it (beta = 1).
__global__ void linear_bias_broadcast(int64_t N, int64_t O, const float* __restrict__ b,  // O
                                      float* __restrict__ y) {  // N x O
  const int64_t total = N * O;
  // Grid-stride: the grid is capped (blocks_for), y may be larger. Consecutive threads write
  // consecutive elements of y (coalesced); b is small and stays in cache.
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[idx] = b[idx % O];
}

/// gb[o] = sum_n gy[n, o]. Block (32, 8): threadIdx.x picks the column inside the block's 32,
/// so a warp reads 32 consecutive floats of one row of gy (coalesced); threadIdx.y picks a
/// row stripe (n = y, y + 8, ...). Each thread sums its stripe in order, then thread y == 0
/// adds the 8 stripe sums in order: the same additions in the same order on every run.
__global__ void linear_bias_grad(int64_t N, int64_t O, const float* __restrict__ gy,  // N x O
                                 float* __restrict__ gb) {  // O
  __shared__ float part[kGbStripes][kGbCols + 1];  // +1: the column reads below hit distinct banks
  const int cx = threadIdx.x, sy = threadIdx.y;
  // Grid-stride over column blocks; the trip count depends only on blockIdx, so every thread
  // of the block reaches the same barriers.
  for (int64_t o0 = static_cast<int64_t>(blockIdx.x) * kGbCols; o0 < O;
       o0 += static_cast<int64_t>(gridDim.x) * kGbCols) {
    const int64_t o = o0 + cx;
    float s = 0.f;
    if (o < O)
      for (int64_t n = sy; n < N; n += kGbStripes) s += gy[n * O + o];
    part[sy][cx] = s;
    __syncthreads();  // all stripe sums written
    if (sy == 0 && o < O) {
      float t = 0.f;
#pragma unroll
      for (int r = 0; r < kGbStripes; ++r) t += part[r][cx];
      gb[o] = t;
    }
    __syncthreads();  // part is read before the next column block overwrites it
  }
}

void check_linear(int64_t N, int64_t I, int64_t O, const char* op) {
  LETHE_CHECK(N >= 0 && I >= 0 && O >= 0, op, ": bad shape N=", N, " I=", I, " O=", O);
}

}  // namespace
}  // namespace cuda

void linear_forward_cuda(int64_t N, int64_t I, int64_t O, const float* x, const float* w,
                         const float* b, float* y, const CudaExec& e) {
  cuda::check_linear(N, I, O, "linear_forward_cuda");
  if (N == 0 || O == 0) return;
  const cudaStream_t s = cuda::stream_of(e);
  // With a bias, broadcast it into y first and let the GEMM add onto it (beta = 1); without
  // one, beta = 0 overwrites whatever y held.
  if (b != nullptr) {
    cuda::linear_bias_broadcast<<<cuda::blocks_for(N * O, cuda::kBroadcastThreads),
                                  cuda::kBroadcastThreads, 0, s>>>(N, O, b, y);
    cuda::check_launch("linear_bias_broadcast", s);
  }
  gemm_cuda(false, true, N, O, I, 1.f, x, I, w, I, b != nullptr ? 1.f : 0.f, y, O, e);
}

void linear_backward_cuda(int64_t N, int64_t I, int64_t O, const float* x, const float* w,
                          const float* gy, float* gx, float* gw, float* gb, const CudaExec& e) {
  cuda::check_linear(N, I, O, "linear_backward_cuda");
  // gemm_cuda with K == 0 (O == 0 for gx, N == 0 for gw) writes zeros (beta = 0).
  if (gx != nullptr && N * I > 0) gemm_cuda(false, false, N, I, O, 1.f, gy, O, w, I, 0.f, gx, I, e);
  if (gw != nullptr && O * I > 0) gemm_cuda(true, false, O, I, N, 1.f, gy, O, x, I, 0.f, gw, I, e);
  if (gb != nullptr && O > 0) {
    const cudaStream_t s = cuda::stream_of(e);
    const dim3 block(cuda::kGbCols, cuda::kGbStripes);
    const unsigned grid = cuda::blocks_for(O, cuda::kGbCols);
    cuda::linear_bias_grad<<<grid, block, 0, s>>>(N, O, gy, gb);
    cuda::check_launch("linear_bias_grad", s);
  }
}

}  // namespace lethe::kernels
