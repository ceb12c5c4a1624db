#include "framework/cuda_allocator.h"

#include <cstdlib>
#include <map>
#include <string>
#include <mutex>
#include <vector>

#include "kernels/check.h"

namespace lethe {

#ifdef LETHE_WITH_CUDA

namespace {

constexpr size_t kSmall = size_t{1} << 20;
constexpr size_t kSmallStep = 512;
constexpr size_t kLargeStep = size_t{2} << 20;
constexpr int kMaxDevices = 16;

struct DeviceCache {
  std::map<size_t, std::vector<void*>> free_lists;  // by rounded size
  CudaMemoryStats stats;
};

struct Cache {
  std::mutex mutex;
  DeviceCache devices[kMaxDevices];
  // LETHE_CUDA_ALLOC=exact: no rounding and no cache (every free is a cudaFree), so that
  // compute-sanitizer sees each tensor's true bounds. Slow; for memcheck runs only.
  bool exact = [] {
    const char* v = std::getenv("LETHE_CUDA_ALLOC");
    return v != nullptr && std::string(v) == "exact";
  }();
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destructors
  return *c;
}

size_t rounded(size_t n, bool exact) {
  if (n == 0) n = 1;
  if (exact) return n;
  const size_t step = n <= kSmall ? kSmallStep : kLargeStep;
  return (n + step - 1) / step * step;
}

DeviceCache& device_cache(Cache& c, int device) {
  LETHE_CHECK(device >= 0 && device < kMaxDevices, "CUDA device index ", device, " out of range");
  return c.devices[device];
}

void release_locked(Cache& c) {
  for (int d = 0; d < kMaxDevices; ++d) {
    DeviceCache& dc = c.devices[d];
    if (dc.free_lists.empty()) continue;
    CUDA_CHECK(cudaSetDevice(d));
    for (auto& [size, list] : dc.free_lists) {
      for (void* p : list) CUDA_CHECK_NOTHROW(cudaFree(p));
      dc.stats.reserved -= size * list.size();
    }
    dc.free_lists.clear();
  }
}

}  // namespace

void* cuda_alloc(size_t n, int device) {
  Cache& c = cache();
  const size_t r = rounded(n, c.exact);
  std::lock_guard<std::mutex> lock(c.mutex);
  DeviceCache& dc = device_cache(c, device);
  void* p = nullptr;
  auto it = dc.free_lists.find(r);
  if (it != dc.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    CUDA_CHECK(cudaSetDevice(device));
    cudaError_t err = cudaMalloc(&p, r);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cache back and try once more
      release_locked(c);
      CUDA_CHECK(cudaSetDevice(device));
      err = cudaMalloc(&p, r);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();  // not left pending for the next kernel's launch check
      LETHE_CHECK(false, "cudaMalloc of ", n, " bytes on cuda:", device, " failed (",
                  dc.stats.allocated, " bytes in live tensors): ", cudaGetErrorString(err));
    }
    dc.stats.reserved += r;
    ++dc.stats.device_mallocs;
  }
  // Statistics count requested bytes, as PyTorch's max_memory_allocated does, so the two
  // peaks compare; `reserved` counts what the cache holds from the driver.
  dc.stats.allocated += n;
  if (dc.stats.allocated > dc.stats.peak_allocated) dc.stats.peak_allocated = dc.stats.allocated;
  return p;
}

void cuda_free(void* p, size_t n, int device) {
  if (!p) return;
  Cache& c = cache();
  const size_t r = rounded(n, c.exact);
  std::lock_guard<std::mutex> lock(c.mutex);
  DeviceCache& dc = device_cache(c, device);
  dc.stats.allocated -= n;
  if (c.exact) {
    CUDA_CHECK_NOTHROW(cudaSetDevice(device));
    CUDA_CHECK_NOTHROW(cudaFree(p));
    dc.stats.reserved -= r;
    return;
  }
  dc.free_lists[r].push_back(p);
}

CudaMemoryStats cuda_memory_stats(int device) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return device_cache(c, device).stats;
}

void cuda_reset_peak(int device) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  DeviceCache& dc = device_cache(c, device);
  dc.stats.peak_allocated = dc.stats.allocated;
}

void cuda_release_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  release_locked(c);
}

#else  // a CPU-only build: nothing is ever allocated on a GPU

void* cuda_alloc(size_t n, int device) {
  LETHE_CHECK(false, "this lethe was built without CUDA; cannot allocate ", n, " bytes on cuda:",
              device);
}
void cuda_free(void*, size_t, int) {}
CudaMemoryStats cuda_memory_stats(int) { return {}; }
void cuda_reset_peak(int) {}
void cuda_release_cache() {}

#endif

}  // namespace lethe
