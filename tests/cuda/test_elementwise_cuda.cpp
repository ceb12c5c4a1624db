// CUDA elementwise and reduce kernels (kernels/cuda/elementwise.cu, reduce.cu) against the CPU
// fast path and oracles on the same seeded inputs: every version, sizes 1, 3 and an odd
// 1000003 (a float4 tail), pointers misaligned by one float (v2's head) or misaligned
// differently (v2's fallback to v1), in-place use, NaN/inf, and reduce determinism.
// Elementwise results must match exactly; sums to double rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::Shifted;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;
using lethe::testing::Tolerance;

constexpr Tolerance kExact{0, 0};

std::vector<int64_t> sizes() {
  if (small_shapes_only()) return {1, 3, 4093};
  return {1, 3, 1000003};
}

// Random values in [-1, 1) with every fifth one exactly 0 (the relu kink, sign(0)).
std::vector<float> with_zeros(int64_t n, uint32_t seed) {
  auto v = random_vector<float>(n, seed);
  for (int64_t i = 0; i < n; i += 5) v[static_cast<size_t>(i)] = 0.f;
  return v;
}

// One run: a version, a size, and the element offsets of the first input, the second input
// and the output ({1, 1, 1}: all misaligned alike; {1, 0, 2}: differently).
struct Case {
  int version;
  int64_t n, off_a, off_b, off_y;
  std::string tag() const {
    return ::lethe::detail::concat("v", version, "(", elementwise_cuda_version_name(version),
                                   ") n=", n, " off=", off_a, ",", off_b, ",", off_y);
  }
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (int v = 1; v <= elementwise_cuda_versions(); ++v)
    for (int64_t n : sizes())
      for (const auto& o : {std::vector<int64_t>{0, 0, 0}, {1, 1, 1}, {1, 0, 2}})
        out.push_back({v, n, o[0], o[1], o[2]});
  return out;
}

TEST(ElementwiseCuda, MapsMatchCpuExactly) {
  LETHE_REQUIRE_GPU();
  const float alpha = -0.75f, value = 2.5f;
  for (const Case& c : cases()) {
    const int64_t n = c.n;
    const CudaExec e{nullptr, c.version};
    const auto x = with_zeros(n, 1), gy = random_vector<float>(n, 2);
    const auto a = random_vector<float>(n, 3), b = random_vector<float>(n, 4);
    std::vector<uint8_t> mask(x.size());
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = static_cast<uint8_t>(i % 3 != 0);
    const size_t sz = x.size();

    // CPU expectations. axpy: the kernel is one fma; the CPU loop is contracted the same way
    // by GCC, and is compared with the fp32 tolerance below in any case.
    std::vector<float> relu(sz), relu_g(sz), add(sz), add_relu(sz), mul(sz), scale(sz),
        fill(sz), masked(sz), axpy_fma(sz), axpy_cpu_out = b;
    relu_forward_cpu(n, x.data(), relu.data());
    relu_backward_cpu(n, x.data(), gy.data(), relu_g.data());
    add_cpu(n, a.data(), b.data(), add.data());
    add_relu_cpu(n, a.data(), b.data(), add_relu.data());
    mul_cpu(n, a.data(), b.data(), mul.data());
    scale_cpu(n, alpha, a.data(), scale.data());
    fill_cpu(n, value, fill.data());
    mask_mul_cpu(n, a.data(), mask.data(), masked.data());
    axpy_cpu(n, alpha, a.data(), axpy_cpu_out.data());
    for (size_t i = 0; i < sz; ++i) axpy_fma[i] = std::fma(alpha, a[i], b[i]);

    Shifted<float> dx(x, c.off_a), dgy(gy, c.off_b), da(a, c.off_a), db(b, c.off_b);
    Shifted<uint8_t> dmask(mask, c.off_b);
    const std::string t = ::lethe::detail::concat(" ", c.tag());
    auto check = [&](const char* what, const std::vector<float>& expect, auto&& launch) {
      Shifted<float> y(n, c.off_y);
      launch(y.get());
      EXPECT_TRUE(all_close(expect, y.to_host(), kExact, what + t));
    };
    check("relu_forward", relu, [&](float* y) { relu_forward_cuda(n, dx.get(), y, e); });
    check("relu_backward", relu_g,
          [&](float* y) { relu_backward_cuda(n, dx.get(), dgy.get(), y, e); });
    check("add", add, [&](float* y) { add_cuda(n, da.get(), db.get(), y, e); });
    check("add_relu", add_relu, [&](float* y) { add_relu_cuda(n, da.get(), db.get(), y, e); });
    check("mul", mul, [&](float* y) { mul_cuda(n, da.get(), db.get(), y, e); });
    check("scale", scale, [&](float* y) { scale_cuda(n, alpha, da.get(), y, e); });
    check("fill", fill, [&](float* y) { fill_cuda(n, value, y, e); });
    check("mask_mul", masked, [&](float* y) { mask_mul_cuda(n, da.get(), dmask.get(), y, e); });
    // axpy accumulates into y, which starts as b (at the output's offset).
    Shifted<float> acc(b, c.off_y);
    axpy_cuda(n, alpha, da.get(), acc.get(), e);
    const auto got = acc.to_host();
    EXPECT_TRUE(all_close(axpy_fma, got, kExact, "axpy vs fma" + t));
    EXPECT_TRUE(all_close(axpy_cpu_out, got, kFp32Tol, "axpy vs cpu" + t));
  }
}

TEST(ElementwiseCuda, InPlaceMatchesCpu) {
  LETHE_REQUIRE_GPU();
  for (const Case& c : cases()) {
    if (c.off_a != c.off_y) continue;  // in place: the output is the first input
    const int64_t n = c.n;
    const CudaExec e{nullptr, c.version};
    const auto a = with_zeros(n, 5), b = random_vector<float>(n, 6);
    std::vector<float> add(a.size()), relu(a.size());
    add_cpu(n, a.data(), b.data(), add.data());
    relu_forward_cpu(n, a.data(), relu.data());
    Shifted<float> da(a, c.off_a), db(b, c.off_b), dr(a, c.off_a);
    add_cuda(n, da.get(), db.get(), da.get(), e);
    relu_forward_cuda(n, dr.get(), dr.get(), e);
    EXPECT_TRUE(all_close(add, da.to_host(), kExact, "add in place " + c.tag()));
    EXPECT_TRUE(all_close(relu, dr.to_host(), kExact, "relu in place " + c.tag()));
  }
}

TEST(ElementwiseCuda, SpecialValues) {
  LETHE_REQUIRE_GPU();
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {-2.f, -0.f, 0.f, 0.5f, nan, inf, -inf};
  const std::vector<float> gy = {1, 2, 3, 4, 5, 6, 7};
  const std::vector<uint8_t> mask = {1, 0, 1, 0, 0, 0, 1};
  const int64_t n = static_cast<int64_t>(x.size());
  for (int v = 1; v <= elementwise_cuda_versions(); ++v) {
    const CudaExec e{nullptr, v};
    DeviceBuffer<float> dx(x), dgy(gy), y(n), g(n), m(n);
    DeviceBuffer<uint8_t> dmask(mask);
    relu_forward_cuda(n, dx.get(), y.get(), e);
    relu_backward_cuda(n, dx.get(), dgy.get(), g.get(), e);
    mask_mul_cuda(n, dx.get(), dmask.get(), m.get(), e);
    const auto yh = y.to_host(), gh = g.to_host(), mh = m.to_host();
    // relu passes NaN (a diverging run stays visible); its gradient is 0 at +-0 and NaN.
    EXPECT_EQ(yh[0], 0.f);
    EXPECT_EQ(yh[3], 0.5f);
    EXPECT_TRUE(std::isnan(yh[4]));
    EXPECT_EQ(yh[5], inf);
    EXPECT_EQ(yh[6], 0.f);
    EXPECT_EQ(gh, (std::vector<float>{0, 0, 0, 4, 0, 6, 0}));
    // A pruned entry is +0 even for inf / NaN (a select, not a product).
    EXPECT_EQ(mh[1], 0.f);
    EXPECT_FALSE(std::signbit(mh[1]));
    EXPECT_EQ(mh[3], 0.f);
    EXPECT_EQ(mh[4], 0.f);
    EXPECT_EQ(mh[5], 0.f);
    EXPECT_EQ(mh[6], -inf);
  }
  // n == 0 launches nothing (null pointers are fine).
  relu_forward_cuda(0, nullptr, nullptr);
  EXPECT_DOUBLE_EQ(sum_cuda(0, nullptr), 0.0);
}

// ---- reduce ------------------------------------------------------------------------------

TEST(ReduceCuda, SumsMatchOracleAndRepeat) {
  LETHE_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreate(&stream));
  for (int64_t n : sizes())
    for (int64_t off : {0, 1}) {
      const auto x = random_vector<float>(n, 11);
      std::vector<float> ax(x.size());
      for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
      Shifted<float> dx(x, off);
      const std::string t = " n=" + std::to_string(n) + " off=" + std::to_string(off);
      const double s = sum_cuda(n, dx.get()), a = abs_sum_cuda(n, dx.get());
      // Double accumulation, another association than the oracle: far below float rounding.
      EXPECT_NEAR(s, sum_ref(n, x.data()), 1e-6) << "sum" << t;
      EXPECT_NEAR(s, sum_cpu(n, x.data()), 1e-6) << "sum vs cpu" << t;
      EXPECT_NEAR(a, sum_ref(n, ax.data()), 1e-6) << "abs_sum" << t;
      EXPECT_NEAR(a, abs_sum_cpu(n, x.data()), 1e-6) << "abs_sum vs cpu" << t;
      // Deterministic: the same bits again, and on another stream.
      EXPECT_EQ(s, sum_cuda(n, dx.get())) << t;
      EXPECT_EQ(a, abs_sum_cuda(n, dx.get(), CudaExec{stream})) << t;
    }
  CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(ReduceCuda, SignAxpyMatchesCpuExactly) {
  LETHE_REQUIRE_GPU();
  const float alpha = 0.3f;
  for (int64_t n : sizes())
    for (int64_t off : {0, 1}) {
      auto x = with_zeros(n, 12);
      if (n > 1) x[1] = std::numeric_limits<float>::quiet_NaN();  // sign(NaN) = 0
      auto expect = random_vector<float>(n, 13);
      Shifted<float> dx(x, off), dy(expect, 1 - off);
      sign_axpy_cpu(n, alpha, x.data(), expect.data());
      sign_axpy_cuda(n, alpha, dx.get(), dy.get());
      EXPECT_TRUE(all_close(expect, dy.to_host(), kExact,
                            "sign_axpy n=" + std::to_string(n) + " off=" + std::to_string(off)));
    }
}

}  // namespace
}  // namespace lethe::kernels
