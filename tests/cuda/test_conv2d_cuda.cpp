// conv2d on CUDA (kernels/cuda/conv2d.cu, conv2d_tc.cu) against the CPU oracles
// (kernels/cpu/conv2d_ref.cpp) run in double on the same float inputs: every version (v1
// direct, v2, v4 and v5 fp32 implicit GEMM with kFp32Tol, v3 TF32 tensor cores with kTf32Tol) x
// forward (with and without bias), backward-data, backward-weight (with and without gb).
//   - awkward shapes: batch 1 and 0, odd 7x5 images, C = 3, K = 1, stride 2 on odd inputs,
//     stride 3, pad 0 and 2, 5x5, 2x3 and 1x1 filters, a one-row image, sizes that are no
//     multiple of any tile (64 x 128, depth 8 / 16), several row tiles, backward-weight split
//     over uneven image counts;
//   - every ResNet-18 and VGG-16 (CIFAR) conv shape at batch 32.
// The double oracle is the slow part. Where a product costs more than kFullRefFlops it runs
// on an exact sub-problem instead: forward on 3 images x 6 output channels (y[n,k] needs only
// x[n] and w[k]), backward-data on 3 images x 6 input channels, backward-weight on 6 x 6
// channel pairs over the whole batch. The chosen indices include both ends and the 64-row
// tile edge (63, 64); every other element is still checked to be finite, and outputs start
// as NaN (DeviceBuffer::poison), so an element no thread wrote cannot pass.
// Inputs: x in [-1, 1); weights and gradients are scaled so every output has a standard
// deviation near 1 whatever its reduction length. Then fp32 rounding (~1e-6) sits far
// inside kFp32Tol while TF32 rounding (~4e-4 of the output's scale) breaks it for outputs
// near zero: the v1/v2 comparisons would catch tensor cores used in FP32 mode.
// Also: the default version of each math mode, refused versions and workspaces, a
// non-default stream, and bit-identical backward-weight across calls.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/cuda_exec.h"
#include "testing/compare.h"
#include "testing/cuda_harness.h"

namespace {

using lethe::kernels::Conv2dShape;
using lethe::kernels::CudaExec;
using lethe::kernels::CudaMath;
using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;
using Idx = std::vector<int64_t>;
namespace lk = lethe::kernels;

struct ConvCase {
  const char* name;
  Conv2dShape s;
};

Conv2dShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                 int64_t stride, int64_t pad) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = S, s.stride = stride, s.pad = pad;
  return s;
}

std::string describe(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  return std::string(c.name) + " (N" + std::to_string(s.N) + " C" + std::to_string(s.C) + " H" +
         std::to_string(s.H) + " W" + std::to_string(s.W) + " K" + std::to_string(s.K) + " R" +
         std::to_string(s.R) + " S" + std::to_string(s.S) + " stride" + std::to_string(s.stride) +
         " pad" + std::to_string(s.pad) + ")";
}

// Named output when gtest prints a parameter (instead of a byte dump).
void PrintTo(const ConvCase& c, std::ostream* os) { *os << describe(c); }

// LETHE_TEST_SMALL=1 (the compute-sanitizer pass) keeps only these.
bool is_small(const Conv2dShape& s) { return s.H <= 8 && s.W <= 8 && s.C <= 16 && s.K <= 16; }

struct Version {
  int v;
  CudaMath math;
  Tolerance tol;
};
constexpr Version kVersions[] = {{1, CudaMath::FP32, lethe::testing::kFp32Tol},
                                 {2, CudaMath::FP32, lethe::testing::kFp32Tol},
                                 {3, CudaMath::TF32, lethe::testing::kTf32Tol},
                                 {4, CudaMath::FP32, lethe::testing::kFp32Tol},
                                 {5, CudaMath::FP32, lethe::testing::kFp32Tol}};

CudaExec exec_of(int version, CudaMath math) {
  CudaExec e;
  e.version = version;
  e.math = math;
  return e;
}
std::string label(const Version& v) {
  return " v" + std::to_string(v.v) + (v.math == CudaMath::TF32 ? " (tf32)" : " (fp32)");
}

// Above this many flops per product the oracle runs on slices (see the header comment).
constexpr double kFullRefFlops = 4e7;

Idx all(int64_t n) {
  Idx v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}
// `want` evenly spread indices of [0, n) including both ends, plus the tile edge 63 / 64.
Idx pick(int64_t n, int64_t want) {
  Idx v;
  if (n <= 0) return v;
  for (int64_t i = 0; i < want; ++i) v.push_back(i * (n - 1) / (want - 1));
  for (int64_t e : {63, 64})
    if (e < n) v.push_back(e);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Elements [a][b][0..plane) of a row-major (any) x B x plane array for a in ia, b in ib, as
// double: slices of x, w, gy for the oracle and of the GPU outputs for the comparison.
template <typename T>
std::vector<double> select(const std::vector<T>& src, int64_t B, int64_t plane, const Idx& ia,
                           const Idx& ib) {
  std::vector<double> out;
  out.reserve(ia.size() * ib.size() * static_cast<size_t>(plane));
  for (int64_t a : ia)
    for (int64_t b : ib)
      for (int64_t i = 0; i < plane; ++i)
        out.push_back(static_cast<double>(src[static_cast<size_t>((a * B + b) * plane + i)]));
  return out;
}

int64_t count_nonfinite(const std::vector<float>& v) {
  return std::count_if(v.begin(), v.end(), [](float f) { return !std::isfinite(f); });
}

// Uniform in [-scale, scale); the scales below give outputs of standard deviation ~1.
std::vector<float> uniform(int64_t n, uint32_t seed, double scale) {
  return random_vector<float>(n, seed, -scale, scale);
}
// var(y) = CRS * var(x) * var(w) = CRS * 1/3 * 3/CRS = 1
std::vector<float> weights(const Conv2dShape& s) {
  return uniform(s.K * s.C * s.R * s.S, 12, 3.0 / std::sqrt(double(s.C * s.R * s.S)));
}
std::vector<float> input(const Conv2dShape& s) { return uniform(s.N * s.C * s.H * s.W, 11, 1.0); }

void check_forward(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W, RS = s.R * s.S;
  const auto x = input(s), w = weights(s), b = uniform(s.K, 13, 1.0);
  const bool full = s.flops() <= kFullRefFlops;
  const Idx ns = full ? all(s.N) : pick(s.N, 3), ks = full ? all(s.K) : pick(s.K, 6);
  Conv2dShape sub = s;
  sub.N = static_cast<int64_t>(ns.size()), sub.K = static_cast<int64_t>(ks.size());
  const auto xs = select(x, s.C, HW, ns, all(s.C)), ws = select(w, s.C, RS, ks, all(s.C));
  std::vector<double> ref(static_cast<size_t>(sub.N * sub.K * PQ)), ref_bias(ref.size());
  lk::conv2d_forward_ref<double>(sub, xs.data(), ws.data(), nullptr, ref.data());
  for (size_t i = 0; i < ref.size(); ++i)
    ref_bias[i] = ref[i] + b[static_cast<size_t>(ks[(i / PQ) % ks.size()])];

  DeviceBuffer<float> dx(x), dw(w), db(b), dy(s.N * s.K * PQ);
  for (const Version& v : kVersions)
    for (bool with_bias : {true, false}) {
      const std::string what = describe(c) + (with_bias ? " forward+bias" : " forward") + label(v);
      dy.poison();
      lk::conv2d_forward_cuda(s, dx.get(), dw.get(), with_bias ? db.get() : nullptr, dy.get(),
                              exec_of(v.v, v.math));
      const auto y = dy.to_host();
      EXPECT_EQ(count_nonfinite(y), 0) << what;
      EXPECT_TRUE(all_close(with_bias ? ref_bias : ref, select(y, s.K, PQ, ns, ks), v.tol, what));
    }
}

void check_backward_data(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W, RS = s.R * s.S;
  // About K*R*S/stride^2 taps reach each gx element: var = K/(C stride^2) * g^2 with gy ~ U(-g, g).
  const auto w = weights(s);
  const auto gy =
      uniform(s.N * s.K * PQ, 14, double(s.stride) * std::sqrt(double(s.C) / double(s.K)));
  const bool full = s.flops() <= kFullRefFlops;
  const Idx ns = full ? all(s.N) : pick(s.N, 3), cs = full ? all(s.C) : pick(s.C, 6);
  Conv2dShape sub = s;
  sub.N = static_cast<int64_t>(ns.size()), sub.C = static_cast<int64_t>(cs.size());
  const auto gys = select(gy, s.K, PQ, ns, all(s.K)), ws = select(w, s.C, RS, all(s.K), cs);
  std::vector<double> ref(static_cast<size_t>(sub.N * sub.C * HW));
  lk::conv2d_backward_data_ref<double>(sub, gys.data(), ws.data(), ref.data());

  DeviceBuffer<float> dgy(gy), dw(w), dgx(s.N * s.C * HW);
  for (const Version& v : kVersions) {
    const std::string what = describe(c) + " backward-data" + label(v);
    dgx.poison();
    lk::conv2d_backward_data_cuda(s, dgy.get(), dw.get(), dgx.get(), exec_of(v.v, v.math));
    const auto gx = dgx.to_host();
    EXPECT_EQ(count_nonfinite(gx), 0) << what;
    EXPECT_TRUE(all_close(ref, select(gx, s.C, HW, ns, cs), v.tol, what));
  }
}

void check_backward_weight(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W, RS = s.R * s.S;
  // var(gw) = N*P*Q * var(gy) * var(x) = N*P*Q * g^2/9 with gy ~ U(-g, g); var(gb) = 3.
  const auto x = input(s);
  const auto gy =
      uniform(s.N * s.K * PQ, 15, 3.0 / std::sqrt(double(std::max<int64_t>(1, s.N * PQ))));
  const bool full = s.flops() <= kFullRefFlops;
  const Idx ks = full ? all(s.K) : pick(s.K, 6), cs = full ? all(s.C) : pick(s.C, 6);
  Conv2dShape sub = s;
  sub.K = static_cast<int64_t>(ks.size()), sub.C = static_cast<int64_t>(cs.size());
  const auto xs = select(x, s.C, HW, all(s.N), cs), gys = select(gy, s.K, PQ, all(s.N), ks);
  std::vector<double> gw_ref(static_cast<size_t>(sub.K * sub.C * RS)), gb_ref(ks.size());
  lk::conv2d_backward_weight_ref<double>(sub, xs.data(), gys.data(), gw_ref.data(), gb_ref.data());

  DeviceBuffer<float> dx(x), dgy(gy), dgw(s.K * s.C * RS), dgb(s.K);
  for (const Version& v : kVersions) {
    const CudaExec e = exec_of(v.v, v.math);
    const size_t bytes = lk::conv2d_cuda_workspace_bytes(s, e);
    DeviceBuffer<float> ws(static_cast<int64_t>(bytes / sizeof(float)));
    for (bool with_gb : {true, false}) {
      const std::string what =
          describe(c) + (with_gb ? " backward-weight+bias" : " backward-weight") + label(v);
      dgw.poison(), dgb.poison(), ws.poison();  // a slab element never written would show
      lk::conv2d_backward_weight_cuda(s, dx.get(), dgy.get(), dgw.get(),
                                      with_gb ? dgb.get() : nullptr, ws.get(), bytes, e);
      const auto gw = dgw.to_host();
      EXPECT_EQ(count_nonfinite(gw), 0) << what;
      EXPECT_TRUE(all_close(gw_ref, select(gw, s.C, RS, ks, cs), v.tol, what));
      if (with_gb) {
        EXPECT_TRUE(
            all_close(gb_ref, select(dgb.to_host(), s.K, 1, Idx{0}, ks), v.tol, what + " gb"));
      }
    }
  }
}

class Conv2dCudaShapes : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dCudaShapes, ForwardMatchesReference) {
  LETHE_REQUIRE_GPU();
  if (lethe::testing::small_shapes_only() && !is_small(GetParam().s)) GTEST_SKIP() << "large";
  check_forward(GetParam());
}
TEST_P(Conv2dCudaShapes, BackwardDataMatchesReference) {
  LETHE_REQUIRE_GPU();
  if (lethe::testing::small_shapes_only() && !is_small(GetParam().s)) GTEST_SKIP() << "large";
  check_backward_data(GetParam());
}
TEST_P(Conv2dCudaShapes, BackwardWeightMatchesReference) {
  LETHE_REQUIRE_GPU();
  if (lethe::testing::small_shapes_only() && !is_small(GetParam().s)) GTEST_SKIP() << "large";
  check_backward_weight(GetParam());
}

std::string case_name(const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name; }

// The block tile is 64 rows (channels; 128 for v4, v5) x 128 columns (positions or filter taps),
// the depth step 8 (v2, v4, v5) or 16 (v3); backward-weight splits the batch into parts of at
// least 512 reduction steps each, as many as fill the GPU's block slots in whole waves best
// (conv2d.cu, weight_splits).
INSTANTIATE_TEST_SUITE_P(
    Awkward, Conv2dCudaShapes,
    ::testing::Values(ConvCase{"batch1_odd7x5_pad1", make(1, 3, 7, 5, 5, 3, 3, 1, 1)},
                      ConvCase{"odd7x5_stride2_pad0", make(2, 3, 7, 5, 5, 3, 3, 2, 0)},
                      ConvCase{"stride2_odd_input_pad1", make(3, 4, 7, 7, 6, 3, 3, 2, 1)},
                      ConvCase{"one_output_channel", make(2, 5, 6, 6, 1, 3, 3, 1, 1)},
                      ConvCase{"pad2_wider_than_half_filter", make(2, 3, 4, 5, 4, 3, 3, 1, 2)},
                      ConvCase{"filter5x5_stride2_pad2", make(2, 3, 8, 7, 7, 5, 5, 2, 2)},
                      ConvCase{"filter5x5_stride3_pad2", make(2, 2, 8, 8, 3, 5, 5, 3, 2)},
                      ConvCase{"pointwise_1x1_stride2_odd", make(3, 5, 7, 7, 7, 1, 1, 2, 0)},
                      // backward-data's stride phase (1, *) has no input row at all
                      ConvCase{"one_row_stride2", make(2, 3, 1, 5, 4, 3, 3, 2, 1)},
                      ConvCase{"rect_filter_2x3_pad0", make(2, 3, 6, 7, 5, 2, 3, 1, 0)},
                      ConvCase{"vec4_planes_8x8", make(2, 16, 8, 8, 16, 3, 3, 1, 1)},
                      // backward-weight in 8 splits of 8 or 9 images
                      ConvCase{"split_k_uneven_batch67", make(67, 4, 8, 8, 6, 3, 3, 1, 1)},
                      ConvCase{"empty_batch", make(0, 3, 5, 5, 4, 3, 3, 1, 1)},
                      // Larger than LETHE_TEST_SMALL allows:
                      ConvCase{"no_tile_multiple_13x11", make(3, 17, 13, 11, 70, 3, 3, 1, 1)},
                      ConvCase{"three_row_tiles_stride2", make(2, 9, 9, 9, 130, 3, 3, 2, 1)},
                      ConvCase{"three_row_tiles_backward_data", make(2, 130, 6, 6, 20, 3, 3, 1, 1)},
                      // 2 x 2 tiles, each in 16 splits of 2 or 3 images
                      ConvCase{"split_k_four_tiles_batch33", make(33, 20, 16, 16, 70, 3, 3, 1, 1)}),
    case_name);

// Every distinct ResNet-18 (CIFAR) conv shape at batch 32.
INSTANTIATE_TEST_SUITE_P(
    ResNet18, Conv2dCudaShapes,
    ::testing::Values(ConvCase{"stem_3to64_h32", make(32, 3, 32, 32, 64, 3, 3, 1, 1)},
                      ConvCase{"layer1_64to64_h32", make(32, 64, 32, 32, 64, 3, 3, 1, 1)},
                      ConvCase{"layer2_64to128_s2_h32", make(32, 64, 32, 32, 128, 3, 3, 2, 1)},
                      ConvCase{"layer2_128to128_h16", make(32, 128, 16, 16, 128, 3, 3, 1, 1)},
                      ConvCase{"layer2_shortcut_64to128", make(32, 64, 32, 32, 128, 1, 1, 2, 0)},
                      ConvCase{"layer3_128to256_s2_h16", make(32, 128, 16, 16, 256, 3, 3, 2, 1)},
                      ConvCase{"layer3_256to256_h8", make(32, 256, 8, 8, 256, 3, 3, 1, 1)},
                      ConvCase{"layer3_shortcut_128to256", make(32, 128, 16, 16, 256, 1, 1, 2, 0)},
                      ConvCase{"layer4_256to512_s2_h8", make(32, 256, 8, 8, 512, 3, 3, 2, 1)},
                      ConvCase{"layer4_512to512_h4", make(32, 512, 4, 4, 512, 3, 3, 1, 1)},
                      ConvCase{"layer4_shortcut_256to512", make(32, 256, 8, 8, 512, 1, 1, 2, 0)}),
    case_name);

// The VGG-16 (CIFAR) conv shapes ResNet-18 does not already have, at batch 32.
INSTANTIATE_TEST_SUITE_P(
    VGG16, Conv2dCudaShapes,
    ::testing::Values(ConvCase{"vgg_64to128_h16", make(32, 64, 16, 16, 128, 3, 3, 1, 1)},
                      ConvCase{"vgg_128to256_h8", make(32, 128, 8, 8, 256, 3, 3, 1, 1)},
                      ConvCase{"vgg_256to512_h4", make(32, 256, 4, 4, 512, 3, 3, 1, 1)},
                      ConvCase{"vgg_512to512_h2", make(32, 512, 2, 2, 512, 3, 3, 1, 1)}),
    case_name);

// ---- dispatch, errors, streams, determinism -------------------------------------------------

// Runs all three products of shape s under e; returns y, gx, gw, gb concatenated.
std::vector<float> run_all(const Conv2dShape& s, const CudaExec& e) {
  const int64_t PQ = s.P() * s.Q();
  DeviceBuffer<float> dx(input(s)), dw(weights(s)), db(uniform(s.K, 13, 1.0));
  DeviceBuffer<float> dgy(uniform(s.N * s.K * PQ, 14, 0.1));
  DeviceBuffer<float> dy(s.N * s.K * PQ), dgx(s.N * s.C * s.H * s.W), dgw(s.K * s.C * s.R * s.S);
  DeviceBuffer<float> dgb(s.K);
  const size_t bytes = lk::conv2d_cuda_workspace_bytes(s, e);
  DeviceBuffer<float> ws(static_cast<int64_t>(bytes / sizeof(float)));
  dy.poison(), dgx.poison(), dgw.poison(), dgb.poison(), ws.poison();
  // Copies and memsets went to the legacy default stream, which a non-blocking e.stream does
  // not wait for.
  CUDA_CHECK(cudaDeviceSynchronize());
  lk::conv2d_forward_cuda(s, dx.get(), dw.get(), db.get(), dy.get(), e);
  lk::conv2d_backward_data_cuda(s, dgy.get(), dw.get(), dgx.get(), e);
  lk::conv2d_backward_weight_cuda(s, dx.get(), dgy.get(), dgw.get(), dgb.get(), ws.get(), bytes, e);
  std::vector<float> out;
  for (const DeviceBuffer<float>* b : {&dy, &dgx, &dgw, &dgb}) {
    const auto h = b->to_host();
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Conv2dCuda, DefaultVersionFollowsTheMathMode) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(3, 5, 7, 6, 9, 3, 3, 1, 1);
  EXPECT_TRUE(bit_identical(run_all(s, exec_of(0, CudaMath::FP32)),
                            run_all(s, exec_of(2, CudaMath::FP32))));
  EXPECT_TRUE(bit_identical(run_all(s, exec_of(0, CudaMath::TF32)),
                            run_all(s, exec_of(3, CudaMath::TF32))));
  // TF32 math permits, not requires, tensor cores: the fp32 versions still run under it.
  EXPECT_TRUE(bit_identical(run_all(s, exec_of(2, CudaMath::TF32)),
                            run_all(s, exec_of(2, CudaMath::FP32))));
}

// Expects `f` to throw a lethe::Error whose message names `op`.
template <typename F>
void expect_error(F f, const std::string& op) {
  try {
    f();
    ADD_FAILURE() << op << ": no error";
  } catch (const lethe::Error& err) {
    EXPECT_NE(std::string(err.what()).find(op), std::string::npos) << err.what();
  }
}

TEST(Conv2dCuda, RefusesBadVersionsAndShortWorkspaces) {
  LETHE_REQUIRE_GPU();
  EXPECT_EQ(lk::conv2d_cuda_versions(), 5);
  for (int v = 1; v <= lk::conv2d_cuda_versions(); ++v)
    EXPECT_GT(std::strlen(lk::conv2d_cuda_version_name(v)), 0u);
  expect_error([] { lk::conv2d_cuda_version_name(0); }, "conv2d_cuda_version_name");

  const Conv2dShape s = make(67, 4, 8, 8, 6, 3, 3, 1, 1);
  DeviceBuffer<float> dx(input(s)), dw(weights(s)), dgy(uniform(s.N * s.K * 64, 14, 0.1));
  DeviceBuffer<float> dy(s.N * s.K * 64), dgw(s.K * s.C * 9);
  for (const CudaExec& e : {exec_of(lk::conv2d_cuda_versions() + 1, CudaMath::FP32), exec_of(-1, CudaMath::TF32),
                            exec_of(3, CudaMath::FP32)})  // v3 is TF32: refused in FP32 mode
    expect_error([&] { lk::conv2d_forward_cuda(s, dx.get(), dw.get(), nullptr, dy.get(), e); },
                 "conv2d_forward_cuda");

  EXPECT_EQ(lk::conv2d_cuda_workspace_bytes(s, exec_of(1, CudaMath::FP32)), 0u);
  const CudaExec e2 = exec_of(2, CudaMath::FP32);
  const size_t bytes = lk::conv2d_cuda_workspace_bytes(s, e2);
  ASSERT_GT(bytes, 0u);  // 8 splits: this shape exercises the split-K path
  DeviceBuffer<float> ws(static_cast<int64_t>(bytes / sizeof(float)));
  expect_error(
      [&] {
        lk::conv2d_backward_weight_cuda(s, dx.get(), dgy.get(), dgw.get(), nullptr, ws.get(),
                                        bytes - sizeof(float), e2);
      },
      "conv2d_backward_weight_cuda");
  expect_error(
      [&] {
        lk::conv2d_backward_weight_cuda(s, dx.get(), dgy.get(), dgw.get(), nullptr, nullptr, bytes,
                                        e2);
      },
      "conv2d_backward_weight_cuda");
}

TEST(Conv2dCuda, RunsOnTheGivenStream) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(67, 4, 8, 8, 6, 3, 3, 1, 1);
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (const Version& v : kVersions) {
    CudaExec e = exec_of(v.v, v.math);
    const auto on_default = run_all(s, e);
    e.stream = stream;  // to_host() synchronises the whole device, this stream included
    EXPECT_TRUE(bit_identical(on_default, run_all(s, e))) << label(v);
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
}

// No atomics and split counts fixed by the shape: repeated calls agree to the bit.
TEST(Conv2dCuda, BackwardWeightIsBitIdenticalAcrossCalls) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = lethe::testing::small_shapes_only() ? make(67, 4, 8, 8, 6, 3, 3, 1, 1)
                                                            : make(32, 64, 16, 16, 64, 3, 3, 1, 1);
  const int64_t PQ = s.P() * s.Q();
  DeviceBuffer<float> dx(input(s)), dgy(uniform(s.N * s.K * PQ, 15, 0.1));
  DeviceBuffer<float> dgw(s.K * s.C * s.R * s.S), dgb(s.K);
  for (const Version& v : kVersions) {
    const CudaExec e = exec_of(v.v, v.math);
    const size_t bytes = lk::conv2d_cuda_workspace_bytes(s, e);
    DeviceBuffer<float> ws(static_cast<int64_t>(bytes / sizeof(float)));
    std::vector<float> first;
    for (int call = 0; call < 2; ++call) {
      dgw.poison(), dgb.poison(), ws.poison();
      lk::conv2d_backward_weight_cuda(s, dx.get(), dgy.get(), dgw.get(), dgb.get(), ws.get(), bytes,
                                      e);
      auto got = dgw.to_host();
      const auto gb = dgb.to_host();
      got.insert(got.end(), gb.begin(), gb.end());
      EXPECT_EQ(count_nonfinite(got), 0) << label(v);
      if (call == 0) {
        first = got;
      } else {
        EXPECT_TRUE(bit_identical(first, got)) << label(v);
      }
    }
  }
}

}  // namespace
