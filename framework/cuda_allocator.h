// A caching allocator for CUDA tensor storage: a training step allocates and frees the same
// activation-sized buffers every iteration, and cudaMalloc / cudaFree synchronise the device
// and cost tens of microseconds each. Freed blocks go to per-size free lists and are handed
// out again, so after the first step the training loop makes no cudaMalloc or cudaFree call.
//
// Sizes are rounded (512 B steps below 1 MiB, 2 MiB steps above) so that nearby sizes share
// a list; a request takes a cached block of exactly its rounded size. Every lethe kernel runs
// on the default stream, so a block freed by the host may be reused at once: the stream
// orders the old kernels that read it before the new ones that write it.
// When cudaMalloc fails, the cache is released and the call retried once. Statistics count
// requested bytes (as PyTorch's max_memory_allocated). LETHE_CUDA_ALLOC=exact turns rounding
// and caching off, so compute-sanitizer sees every tensor's exact bounds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lethe {

struct CudaMemoryStats {
  size_t allocated = 0;       ///< bytes requested by live tensors
  size_t peak_allocated = 0;  ///< the maximum of `allocated` since the last reset
  size_t reserved = 0;        ///< bytes obtained from cudaMalloc (live + cached)
  int64_t device_mallocs = 0; ///< cudaMalloc calls so far (flat in a steady training loop)
};

/// At least n bytes on CUDA device `device` (256-byte aligned, as cudaMalloc).
void* cuda_alloc(size_t n, int device);
/// Returns memory from cuda_alloc(n, device) (the same n) to the cache.
void cuda_free(void* p, size_t n, int device);
CudaMemoryStats cuda_memory_stats(int device);
void cuda_reset_peak(int device);
/// Returns every cached block of every device to the driver.
void cuda_release_cache();

}  // namespace lethe
