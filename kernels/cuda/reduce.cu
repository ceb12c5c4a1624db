// Reductions on CUDA (see kernels/reduce.h): sum and abs_sum (the L1 norm of l1-sparse
// unlearning) returned to the host in double, and sign_axpy (y += alpha * sign(x)).
//
// Layout: flat float32 arrays of n elements.
// sum / abs_sum, a fixed two-level tree (deterministic, no atomics):
//   level 1: G = min(kMaxBlocks, ceil(n / kThreads)) blocks of kThreads threads. Thread t of
//            the grid adds x[t], x[t + G*kThreads], ... in double (a grid-stride loop), then
//            block_sum (fixed butterfly order) combines the block; partial[b] holds block b.
//   level 2: one block of kThreads sums partial[0..G) the same way into partial[kMaxBlocks].
//   The result is copied to the host and the stream is synchronised.
//   G, the block size and every addition order depend only on n, so repeated calls give the
//   same bits (on any stream, any GPU of the same kind). They may differ from the CPU's
//   chunked sum in the last bits of the double (another association), as from sum_ref.
// Scratch: the partials live in a device buffer of kMaxBlocks + 1 doubles per device,
//   allocated by the first sum on that device and kept for the rest of the process (never
//   freed; the driver reclaims it at exit). No cudaMalloc per call. Since one buffer serves
//   every stream, a mutex serialises the callers: each call holds it until its result has
//   reached the host.
// sign_axpy: one element per step of a grid-stride loop; sign as (x > 0) - (x < 0), so
//   sign(0) = sign(NaN) = 0 as on the CPU; alpha * sign is exact, so y matches bit for bit.
// One version each. Tests: tests/cuda/test_elementwise_cuda.cpp.
#include <cmath>
#include <cstdint>
#include <mutex>

#include "kernels/cuda/common.cuh"
#include "kernels/reduce.h"

namespace lethe::kernels {

namespace {

using cuda::block_sum;
using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;
constexpr int kMaxDevices = 64;

// Level 1: partial[blockIdx.x] = sum over this block's grid-stride share of f(x[i]).
__global__ void partial_sums(int64_t n, const float* x, bool absolute, double* partial) {
  __shared__ double scratch[32];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double v = static_cast<double>(x[i]);
    acc += absolute ? fabs(v) : v;
  }
  // Every thread of the block reaches block_sum (the loop above has no early exit).
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Level 2: one block folds the level-1 partials into *out.
__global__ void final_sum(int parts, const double* partial, double* out) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void sign_axpy_kernel(int64_t n, float alpha, const float* x, float* y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float v = x[i];
    const float sign = static_cast<float>(v > 0.f) - static_cast<float>(v < 0.f);
    y[i] = fmaf(alpha, sign, y[i]);
  }
}

// The process-wide scratch described in the header comment: one buffer per device.
std::mutex g_scratch_mutex;
double* g_scratch[kMaxDevices] = {};

// Returns this device's scratch (kMaxBlocks + 1 doubles); the caller holds g_scratch_mutex.
double* scratch_for_current_device() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  LETHE_CHECK(dev >= 0 && dev < kMaxDevices, "sum_cuda: device ", dev, " beyond the ",
              kMaxDevices, " devices the reduction scratch supports.");
  if (g_scratch[dev] == nullptr)
    CUDA_CHECK(cudaMalloc(&g_scratch[dev], (kMaxBlocks + 1) * sizeof(double)));
  return g_scratch[dev];
}

// Both levels, the copy to the host and the wait.
double reduce(const char* name, int64_t n, const float* x, bool absolute, const CudaExec& e) {
  LETHE_CHECK(n >= 0, name, ": n = ", n, " must be >= 0.");
  if (n == 0) return 0.0;
  const cudaStream_t s = stream_of(e);
  const int blocks = static_cast<int>(blocks_for(n, kThreads, kMaxBlocks));
  std::lock_guard<std::mutex> lock(g_scratch_mutex);
  double* partial = scratch_for_current_device();
  partial_sums<<<blocks, kThreads, 0, s>>>(n, x, absolute, partial);
  check_launch(name, s);
  final_sum<<<1, kThreads, 0, s>>>(blocks, partial, partial + kMaxBlocks);
  check_launch(name, s);
  double result = 0.0;
  CUDA_CHECK(cudaMemcpyAsync(&result, partial + kMaxBlocks, sizeof(double),
                             cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return result;
}

}  // namespace

double sum_cuda(int64_t n, const float* x, const CudaExec& e) {
  return reduce("sum_cuda", n, x, false, e);
}

double abs_sum_cuda(int64_t n, const float* x, const CudaExec& e) {
  return reduce("abs_sum_cuda", n, x, true, e);
}

void sign_axpy_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e) {
  LETHE_CHECK(n >= 0, "sign_axpy_cuda: n = ", n, " must be >= 0.");
  if (n == 0) return;
  const cudaStream_t s = stream_of(e);
  sign_axpy_kernel<<<blocks_for(n, kThreads), kThreads, 0, s>>>(n, alpha, x, y);
  check_launch("sign_axpy_cuda", s);
}

}  // namespace lethe::kernels
