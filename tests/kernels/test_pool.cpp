// Pooling CPU kernels (kernels/cpu/pool.cpp): hand-computed max pooling (ties pick the first,
// padding never wins, overlapping windows accumulate in backward), average pooling with
// count_include_pad, global average pooling, and fast vs oracle over awkward shapes (odd
// sizes, batch 1, stride 2 with odd H/W, padding, stride < kernel) in float and double.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/pool.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

template <typename T>
class PoolTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(PoolTest, Types);

template <typename T>
Tolerance tol() {
  return sizeof(T) == 4 ? Tolerance{1e-6, 1e-5} : Tolerance{1e-14, 1e-12};
}

// 4x4 plane, 2x2 windows, stride 2:
//   [ 1  3 |  2  2 ]   window (0,0): {1,3,3,0}  -> 3, first at (0,1): index 1
//   [ 3  0 |  2  1 ]   window (0,1): {2,2,2,1}  -> 2, first at (0,2): index 2
//   [ 0  0 |  5  4 ]   window (1,0): {0,0,-1,-2} -> 0, first at (2,0): index 8
//   [-1 -2 |  4  5 ]   window (1,1): {5,4,4,5}  -> 5, first at (2,2): index 10
TYPED_TEST(PoolTest, MaxPoolTiesPickTheFirst) {
  using T = TypeParam;
  const PoolShape s{1, 1, 4, 4, 2, 2, 0};
  const std::vector<T> x = {1, 3, 2, 2, 3, 0, 2, 1, 0, 0, 5, 4, -1, -2, 4, 5};
  for (bool ref : {false, true}) {
    std::vector<T> y(4), gx(16);
    std::vector<int32_t> arg(4);
    (ref ? maxpool2d_forward_ref<T> : maxpool2d_forward_cpu<T>)(s, x.data(), y.data(),
                                                                 arg.data());
    EXPECT_EQ(y, (std::vector<T>{3, 2, 0, 5}));
    EXPECT_EQ(arg, (std::vector<int32_t>{1, 2, 8, 10}));
    const std::vector<T> gy = {1, 2, 3, 4};
    (ref ? maxpool2d_backward_ref<T> : maxpool2d_backward_cpu<T>)(s, gy.data(), arg.data(),
                                                                   gx.data());
    EXPECT_EQ(gx, (std::vector<T>{0, 1, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0}));
  }
}

// All-negative 3x3 plane x = -(1..9), 3x3 windows, stride 2, pad 1 (P = Q = 2). A padded 0
// would beat every real value; it must never win:
//   (0,0): {-1,-2,-4,-5} -> -1 @0   (0,1): {-2,-3,-5,-6} -> -2 @1
//   (1,0): {-4,-5,-7,-8} -> -4 @3   (1,1): {-5,-6,-8,-9} -> -5 @4
TYPED_TEST(PoolTest, MaxPoolPaddingNeverWins) {
  using T = TypeParam;
  const PoolShape s{1, 1, 3, 3, 3, 2, 1};
  ASSERT_EQ(s.P(), 2);
  const std::vector<T> x = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
  for (bool ref : {false, true}) {
    std::vector<T> y(4);
    std::vector<int32_t> arg(4);
    (ref ? maxpool2d_forward_ref<T> : maxpool2d_forward_cpu<T>)(s, x.data(), y.data(),
                                                                 arg.data());
    EXPECT_EQ(y, (std::vector<T>{-1, -2, -4, -5}));
    EXPECT_EQ(arg, (std::vector<int32_t>{0, 1, 3, 4}));
  }
}

// Stride 1 < kernel 2 on a 2x3 plane: both windows pick the 9 at index 1, so its gradient
// is the sum of both upstream gradients (and gx is overwritten, not accumulated into).
TYPED_TEST(PoolTest, MaxPoolOverlappingWindowsAccumulate) {
  using T = TypeParam;
  const PoolShape s{1, 1, 2, 3, 2, 1, 0};
  const std::vector<T> x = {0, 9, 0, 0, 0, 0}, gy = {1.5, 2};
  std::vector<T> y(2), gx(6, T(100));
  std::vector<int32_t> arg(2);
  maxpool2d_forward_cpu<T>(s, x.data(), y.data(), arg.data());
  EXPECT_EQ(arg, (std::vector<int32_t>{1, 1}));
  maxpool2d_backward_cpu<T>(s, gy.data(), arg.data(), gx.data());
  EXPECT_EQ(gx, (std::vector<T>{0, 3.5, 0, 0, 0, 0}));
}

// 2x2 plane {1,2;3,4}, 2x2 windows, stride 1, pad 1 (P = Q = 3), divisor always 4:
//   y = [1 3 2; 4 10 6; 3 7 4] / 4
// Backward with gy = 1..9: each input sits in four windows, e.g. x(0,0) in outputs
// (0,0),(0,1),(1,0),(1,1): (1+2+4+5)/4 = 3; likewise 4, 6, 7.
TYPED_TEST(PoolTest, AvgPoolCountsPadding) {
  using T = TypeParam;
  const PoolShape s{1, 1, 2, 2, 2, 1, 1};
  ASSERT_EQ(s.P(), 3);
  const std::vector<T> x = {1, 2, 3, 4}, gy = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (bool ref : {false, true}) {
    std::vector<T> y(9), gx(4);
    (ref ? avgpool2d_forward_ref<T> : avgpool2d_forward_cpu<T>)(s, x.data(), y.data());
    EXPECT_TRUE(all_close(std::vector<T>{0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1}, y,
                          tol<T>(), ref ? "avg y (ref)" : "avg y (cpu)"));
    (ref ? avgpool2d_backward_ref<T> : avgpool2d_backward_cpu<T>)(s, gy.data(), gx.data());
    EXPECT_TRUE(all_close(std::vector<T>{3, 4, 6, 7}, gx, tol<T>(),
                          ref ? "avg gx (ref)" : "avg gx (cpu)"));
  }
}

TYPED_TEST(PoolTest, GlobalAvgPoolHandComputed) {
  using T = TypeParam;
  const std::vector<T> x = {1, 2, 3, 6, -1, -1, 2, 4};  // two planes of HW = 4
  std::vector<T> y(2), gx(8);
  global_avgpool_forward_cpu<T>(2, 4, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<T>{3, 1}));
  const std::vector<T> gy = {2, -4};
  global_avgpool_backward_cpu<T>(2, 4, gy.data(), gx.data());
  EXPECT_EQ(gx, (std::vector<T>{0.5, 0.5, 0.5, 0.5, -1, -1, -1, -1}));
}

// N, C, H, W, kernel, stride, pad.
const PoolShape kShapes[] = {
    {1, 3, 7, 5, 2, 2, 0},     // odd H/W, stride 2: the last row / column is dropped
    {2, 5, 7, 5, 3, 2, 1},     // padding, odd sizes
    {1, 1, 1, 1, 1, 1, 0},     // trivial
    {3, 2, 8, 8, 2, 2, 0},     // VGG's pool on a small plane
    {2, 3, 9, 11, 3, 1, 1},    // stride < kernel: overlapping windows
    {1, 13, 6, 7, 3, 3, 1},    // C not a multiple of 8, stride == kernel with padding
    {4, 16, 32, 32, 2, 2, 0},  // above the OpenMP threshold
    {2, 9, 17, 15, 3, 2, 1},   // above the threshold with padding, odd sizes
};

// Built with a stream: GCC 12 at -O3 gives a false -Wrestrict on "literal" + std::string.
std::string name(const PoolShape& s) {
  std::ostringstream os;
  os << " N" << s.N << "_C" << s.C << "_H" << s.H << "_W" << s.W << "_k" << s.kernel << "_s"
     << s.stride << "_p" << s.pad;
  return os.str();
}

TYPED_TEST(PoolTest, FastMatchesRef) {
  using T = TypeParam;
  for (const PoolShape& s : kShapes) {
    const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.P() * s.Q();
    const std::string tag = name(s);
    // Values on a coarse grid (multiples of 1/4 in [-2, 2]) so that ties are common and the
    // first-wins rule is exercised against the oracle.
    auto x = random_vector<T>(nx, 71, -2.0, 2.0);
    for (auto& v : x) v = std::round(v * 4) / 4;
    const auto gy = random_vector<T>(ny, 72);

    std::vector<T> y(ny), y_ref(ny);
    std::vector<int32_t> arg(ny), arg_ref(ny);
    maxpool2d_forward_cpu(s, x.data(), y.data(), arg.data());
    maxpool2d_forward_ref(s, x.data(), y_ref.data(), arg_ref.data());
    EXPECT_TRUE(all_close(y_ref, y, Tolerance{0, 0}, "max y" + tag));
    EXPECT_TRUE(all_close(arg_ref, arg, Tolerance{0, 0}, "max argmax" + tag));

    std::vector<T> gx(nx, T(-1)), gx_ref(nx, T(-1));
    maxpool2d_backward_cpu(s, gy.data(), arg_ref.data(), gx.data());
    maxpool2d_backward_ref(s, gy.data(), arg_ref.data(), gx_ref.data());
    EXPECT_TRUE(all_close(gx_ref, gx, tol<T>(), "max gx" + tag));

    avgpool2d_forward_cpu(s, x.data(), y.data());
    avgpool2d_forward_ref(s, x.data(), y_ref.data());
    EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "avg y" + tag));
    avgpool2d_backward_cpu(s, gy.data(), gx.data());
    avgpool2d_backward_ref(s, gy.data(), gx_ref.data());
    EXPECT_TRUE(all_close(gx_ref, gx, tol<T>(), "avg gx" + tag));
  }
}

TYPED_TEST(PoolTest, GlobalAvgPoolMatchesLoop) {
  using T = TypeParam;
  const std::pair<int64_t, int64_t> planes[] = {{1, 1}, {7, 35}, {3, 1}, {512, 64}};
  for (const auto& [NC, HW] : planes) {
    const auto x = random_vector<T>(NC * HW, 81), gy = random_vector<T>(NC, 82);
    std::vector<T> y(NC), gx(NC * HW), e_y(NC), e_gx(NC * HW);
    for (int64_t i = 0; i < NC; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < HW; ++j) acc += x[i * HW + j];
      e_y[i] = static_cast<T>(acc / HW);
      for (int64_t j = 0; j < HW; ++j) e_gx[i * HW + j] = static_cast<T>(gy[i] / double(HW));
    }
    global_avgpool_forward_cpu(NC, HW, x.data(), y.data());
    global_avgpool_backward_cpu(NC, HW, gy.data(), gx.data());
    const std::string tag = " NC" + std::to_string(NC) + "_HW" + std::to_string(HW);
    EXPECT_TRUE(all_close(e_y, y, tol<T>(), "global avg y" + tag));
    EXPECT_TRUE(all_close(e_gx, gx, tol<T>(), "global avg gx" + tag));
  }
}

// Finite differences in double for average pooling (max pooling's gradient is a routing,
// checked exactly above).
TEST(PoolGradCheck, AvgPoolMatchesFiniteDifferences) {
  const PoolShape s{1, 2, 5, 4, 3, 2, 1};
  const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.P() * s.Q();
  const auto x0 = random_vector<double>(nx, 91), w = random_vector<double>(ny, 92);
  auto loss = [&](const std::vector<double>& x) {
    std::vector<double> y(ny);
    avgpool2d_forward_cpu(s, x.data(), y.data());
    double l = 0;
    for (int64_t i = 0; i < ny; ++i) l += w[i] * y[i];
    return l;
  };
  std::vector<double> gx(nx), fd(nx);
  avgpool2d_backward_cpu(s, w.data(), gx.data());
  for (int64_t i = 0; i < nx; ++i) {
    auto xp = x0, xm = x0;
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    fd[i] = (loss(xp) - loss(xm)) / 2e-6;
  }
  EXPECT_TRUE(all_close(fd, gx, Tolerance{1e-8, 1e-6}, "fd avgpool gx"));
}

}  // namespace
}  // namespace lethe::kernels
