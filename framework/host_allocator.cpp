#include "framework/host_allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/check.h"

namespace lethe {

namespace {

constexpr size_t kMinCached = size_t{64} << 10;
constexpr size_t kPage = size_t{4} << 10;
constexpr size_t kMaxCachedBytes = size_t{4} << 30;

struct Cache {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_lists;  // by rounded size
  size_t cached = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destructors
  return *c;
}

size_t rounded(size_t n) {
  if (n < kMinCached) return ((n + 63) / 64) * 64 + (n == 0 ? 64 : 0);
  return ((n + kPage - 1) / kPage) * kPage;
}

}  // namespace

void* host_alloc(size_t n) {
  const size_t r = rounded(n);
  if (r >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_lists.find(r);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= r;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, r);
  LETHE_CHECK(p != nullptr, "out of host memory allocating ", n, " bytes");
  return p;
}

void host_free(void* p, size_t n) {
  if (!p) return;
  const size_t r = rounded(n);
  if (r >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached + r <= kMaxCachedBytes) {
      c.free_lists[r].push_back(p);
      c.cached += r;
      return;
    }
  }
  std::free(p);
}

size_t host_cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.cached;
}

void host_release_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, list] : c.free_lists)
    for (void* p : list) std::free(p);
  c.free_lists.clear();
  c.cached = 0;
}

}  // namespace lethe
