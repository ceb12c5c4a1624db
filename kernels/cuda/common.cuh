// Launch helpers shared by every kernels/cuda/*.cu file: grid sizing, the check after each
// launch, warp and block reductions. Device code only includes this and its family header.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "kernels/check.h"
#include "kernels/cuda_exec.h"

namespace lethe::kernels::cuda {

inline cudaStream_t stream_of(const CudaExec& e) { return reinterpret_cast<cudaStream_t>(e.stream); }

/// Blocks of `threads` covering n items, capped for grid-stride loops (n may exceed the cap).
inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535LL * 8) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

/// After every launch: a bad configuration fails here with the kernel's name; in sync mode
/// (LETHE_CUDA_SYNC=1) an asynchronous fault is also reported here rather than later.
inline void check_launch(const char* kernel, cudaStream_t s) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && cuda_sync_mode()) err = cudaStreamSynchronize(s);
  LETHE_CHECK(err == cudaSuccess, kernel, ": CUDA launch failed: ", cudaGetErrorString(err));
}

/// Elements before the 16-byte boundary common to all the float pointers (0..3), or -1 when
/// they are misaligned differently or not 4-byte aligned, so that only scalar code applies.
/// nullptr entries (unused inputs) are ignored. Used by the float4 fast paths.
inline int64_t vec4_head(std::initializer_list<const float*> ptrs) {
  int64_t mis = -1;
  for (const float* p : ptrs) {
    if (p == nullptr) continue;
    const auto addr = reinterpret_cast<uintptr_t>(p);
    if (addr % 4 != 0) return -1;
    const auto m = static_cast<int64_t>((addr % 16) / 4);
    if (mis >= 0 && m != mis) return -1;
    mis = m;
  }
  return mis <= 0 ? 0 : 4 - mis;
}

/// Sum over the 32 lanes of a warp (every lane gets the result), fixed butterfly order.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over a whole block (blockDim.x a multiple of 32, <= 1024); the result is valid in
/// every thread. `scratch` holds 32 values of shared memory. Deterministic: the order of
/// additions depends only on blockDim.x.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = lane < nwarps ? scratch[lane] : T(0);
  return warp_sum(v);
}

}  // namespace lethe::kernels::cuda
