// What every CUDA parity test shares (tests/cuda/, ctest label `cuda`): skipping without a
// device, device buffers filled from host vectors, and the tolerances of the CUDA backend,
// fixed here once: fp32 math atol 1e-4 / rtol 1e-3 (tight enough that a TF32 product fails
// it, so passing proves fp32 mode never uses TF32), TF32 math atol 1e-2 / rtol 1e-2.
// The reference is the CPU oracle (*_ref, computed in double where the kernel allows).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/check.h"
#include "testing/compare.h"

namespace lethe::testing {

inline constexpr Tolerance kFp32Tol{1e-4, 1e-3};
inline constexpr Tolerance kTf32Tol{1e-2, 1e-2};

inline bool have_cuda_device() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

/// LETHE_TEST_SMALL=1: only the small shapes of each test (the compute-sanitizer pass of
/// scripts/gpu_check.sh, which runs every kernel 10-100x slower).
inline bool small_shapes_only() {
  const char* v = std::getenv("LETHE_TEST_SMALL");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

/// First statement of every CUDA test.
#define LETHE_REQUIRE_GPU() \
  if (!::lethe::testing::have_cuda_device()) GTEST_SKIP() << "no CUDA device"

/// A device array of n T, freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int64_t n) : n_(n) {
    CUDA_CHECK(cudaMalloc(&p_, static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(static_cast<int64_t>(host.size())) {
    if (n_ > 0)
      CUDA_CHECK(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() { return static_cast<T*>(p_); }
  const T* get() const { return static_cast<const T*>(p_); }
  int64_t size() const { return n_; }
  /// Waits for the device, then copies back (a kernel fault surfaces here).
  std::vector<T> to_host() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(static_cast<size_t>(n_));
    if (n_ > 0) CUDA_CHECK(cudaMemcpy(h.data(), p_, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  /// Fills with a byte pattern (NaN for 0xFF in float): outputs that a kernel must overwrite
  /// start as garbage, so a missed element fails the comparison.
  void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, static_cast<size_t>(n_ > 0 ? n_ : 1) * sizeof(T))); }

 private:
  void* p_ = nullptr;
  int64_t n_ = 0;
};

/// A device array of n T placed `off` elements past a cudaMalloc'ed (256-byte aligned) start,
/// so off = 1 gives a pointer misaligned by one element (the vectorised paths' fallback).
/// Poisoned, then filled if given data.
template <typename T>
class Shifted {
 public:
  Shifted(int64_t n, int64_t off) : buf_(n + off), n_(n), off_(off) { buf_.poison(); }
  Shifted(const std::vector<T>& host, int64_t off)
      : Shifted(static_cast<int64_t>(host.size()), off) {
    upload(host);
  }
  void upload(const std::vector<T>& host) {
    if (n_ > 0)
      CUDA_CHECK(cudaMemcpy(get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  T* get() { return buf_.get() + off_; }
  std::vector<T> to_host() const {
    const auto all = buf_.to_host();
    return std::vector<T>(all.begin() + off_, all.end());
  }

 private:
  DeviceBuffer<T> buf_;
  int64_t n_, off_;
};

}  // namespace lethe::testing
