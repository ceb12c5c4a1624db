// The comparison harness every test uses: element-wise |got - ref| <= atol + rtol*|ref|,
// and on failure a message naming what was compared, the max error and the first mismatches.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lethe::testing {

struct Tolerance {
  double atol = 1e-5, rtol = 1e-4;
};

/// Compares two arrays of n elements; returns a gtest assertion result with a diagnostic.
template <typename A, typename B>
::testing::AssertionResult all_close(const A* ref, const B* got, int64_t n, Tolerance tol,
                                     const std::string& what);

template <typename A, typename B>
::testing::AssertionResult all_close(const std::vector<A>& ref, const std::vector<B>& got,
                                     Tolerance tol, const std::string& what) {
  if (ref.size() != got.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " != expected "
                                         << ref.size();
  return all_close(ref.data(), got.data(), static_cast<int64_t>(ref.size()), tol, what);
}

/// Seeded uniform values in [lo, hi), for test inputs (std::mt19937: fixed across platforms).
template <typename T>
std::vector<T> random_vector(int64_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

}  // namespace lethe::testing
