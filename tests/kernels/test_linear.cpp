// linear_forward_cpu / linear_backward_cpu (GEMM-based) against the plain-loop *_ref oracles,
// over a shape list (batch 1, odd sizes, a classifier head), with and without bias, with each
// gradient nullable; plus a hand-computed case, in float and double. Outputs are pre-filled
// with NaN so an element the kernel forgets to overwrite fails the comparison.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/linear.h"
#include "testing/compare.h"

namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

struct LinearCase {
  int64_t N, I, O;
};

const LinearCase kCases[] = {{1, 3, 5}, {7, 33, 10}, {2, 1, 1}, {64, 512, 10}, {13, 70, 129}};

template <typename T>
Tolerance tol_for(int64_t len) {
  const double eps = std::numeric_limits<T>::epsilon();
  return {4.0 * eps * static_cast<double>(len + 1), 4.0 * eps * static_cast<double>(len + 1)};
}

template <typename T>
std::vector<T> nans(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
}

std::string name(const LinearCase& c) {
  return "linear N=" + std::to_string(c.N) + " I=" + std::to_string(c.I) +
         " O=" + std::to_string(c.O);
}

template <typename T>
class LinearTest : public ::testing::Test {};
using LinearTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(LinearTest, LinearTypes);

TYPED_TEST(LinearTest, ForwardMatchesReference) {
  using T = TypeParam;
  for (const auto& c : kCases)
    for (bool with_bias : {true, false}) {
      const auto x = random_vector<T>(c.N * c.I, 1), w = random_vector<T>(c.O * c.I, 2);
      const auto b = random_vector<T>(c.O, 3);
      auto ref = nans<T>(c.N * c.O), got = nans<T>(c.N * c.O);
      const T* bp = with_bias ? b.data() : nullptr;
      lethe::kernels::linear_forward_ref<T>(c.N, c.I, c.O, x.data(), w.data(), bp, ref.data());
      lethe::kernels::linear_forward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), bp, got.data());
      EXPECT_TRUE(all_close(ref, got, tol_for<T>(c.I),
                            name(c) + (with_bias ? " forward+bias" : " forward")));
    }
}

TYPED_TEST(LinearTest, BackwardMatchesReference) {
  using T = TypeParam;
  for (const auto& c : kCases) {
    const auto x = random_vector<T>(c.N * c.I, 4), w = random_vector<T>(c.O * c.I, 5);
    const auto gy = random_vector<T>(c.N * c.O, 6);
    auto gx_ref = nans<T>(c.N * c.I), gw_ref = nans<T>(c.O * c.I), gb_ref = nans<T>(c.O);
    auto gx = gx_ref, gw = gw_ref, gb = gb_ref;
    lethe::kernels::linear_backward_ref<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(),
                                           gx_ref.data(), gw_ref.data(), gb_ref.data());
    lethe::kernels::linear_backward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(),
                                           gx.data(), gw.data(), gb.data());
    EXPECT_TRUE(all_close(gx_ref, gx, tol_for<T>(c.O), name(c) + " gx"));
    EXPECT_TRUE(all_close(gw_ref, gw, tol_for<T>(c.N), name(c) + " gw"));
    EXPECT_TRUE(all_close(gb_ref, gb, tol_for<T>(c.N), name(c) + " gb"));
  }
}

TYPED_TEST(LinearTest, BackwardSkipsNullGradients) {
  using T = TypeParam;
  const LinearCase c{5, 9, 4};
  const auto x = random_vector<T>(c.N * c.I, 7), w = random_vector<T>(c.O * c.I, 8);
  const auto gy = random_vector<T>(c.N * c.O, 9);
  auto gx_ref = nans<T>(c.N * c.I), gw_ref = nans<T>(c.O * c.I), gb_ref = nans<T>(c.O);
  lethe::kernels::linear_backward_ref<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(),
                                         gx_ref.data(), gw_ref.data(), gb_ref.data());
  // Each gradient alone: the other two pointers are null and must not be touched.
  auto gx = nans<T>(c.N * c.I), gw = nans<T>(c.O * c.I), gb = nans<T>(c.O);
  lethe::kernels::linear_backward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(),
                                         gx.data(), nullptr, nullptr);
  lethe::kernels::linear_backward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(), nullptr,
                                         gw.data(), nullptr);
  lethe::kernels::linear_backward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(), nullptr,
                                         nullptr, gb.data());
  EXPECT_TRUE(all_close(gx_ref, gx, tol_for<T>(c.O), "gx alone"));
  EXPECT_TRUE(all_close(gw_ref, gw, tol_for<T>(c.N), "gw alone"));
  EXPECT_TRUE(all_close(gb_ref, gb, tol_for<T>(c.N), "gb alone"));
  lethe::kernels::linear_backward_cpu<T>(c.N, c.I, c.O, x.data(), w.data(), gy.data(), nullptr,
                                         nullptr, nullptr);  // nothing wanted: a no-op
}

TYPED_TEST(LinearTest, HandComputed) {
  using T = TypeParam;
  // N=2, I=3, O=2: x = [1 2 3; 4 5 6], w = [1 0 -1; 2 1 0], b = [0.5, -1].
  const std::vector<T> x = {1, 2, 3, 4, 5, 6}, w = {1, 0, -1, 2, 1, 0}, b = {0.5, -1};
  std::vector<T> y(4);
  lethe::kernels::linear_forward_cpu<T>(2, 3, 2, x.data(), w.data(), b.data(), y.data());
  // y[0] = [1-3+0.5, 2+2-1] = [-1.5, 3]; y[1] = [4-6+0.5, 8+5-1] = [-1.5, 12].
  EXPECT_TRUE(all_close(std::vector<T>{-1.5, 3, -1.5, 12}, y, Tolerance{0, 0}, "y"));
  // gy = [1 2; 3 4]: gx = gy w = [5 2 -1; 11 4 -3]; gw = gy^T x = [13 17 21; 18 24 30];
  // gb = [4, 6].
  const std::vector<T> gy = {1, 2, 3, 4};
  std::vector<T> gx(6), gw(6), gb(2);
  lethe::kernels::linear_backward_cpu<T>(2, 3, 2, x.data(), w.data(), gy.data(), gx.data(),
                                         gw.data(), gb.data());
  EXPECT_TRUE(all_close(std::vector<T>{5, 2, -1, 11, 4, -3}, gx, Tolerance{0, 0}, "gx"));
  EXPECT_TRUE(all_close(std::vector<T>{13, 17, 21, 18, 24, 30}, gw, Tolerance{0, 0}, "gw"));
  EXPECT_TRUE(all_close(std::vector<T>{4, 6}, gb, Tolerance{0, 0}, "gb"));
}

}  // namespace
