// CUDA pooling (kernels/cuda/pool.cu) against the CPU fast path and oracles on the same
// seeded inputs: max pooling (values and argmax exact, first maximum on ties; gx exact, as the
// gather adds in the CPU's order), average pooling with padding (count_include_pad), global
// average pooling; shapes from VGG-16 (2x2 s2 on 32x32 ... 2x2), ResNet-18's global pool
// (4x4x512), and awkward ones (odd sizes, padding, overlapping windows, many ties).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/pool.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;
using lethe::testing::Tolerance;

constexpr Tolerance kExact{0, 0};

PoolShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p) {
  PoolShape sh;
  sh.N = N;
  sh.C = C;
  sh.H = H;
  sh.W = W;
  sh.kernel = k;
  sh.stride = s;
  sh.pad = p;
  return sh;
}

std::vector<PoolShape> shapes() {
  std::vector<PoolShape> out;
  if (small_shapes_only()) {
    out.push_back(make(1, 4, 32, 32, 2, 2, 0));  // VGG-16's first pool, few channels
  } else {
    out.push_back(make(8, 64, 32, 32, 2, 2, 0));   // VGG-16 pools at batch 8
    out.push_back(make(8, 128, 16, 16, 2, 2, 0));
    out.push_back(make(8, 512, 2, 2, 2, 2, 0));
  }
  out.push_back(make(2, 3, 7, 9, 3, 2, 1));   // odd sizes, padding
  out.push_back(make(1, 2, 5, 6, 3, 1, 1));   // overlapping windows (stride < kernel)
  out.push_back(make(3, 1, 7, 7, 2, 2, 0));   // the last row and column fall outside
  out.push_back(make(2, 2, 8, 8, 3, 3, 1));   // padding on both ends
  out.push_back(make(1, 3, 6, 5, 4, 2, 2));   // windows mostly in the padding
  out.push_back(make(1, 1, 1, 1, 1, 1, 0));   // one pixel
  return out;
}

std::string name(const PoolShape& s) {
  return ::lethe::detail::concat("N", s.N, "_C", s.C, "_H", s.H, "_W", s.W, "_k", s.kernel,
                                 "_s", s.stride, "_p", s.pad);
}

// Small integers in {0, 1, 2}: nearly every window has ties, so the first-maximum rule and
// several outputs sharing one input are exercised.
std::vector<float> with_ties(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(0, 2);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(dist(gen));
  return v;
}

TEST(PoolCuda, MaxPoolMatchesCpuExactly) {
  LETHE_REQUIRE_GPU();
  for (const PoolShape& s : shapes())
    for (bool ties : {false, true}) {
      const std::string t = name(s) + (ties ? " ties" : " random");
      const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.P() * s.Q();
      const auto x = ties ? with_ties(nx, 1) : random_vector<float>(nx, 1);
      const auto gy = random_vector<float>(ny, 2);
      std::vector<float> y(static_cast<size_t>(ny)), y_ref(y.size()), gx(x.size());
      std::vector<int32_t> arg(y.size()), arg_ref(y.size());
      maxpool2d_forward_cpu(s, x.data(), y.data(), arg.data());
      maxpool2d_forward_ref(s, x.data(), y_ref.data(), arg_ref.data());
      maxpool2d_backward_cpu(s, gy.data(), arg.data(), gx.data());

      DeviceBuffer<float> dx(x), dgy(gy), dy(ny), dgx(nx);
      DeviceBuffer<int32_t> darg(ny);
      dy.poison();
      dgx.poison();
      darg.poison();
      maxpool2d_forward_cuda(s, dx.get(), dy.get(), darg.get());
      const auto gy_h = dy.to_host();
      const auto garg = darg.to_host();
      EXPECT_TRUE(all_close(y, gy_h, kExact, "maxpool y " + t));
      EXPECT_TRUE(all_close(y_ref, gy_h, kExact, "maxpool y vs ref " + t));
      EXPECT_TRUE(all_close(arg, garg, kExact, "maxpool argmax " + t));
      EXPECT_TRUE(all_close(arg_ref, garg, kExact, "maxpool argmax vs ref " + t));
      // Backward from the GPU's own argmax (equal to the CPU's, checked above).
      maxpool2d_backward_cuda(s, dgy.get(), darg.get(), dgx.get());
      EXPECT_TRUE(all_close(gx, dgx.to_host(), kExact, "maxpool gx " + t));
    }
}

TEST(PoolCuda, MaxPoolTiesAndNaNHandComputed) {
  LETHE_REQUIRE_GPU();
  // One 2x4 plane, 2x2 windows: a NaN beats every number and the first NaN stays; on the tie
  // of three 3s the first wins until the 5.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {1, nan, 3, 3,  //
                                0, 2, 3, 5};
  const PoolShape s = make(1, 1, 2, 4, 2, 2, 0);
  DeviceBuffer<float> dx(x), dy(2);
  DeviceBuffer<int32_t> darg(2);
  dy.poison();
  darg.poison();
  maxpool2d_forward_cuda(s, dx.get(), dy.get(), darg.get());
  const auto y = dy.to_host();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 5.f);
  EXPECT_EQ(darg.to_host(), (std::vector<int32_t>{1, 7}));
  // Ties only: the first 3 (index 2) wins.
  const std::vector<float> t = {3, 3, 3, 3, 3, 3, 3, 3};
  DeviceBuffer<float> dt(t);
  maxpool2d_forward_cuda(s, dt.get(), dy.get(), darg.get());
  EXPECT_EQ(darg.to_host(), (std::vector<int32_t>{0, 2}));
}

TEST(PoolCuda, AvgPoolMatchesCpu) {
  LETHE_REQUIRE_GPU();
  for (const PoolShape& s : shapes()) {
    const std::string t = name(s);
    const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.P() * s.Q();
    const auto x = random_vector<float>(nx, 3), gy = random_vector<float>(ny, 4);
    std::vector<float> y(static_cast<size_t>(ny)), y_ref(y.size());
    std::vector<float> gx(x.size()), gx_ref(x.size());
    avgpool2d_forward_cpu(s, x.data(), y.data());
    avgpool2d_forward_ref(s, x.data(), y_ref.data());
    avgpool2d_backward_cpu(s, gy.data(), gx.data());
    avgpool2d_backward_ref(s, gy.data(), gx_ref.data());
    DeviceBuffer<float> dx(x), dgy(gy), dy(ny), dgx(nx);
    dy.poison();
    dgx.poison();
    avgpool2d_forward_cuda(s, dx.get(), dy.get());
    avgpool2d_backward_cuda(s, dgy.get(), dgx.get());
    const auto gy_h = dy.to_host(), gx_h = dgx.to_host();
    EXPECT_TRUE(all_close(y, gy_h, kFp32Tol, "avgpool y " + t));
    EXPECT_TRUE(all_close(y_ref, gy_h, kFp32Tol, "avgpool y vs ref " + t));
    EXPECT_TRUE(all_close(gx, gx_h, kFp32Tol, "avgpool gx " + t));
    EXPECT_TRUE(all_close(gx_ref, gx_h, kFp32Tol, "avgpool gx vs ref " + t));
  }
}

TEST(PoolCuda, GlobalAvgPoolMatchesCpu) {
  LETHE_REQUIRE_GPU();
  // ResNet-18's 4x4x512 head at batch 8 (small: batch 2, 16 channels), and odd plane sizes.
  const int64_t nc_head = small_shapes_only() ? 2 * 16 : 8 * 512;
  const std::vector<std::pair<int64_t, int64_t>> cases = {
      {nc_head, 16}, {37, 1}, {5, 49}, {3, 1000}, {1, 33}};
  for (const auto& [NC, HW] : cases) {
    const std::string t = "NC=" + std::to_string(NC) + " HW=" + std::to_string(HW);
    const auto x = random_vector<float>(NC * HW, 5), gy = random_vector<float>(NC, 6);
    std::vector<float> y(static_cast<size_t>(NC)), gx(x.size());
    global_avgpool_forward_cpu(NC, HW, x.data(), y.data());
    global_avgpool_backward_cpu(NC, HW, gy.data(), gx.data());
    DeviceBuffer<float> dx(x), dgy(gy), dy(NC), dgx(NC * HW);
    dy.poison();
    dgx.poison();
    global_avgpool_forward_cuda(NC, HW, dx.get(), dy.get());
    global_avgpool_backward_cuda(NC, HW, dgy.get(), dgx.get());
    EXPECT_TRUE(all_close(y, dy.to_host(), kFp32Tol, "global avg y " + t));
    EXPECT_TRUE(all_close(gx, dgx.to_host(), kExact, "global avg gx " + t));
  }
}

}  // namespace
}  // namespace lethe::kernels
