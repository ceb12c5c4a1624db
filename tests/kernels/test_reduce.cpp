// Reductions on the CPU (kernels/cpu/reduce.cpp): sum / abs_sum vs the sequential oracle
// over awkward sizes (around the chunk size 1 << 14), hand-computed values, sign_axpy, and
// determinism: a repeated call, and a call with another thread count, is bit-identical.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/reduce.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

const std::vector<int64_t> kSizes = {0,     1,     5,      (1 << 14) - 1, 1 << 14,
                                     (1 << 14) + 1, 100003, (1 << 20) + 7};

template <typename T>
class ReduceTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ReduceTest, Types);

TYPED_TEST(ReduceTest, SumMatchesRef) {
  using T = TypeParam;
  for (int64_t n : kSizes) {
    const auto x = random_vector<T>(n, 11, -1.0, 3.0);
    double abs_ref = 0.0;
    for (T v : x) abs_ref += std::fabs(static_cast<double>(v));
    // Both accumulate in double; only the association differs, so the error is a few ulp
    // of the sum of magnitudes.
    const double tol = 1e-13 * (abs_ref + 1.0);
    EXPECT_NEAR(sum_ref(n, x.data()), sum_cpu(n, x.data()), tol) << "sum n=" << n;
    EXPECT_NEAR(abs_ref, abs_sum_cpu(n, x.data()), tol) << "abs_sum n=" << n;
  }
}

TYPED_TEST(ReduceTest, HandComputed) {
  using T = TypeParam;
  const std::vector<T> a = {1, 2, 3, 4.5};
  EXPECT_EQ(sum_cpu<T>(4, a.data()), 10.5);
  EXPECT_EQ(sum_ref<T>(4, a.data()), 10.5);
  const std::vector<T> b = {-1, 2, -3.5, 0};
  EXPECT_EQ(sum_cpu<T>(4, b.data()), -2.5);
  EXPECT_EQ(abs_sum_cpu<T>(4, b.data()), 6.5);
  EXPECT_EQ(sum_cpu<T>(0, b.data()), 0.0);
}

TYPED_TEST(ReduceTest, SignAxpy) {
  using T = TypeParam;
  std::vector<T> y = {1, 1, 1, 1};
  const std::vector<T> x = {-2, 0, 3, T(-0.0)};
  sign_axpy_cpu<T>(4, T(0.5), x.data(), y.data());
  EXPECT_EQ(y, (std::vector<T>{0.5, 1, 1.5, 1}));  // sign(0) = sign(-0) = 0
  for (int64_t n : {int64_t{7}, (int64_t{1} << 16) + 1}) {
    auto xs = random_vector<T>(n, 12);
    for (int64_t i = 0; i < n; i += 4) xs[static_cast<size_t>(i)] = T(0);
    const auto y0 = random_vector<T>(n, 13);
    std::vector<T> expect(y0), got(y0);
    for (size_t i = 0; i < expect.size(); ++i) {
      const T s = xs[i] > 0 ? T(1) : (xs[i] < 0 ? T(-1) : T(0));
      expect[i] = y0[i] + T(-0.25) * s;
    }
    sign_axpy_cpu(n, T(-0.25), xs.data(), got.data());
    EXPECT_TRUE(all_close(expect, got, Tolerance{0, 0}, "sign_axpy n=" + std::to_string(n)));
  }
}

TYPED_TEST(ReduceTest, DeterministicAcrossCallsAndThreadCounts) {
  using T = TypeParam;
  const int64_t n = (int64_t{1} << 20) + 12345;
  const auto x = random_vector<T>(n, 14, -1.0, 1.0);
  const double s1 = sum_cpu(n, x.data()), a1 = abs_sum_cpu(n, x.data());
  for (int rep = 0; rep < 3; ++rep) {
    EXPECT_EQ(s1, sum_cpu(n, x.data()));  // bit-identical, not merely close
    EXPECT_EQ(a1, abs_sum_cpu(n, x.data()));
  }
  // The chunking does not depend on the thread count, so neither does the result.
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double s_one = sum_cpu(n, x.data()), a_one = abs_sum_cpu(n, x.data());
  omp_set_num_threads(3);
  const double s_three = sum_cpu(n, x.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(s1, s_one);
  EXPECT_EQ(a1, a_one);
  EXPECT_EQ(s1, s_three);
}

}  // namespace
}  // namespace lethe::kernels
