// Elementwise CPU kernels (kernels/cpu/elementwise.cpp): relu fast vs oracle, every map vs
// an inline loop over awkward sizes (0, 1, odd, above the OpenMP threshold), in-place use,
// and hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/elementwise.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

// Sizes: empty, one, odd, a vector tail, and one above the parallel threshold (1 << 15).
const std::vector<int64_t> kSizes = {0, 1, 7, 1000, (int64_t{1} << 16) + 3};

template <typename T>
class ElementwiseTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ElementwiseTest, Types);

// Random values in [-1, 1) with every fifth one exactly 0 (the relu kink).
template <typename T>
std::vector<T> with_zeros(int64_t n, uint32_t seed) {
  auto v = random_vector<T>(n, seed);
  for (int64_t i = 0; i < n; i += 5) v[static_cast<size_t>(i)] = T(0);
  return v;
}

TYPED_TEST(ElementwiseTest, ReluMatchesRef) {
  using T = TypeParam;
  for (int64_t n : kSizes) {
    const auto x = with_zeros<T>(n, 1), gy = random_vector<T>(n, 2);
    std::vector<T> y(x.size()), y_ref(x.size()), gx(x.size()), gx_ref(x.size());
    relu_forward_cpu(n, x.data(), y.data());
    relu_forward_ref(n, x.data(), y_ref.data());
    relu_backward_cpu(n, x.data(), gy.data(), gx.data());
    relu_backward_ref(n, x.data(), gy.data(), gx_ref.data());
    EXPECT_TRUE(all_close(y_ref, y, Tolerance{0, 0}, "relu forward n=" + std::to_string(n)));
    EXPECT_TRUE(all_close(gx_ref, gx, Tolerance{0, 0}, "relu backward n=" + std::to_string(n)));
  }
}

TYPED_TEST(ElementwiseTest, ReluHandComputed) {
  using T = TypeParam;
  const std::vector<T> x = {-2, -0.5, 0, 0.5, 3}, gy = {1, 2, 3, 4, 5};
  std::vector<T> y(5), gx(5);
  relu_forward_cpu<T>(5, x.data(), y.data());
  relu_backward_cpu<T>(5, x.data(), gy.data(), gx.data());
  EXPECT_EQ(y, (std::vector<T>{0, 0, 0, 0.5, 3}));
  EXPECT_EQ(gx, (std::vector<T>{0, 0, 0, 4, 5}));  // gradient 0 at x == 0
  // In place, and a NaN passes through the forward (a diverging run stays visible).
  std::vector<T> z = {T(-1), std::numeric_limits<T>::quiet_NaN(), T(2)};
  relu_forward_cpu<T>(3, z.data(), z.data());
  EXPECT_EQ(z[0], T(0));
  EXPECT_TRUE(std::isnan(z[1]));
  EXPECT_EQ(z[2], T(2));
}

TYPED_TEST(ElementwiseTest, BinaryMapsMatchLoops) {
  using T = TypeParam;
  for (int64_t n : kSizes) {
    const auto a = random_vector<T>(n, 3), b = random_vector<T>(n, 4);
    std::vector<T> sum(a.size()), prod(a.size()), sum_relu(a.size());
    std::vector<T> e_sum(a.size()), e_prod(a.size()), e_sum_relu(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      e_sum[i] = a[i] + b[i];
      e_prod[i] = a[i] * b[i];
      e_sum_relu[i] = e_sum[i] > 0 ? e_sum[i] : T(0);
    }
    add_cpu(n, a.data(), b.data(), sum.data());
    mul_cpu(n, a.data(), b.data(), prod.data());
    add_relu_cpu(n, a.data(), b.data(), sum_relu.data());
    const std::string tag = " n=" + std::to_string(n);
    EXPECT_TRUE(all_close(e_sum, sum, Tolerance{0, 0}, "add" + tag));
    EXPECT_TRUE(all_close(e_prod, prod, Tolerance{0, 0}, "mul" + tag));
    EXPECT_TRUE(all_close(e_sum_relu, sum_relu, Tolerance{0, 0}, "add_relu" + tag));
    // In place: y aliases a.
    auto inplace = a;
    add_cpu(n, inplace.data(), b.data(), inplace.data());
    EXPECT_TRUE(all_close(e_sum, inplace, Tolerance{0, 0}, "add in place" + tag));
  }
}

TYPED_TEST(ElementwiseTest, ScaleAxpyFillMatchLoops) {
  using T = TypeParam;
  const T alpha = T(-0.75);
  for (int64_t n : kSizes) {
    const auto x = random_vector<T>(n, 5), y0 = random_vector<T>(n, 6);
    std::vector<T> e_scale(x.size()), e_axpy(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      e_scale[i] = alpha * x[i];
      e_axpy[i] = y0[i] + alpha * x[i];
    }
    std::vector<T> scaled(x.size()), acc = y0, filled(x.size());
    scale_cpu(n, alpha, x.data(), scaled.data());
    axpy_cpu(n, alpha, x.data(), acc.data());
    fill_cpu(n, T(2.5), filled.data());
    const std::string tag = " n=" + std::to_string(n);
    EXPECT_TRUE(all_close(e_scale, scaled, Tolerance{0, 0}, "scale" + tag));
    EXPECT_TRUE(all_close(e_axpy, acc, Tolerance{0, 0}, "axpy" + tag));
    EXPECT_TRUE(all_close(std::vector<T>(x.size(), T(2.5)), filled, Tolerance{0, 0},
                          "fill" + tag));
  }
}

TYPED_TEST(ElementwiseTest, AxpyHandComputed) {
  using T = TypeParam;
  std::vector<T> y = {1, 2, 3};
  const std::vector<T> x = {1, -2, 4};
  axpy_cpu<T>(3, T(0.5), x.data(), y.data());
  EXPECT_EQ(y, (std::vector<T>{1.5, 1, 5}));
  scale_cpu<T>(3, T(2), y.data(), y.data());  // in place
  EXPECT_EQ(y, (std::vector<T>{3, 2, 10}));
}

TYPED_TEST(ElementwiseTest, MaskMulZeroesPrunedExactly) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  const std::vector<T> x = {1.5, -2, inf, std::numeric_limits<T>::quiet_NaN(), 7};
  const std::vector<uint8_t> mask = {1, 0, 0, 0, 1};
  std::vector<T> y(5);
  mask_mul_cpu<T>(5, x.data(), mask.data(), y.data());
  // Pruned entries are exactly 0 even for inf / NaN inputs (a product would give NaN).
  EXPECT_EQ(y, (std::vector<T>{1.5, 0, 0, 0, 7}));
  for (int64_t n : kSizes) {
    const auto v = random_vector<T>(n, 7);
    std::vector<uint8_t> m(v.size());
    std::vector<T> expect(v.size()), got = v;
    for (size_t i = 0; i < v.size(); ++i) {
      m[i] = static_cast<uint8_t>(i % 3 != 0);
      expect[i] = m[i] ? v[i] : T(0);
    }
    mask_mul_cpu(n, got.data(), m.data(), got.data());  // in place
    EXPECT_TRUE(all_close(expect, got, Tolerance{0, 0}, "mask_mul n=" + std::to_string(n)));
  }
}

}  // namespace
}  // namespace lethe::kernels
