// Internals shared by the two conv2d CPU files: conv2d.cpp (the entry points and the generic
// im2col + OpenBLAS path) and conv2d_avx512.cpp (the AVX-512 float path). Not a public header:
// only those two files include it.
//   - Workspace: 64-byte aligned thread_local scratch that grows and is reused across calls.
//   - Tiles: how the GEMM columns (output positions of all images) are cut into per-thread
//     work, in units of output rows (generic) or 16-position chunks (AVX-512).
//   - bias_gradient: gb[k] = sum over n, p, q of gy, in a fixed order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "kernels/conv2d.h"

namespace lethe::kernels::conv2d_detail {

// ---- workspace ---------------------------------------------------------------------------

// A 64-byte aligned buffer that only grows: aligned so packed panels load whole cache lines.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(data_);
      data_ = nullptr;
      cap_ = 0;
      const size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
      cap_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t cap_ = 0;
};

// One buffer per role, so a tile can hold several at once.
enum Slot { kCol, kGather, kOut, kPartial, kPacked, kPhase, kFlipped, kSlots };

/// The calling thread's buffer for one role, at least `elems` elements of T.
template <typename T>
T* workspace(Slot slot, int64_t elems) {
  thread_local Workspace ws[kSlots];
  return static_cast<T*>(ws[slot].get(static_cast<size_t>(elems) * sizeof(T)));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// ---- tiling ------------------------------------------------------------------------------

/// Images [n0, n1) and, when n1 == n0 + 1, units [u0, u1) of that image (else all units).
struct Tile {
  int64_t n0, n1, u0, u1;
};

struct TilePlan {
  int64_t units = 0;      // units per image
  int64_t nb = 1;         // images per tile (> 1 only for small images)
  int64_t per_tile = 0;   // units per tile when nb == 1
  int64_t per_image = 1;  // tiles per image when nb == 1
  int64_t count = 0;      // number of tiles

  Tile tile(int64_t i, int64_t N) const {
    if (nb > 1) return {i * nb, std::min(N, (i + 1) * nb), 0, units};
    const int64_t n = i / per_image, u0 = (i % per_image) * per_tile;
    return {n, n + 1, u0, std::min(units, u0 + per_tile)};
  }
};

/// About `target` GEMM columns per tile, an image being `units` units of `unit_cols` columns.
/// Small images are batched, leaving at least one tile per thread. whole_images: never split
/// an image (backward-data: col2im of one band writes rows the neighbouring band also writes).
/// align: units per tile, and units of a multi-image tile, are kept multiples of align where
/// the image allows (the AVX-512 kernel consumes 16-position chunks in pairs).
inline TilePlan plan_tiles(int64_t N, int64_t units, int64_t unit_cols, int64_t target,
                           int nthreads, bool whole_images, int64_t align = 1) {
  TilePlan plan;
  plan.units = units;
  plan.per_tile = units;
  if (N == 0) return plan;  // nothing to do: count 0
  if (units * unit_cols >= target || N == 1) {
    if (!whole_images) {
      const int64_t want = std::max<int64_t>(1, target / unit_cols);
      plan.per_tile = std::min(units, std::max(align, want / align * align));
    }
    plan.per_image = ceil_div(units, plan.per_tile);
    plan.count = N * plan.per_image;
    return plan;
  }
  // Batch, then even the tiles out (32 images in tiles of 12 would be 12, 12, 8).
  int64_t nb = std::max<int64_t>(1, target / (units * unit_cols));
  nb = std::min(nb, ceil_div(N, nthreads));
  nb = ceil_div(N, ceil_div(N, nb));
  while ((nb * units) % align != 0 && nb < N) ++nb;
  plan.nb = nb;
  plan.count = ceil_div(N, nb);
  return plan;
}

/// gb[k] = sum_{n,p,q} gy[n,k,p,q], one channel per iteration. An orphaned `omp for`: call it
/// from every thread of a parallel region.
template <typename T>
void bias_gradient(const Conv2dShape& s, const T* gy, T* gb) {
  const int64_t K = s.K, PQ = s.P() * s.Q();
  // 64 independent partial sums (the compiler keeps them in vector registers), then a
  // pairwise fold: a fixed order, so deterministic, and not one add-latency per element as a
  // single running sum would be (for a 1x1 convolution that took as long as the GEMM).
  constexpr int kLanes = 64;
#pragma omp for schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    T lanes[kLanes] = {};
    for (int64_t n = 0; n < s.N; ++n) {
      const T* g = gy + (n * K + k) * PQ;
      int64_t i = 0;
      for (; i + kLanes <= PQ; i += kLanes)
        for (int l = 0; l < kLanes; ++l) lanes[l] += g[i + l];
      for (int l = 0; i + l < PQ; ++l) lanes[l] += g[i + l];
    }
    for (int width = kLanes / 2; width > 0; width /= 2)
      for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
    gb[k] = lanes[0];
  }
}

// ---- the AVX-512 float path (conv2d_avx512.cpp) ------------------------------------------

#if defined(__AVX512F__)
/// The AVX-512 path handles this shape: Q == ceil(W / stride) and P*Q % 16 == 0.
bool flat_ok(const Conv2dShape& s);
/// ...and its backward-weight (filters larger than 1x1, CRS split over the threads).
bool flat_weight_ok(const Conv2dShape& s, int nthreads);
void flat_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  float* y);
void flat_backward_data(const Conv2dShape& s, const float* gy, const float* w, float* gx);
void flat_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw,
                          float* gb);
#endif

}  // namespace lethe::kernels::conv2d_detail
