// Sparse conv2d on CUDA (kernels/sparse/conv2d_sparse_cuda.cu, every version) against the dense
// plain-loop oracles conv2d_*_ref, run in double on w * mask: forward, backward-data,
// backward-weight (compared at the kept positions, and exactly 0 at the pruned ones) and the
// bias gradient. Densities 50/10/5/1/0% (0: a fully pruned layer, y = bias, gx = 0, gw = 0),
// empty rows and empty input channels, odd sizes, batch 1, strides 1-3, 1x1 / 5x5 / 3x2
// filters, a batch of 260 small images (v1 runs two chunks, the second a short tail; v2 sums
// each weight gradient with several warps), the 3x3 shapes of ResNet-18's layer3 and layer4
// at batch 32; that the kept values are re-gathered from w by every call (w changed after the
// upload, pruned positions included); bit-identical repeats with another workspace on another
// stream; N = 0; bad arguments. LETHE_TEST_SMALL=1 keeps H, W <= 8 and channels <= 16.
//
// Inputs: x and w uniform in +-1, gy uniform in +-(N*P*Q)^(-1/4), so the weight gradient,
// a sum over N*P*Q positions, stays of order 1 for every shape and the tolerance of
// cuda_harness.h (kFp32Tol) means the same everywhere.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/sparse/conv2d_sparse.h"
#include "kernels/sparse/conv2d_sparse_cuda.h"
#include "testing/cuda_harness.h"

namespace {

using lethe::kernels::Conv2dShape;
using lethe::kernels::CudaExec;
using lethe::kernels::SparsePattern;
using lethe::kernels::SparsePatternCuda;
using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;

Conv2dShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                 int64_t stride, int64_t pad) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = S, s.stride = stride, s.pad = pad;
  return s;
}

std::string describe(const Conv2dShape& s) {
  std::ostringstream os;
  os << "N" << s.N << "_C" << s.C << "_H" << s.H << "_W" << s.W << "_K" << s.K << "_R" << s.R
     << "_S" << s.S << "_stride" << s.stride << "_pad" << s.pad;
  return os.str();
}

/// A seeded 0/1 mask with exactly round(density * n) ones.
std::vector<uint8_t> random_mask(int64_t n, double density, uint32_t seed) {
  std::vector<uint8_t> m(static_cast<size_t>(n), 0);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::shuffle(idx.begin(), idx.end(), std::mt19937(seed));
  const int64_t ones = std::llround(density * static_cast<double>(n));
  for (int64_t i = 0; i < ones; ++i) m[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  return m;
}

struct Problem {
  Conv2dShape s;
  std::vector<float> x, w, gy, bias;
  std::vector<uint8_t> mask;
  int64_t nx() const { return s.N * s.C * s.H * s.W; }
  int64_t ny() const { return s.N * s.K * s.P() * s.Q(); }
  int64_t nw() const { return s.K * s.C * s.R * s.S; }
};

Problem make_problem(const Conv2dShape& s, std::vector<uint8_t> mask, uint32_t seed) {
  Problem pr;
  pr.s = s;
  pr.x = random_vector<float>(pr.nx(), seed);
  pr.w = random_vector<float>(pr.nw(), seed + 1);
  const double g = std::pow(static_cast<double>(std::max<int64_t>(s.N * s.P() * s.Q(), 1)), -0.25);
  pr.gy = random_vector<float>(pr.ny(), seed + 2, -g, g);
  pr.bias = random_vector<float>(s.K, seed + 3);
  pr.mask = std::move(mask);
  return pr;
}

/// The dense oracles in double on w * mask (gw then zeroed at the pruned positions). The three
/// run on three threads: at the batch-32 ResNet shapes each takes seconds on one core.
struct Reference {
  std::vector<double> y, gx, gw, gb;
};

Reference reference(const Problem& pr, const std::vector<float>& w) {
  const Conv2dShape& s = pr.s;
  const std::vector<double> x(pr.x.begin(), pr.x.end()), gy(pr.gy.begin(), pr.gy.end()),
      bias(pr.bias.begin(), pr.bias.end());
  std::vector<double> wm(w.size());
  for (size_t i = 0; i < w.size(); ++i) wm[i] = pr.mask[i] ? static_cast<double>(w[i]) : 0.0;
  Reference ref;
  ref.y.resize(static_cast<size_t>(pr.ny()));
  ref.gx.resize(static_cast<size_t>(pr.nx()));
  ref.gw.resize(w.size());
  ref.gb.resize(static_cast<size_t>(s.K));
  std::thread fwd([&] {
    lethe::kernels::conv2d_forward_ref<double>(s, x.data(), wm.data(), bias.data(), ref.y.data());
  });
  std::thread bwd_data([&] {
    lethe::kernels::conv2d_backward_data_ref<double>(s, gy.data(), wm.data(), ref.gx.data());
  });
  lethe::kernels::conv2d_backward_weight_ref<double>(s, x.data(), gy.data(), ref.gw.data(),
                                                     ref.gb.data());
  fwd.join();
  bwd_data.join();
  for (size_t i = 0; i < ref.gw.size(); ++i)
    if (!pr.mask[i]) ref.gw[i] = 0.0;
  return ref;
}

/// Device copies of a problem's inputs and poisoned outputs.
struct DeviceProblem {
  DeviceBuffer<float> x, w, gy, bias, y, gx, gw, gb;
  explicit DeviceProblem(const Problem& pr)
      : x(pr.x), w(pr.w), gy(pr.gy), bias(pr.bias), y(pr.ny()), gx(pr.nx()), gw(pr.nw()),
        gb(pr.s.K) {
    poison();
  }
  void poison() {
    y.poison();
    gx.poison();
    gw.poison();
    gb.poison();
  }
};

/// A poisoned workspace of the size version e.version asks for.
std::unique_ptr<DeviceBuffer<uint8_t>> workspace_for(const Problem& pr,
                                                     const SparsePatternCuda& pat,
                                                     const CudaExec& e) {
  auto ws = std::make_unique<DeviceBuffer<uint8_t>>(
      static_cast<int64_t>(lethe::kernels::sparse_conv2d_cuda_workspace_bytes(pr.s, pat, e)));
  ws->poison();
  return ws;
}

/// The three products of version e.version (in a fresh workspace unless one is given).
void run_all(const Problem& pr, SparsePatternCuda& pat, DeviceProblem& d, const CudaExec& e,
             DeviceBuffer<uint8_t>* given = nullptr) {
  const size_t bytes = lethe::kernels::sparse_conv2d_cuda_workspace_bytes(pr.s, pat, e);
  const auto own = given ? nullptr : workspace_for(pr, pat, e);
  DeviceBuffer<uint8_t>& ws = given ? *given : *own;
  lethe::kernels::sparse_conv2d_forward_cuda(pr.s, pat, d.x.get(), d.w.get(), d.bias.get(),
                                             d.y.get(), ws.get(), bytes, e);
  lethe::kernels::sparse_conv2d_backward_data_cuda(pr.s, pat, d.gy.get(), d.w.get(), d.gx.get(),
                                                   ws.get(), bytes, e);
  lethe::kernels::sparse_conv2d_backward_weight_cuda(pr.s, pat, d.x.get(), d.gy.get(),
                                                     d.gw.get(), d.gb.get(), ws.get(), bytes, e);
  CUDA_CHECK(cudaDeviceSynchronize());  // a fault is reported here, with this version's name
}

/// Every version (0 = the default included) on one problem, against one reference.
void check_versions(const Problem& pr, const Reference& ref, const std::string& what) {
  const SparsePattern host = lethe::kernels::make_sparse_pattern(pr.s.K, pr.nw() / pr.s.K,
                                                                 pr.mask.data());
  const auto pat = SparsePatternCuda::upload(host, 0);
  for (int v = 0; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v) {
    const char* vname = v == 0 ? "default" : lethe::kernels::sparse_conv2d_cuda_version_name(v);
    const std::string name =
        what + " " + describe(pr.s) + " v" + std::to_string(v) + " (" + vname + ")";
    CudaExec e;
    e.version = v;
    DeviceProblem d(pr);
    run_all(pr, *pat, d, e);
    EXPECT_TRUE(all_close(ref.y, d.y.to_host(), kFp32Tol, name + " forward"));
    EXPECT_TRUE(all_close(ref.gx, d.gx.to_host(), kFp32Tol, name + " backward-data"));
    const std::vector<float> gw = d.gw.to_host();
    EXPECT_TRUE(all_close(ref.gw, gw, kFp32Tol, name + " backward-weight"));
    EXPECT_TRUE(all_close(ref.gb, d.gb.to_host(), kFp32Tol, name + " bias gradient"));
    for (size_t i = 0; i < gw.size(); ++i)
      if (!pr.mask[i]) {
        ASSERT_EQ(gw[i], 0.f) << name << ": gradient at pruned weight " << i;
      }
  }
}

void check_random(const Conv2dShape& s, double density, uint32_t seed, const std::string& what) {
  const Problem pr = make_problem(s, random_mask(s.K * s.C * s.R * s.S, density, seed + 9), seed);
  check_versions(pr, reference(pr, pr.w), what + " density " + std::to_string(density));
}

struct Case {
  const char* name;
  Conv2dShape s;
  bool small;  // H, W <= 8 and channels <= 16: kept under LETHE_TEST_SMALL
};

const Case kCases[] = {
    {"odd_3x3_pad1_batch1", make(1, 3, 7, 5, 5, 3, 3, 1, 1), true},
    {"odd_3x3_stride2", make(2, 5, 7, 7, 6, 3, 3, 2, 1), true},
    {"stride3_pad2", make(2, 3, 8, 7, 4, 3, 3, 3, 2), true},
    {"pointwise", make(3, 8, 5, 5, 7, 1, 1, 1, 0), true},
    {"pointwise_stride2_shortcut", make(2, 6, 8, 8, 10, 1, 1, 2, 0), true},
    {"5x5_pad2", make(2, 3, 6, 6, 4, 5, 5, 1, 2), true},
    {"rect_filter_pad0", make(2, 4, 6, 7, 3, 3, 2, 1, 0), true},
    {"many_small_images", make(9, 4, 3, 3, 5, 3, 3, 1, 1), true},
    {"sixteen_channels", make(2, 16, 8, 8, 16, 3, 3, 1, 1), true},
    // 260 images of 64 positions: v1 chunks of 256 images then a tail of 4; v2 splits each
    // weight-gradient sum over 4 warps.
    {"chunks_and_tail", make(260, 2, 8, 8, 3, 3, 3, 1, 1), true},
    {"band_of_one_image", make(1, 4, 17, 13, 3, 3, 3, 1, 1), false},
    {"stride2_32x32", make(8, 4, 32, 32, 8, 3, 3, 2, 1), false},
    {"7x7_stride2_pad3", make(2, 3, 20, 20, 8, 7, 7, 2, 3), false},
};

TEST(SparseConv2dCuda, MatchesMaskedDenseAtEveryDensity) {
  LETHE_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const Case& c : kCases) {
    if (!c.small && small_shapes_only()) continue;
    for (double d : {0.5, 0.1, 0.05, 0.01, 0.0}) {
      check_random(c.s, d, seed, c.name);
      seed += 11;
    }
  }
}

TEST(SparseConv2dCuda, ResNet18Layer3Layer4Shapes) {
  LETHE_REQUIRE_GPU();
  if (small_shapes_only()) GTEST_SKIP() << "LETHE_TEST_SMALL: full-size shapes skipped";
  // The 3x3 convs of layer3 and layer4 (width 1.0, CIFAR) at batch 32, 95% sparse.
  const Case shapes[] = {
      {"layer3_down", make(32, 128, 16, 16, 256, 3, 3, 2, 1), false},
      {"layer3", make(32, 256, 8, 8, 256, 3, 3, 1, 1), false},
      {"layer4_down", make(32, 256, 8, 8, 512, 3, 3, 2, 1), false},
      {"layer4", make(32, 512, 4, 4, 512, 3, 3, 1, 1), false},
  };
  uint32_t seed = 900;
  for (const Case& c : shapes) check_random(c.s, 0.05, seed++, c.name);
}

TEST(SparseConv2dCuda, FullyPrunedLayerGivesBiasAndZeroGradients) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(3, 4, 6, 5, 5, 3, 3, 1, 1);
  const Problem pr = make_problem(s, std::vector<uint8_t>(static_cast<size_t>(5 * 36), 0), 7);
  const auto pat = SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, 36, pr.mask.data()), 0);
  const int64_t PQ = s.P() * s.Q();
  for (int v = 1; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v) {
    CudaExec e;
    e.version = v;
    DeviceProblem d(pr);
    run_all(pr, *pat, d, e);
    const std::vector<float> y = d.y.to_host(), gx = d.gx.to_host(), gw = d.gw.to_host();
    for (int64_t i = 0; i < pr.ny(); ++i)
      ASSERT_EQ(y[static_cast<size_t>(i)], pr.bias[static_cast<size_t>((i / PQ) % s.K)])
          << "v" << v << " forward at " << i;
    for (float g : gx) ASSERT_EQ(g, 0.f) << "v" << v << " backward-data";
    for (float g : gw) ASSERT_EQ(g, 0.f) << "v" << v << " backward-weight";
  }
}

TEST(SparseConv2dCuda, EmptyRowsAndEmptyInputChannels) {
  LETHE_REQUIRE_GPU();
  // Every third output channel has no kept weight, input channel 1 none at all; 30% elsewhere.
  const Conv2dShape s = make(3, 4, 6, 6, 7, 3, 3, 1, 1);
  std::vector<uint8_t> mask = random_mask(7 * 36, 0.3, 31);
  for (int64_t k = 0; k < 7; ++k)
    for (int64_t j = 0; j < 36; ++j)
      if (k % 3 == 0 || j / 9 == 1) mask[static_cast<size_t>(k * 36 + j)] = 0;
  const Problem pr = make_problem(s, mask, 33);
  check_versions(pr, reference(pr, pr.w), "empty rows and channels");
}

TEST(SparseConv2dCuda, ValuesAreRegatheredFromWeightEveryCall) {
  LETHE_REQUIRE_GPU();
  // Upload once, run, then overwrite w on the device (pruned positions too, with large
  // values): the next call must follow the new kept values and still ignore the pruned ones.
  const Conv2dShape s = make(2, 6, 7, 7, 8, 3, 3, 1, 1);
  const Problem pr = make_problem(s, random_mask(8 * 54, 0.2, 41), 40);
  const auto pat = SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, 54, pr.mask.data()), 0);
  std::vector<float> w2 = random_vector<float>(pr.nw(), 42);
  for (size_t i = 0; i < w2.size(); ++i)
    if (!pr.mask[i]) w2[i] = 1e6f;
  const Reference ref2 = reference(pr, w2);
  for (int v = 1; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v) {
    CudaExec e;
    e.version = v;
    DeviceProblem d(pr);
    run_all(pr, *pat, d, e);  // with the original w
    CUDA_CHECK(cudaMemcpy(d.w.get(), w2.data(), w2.size() * sizeof(float), cudaMemcpyHostToDevice));
    d.poison();
    run_all(pr, *pat, d, e);
    const std::string name = std::string("v") + std::to_string(v) + " after changing w";
    EXPECT_TRUE(all_close(ref2.y, d.y.to_host(), kFp32Tol, name + " forward"));
    EXPECT_TRUE(all_close(ref2.gx, d.gx.to_host(), kFp32Tol, name + " backward-data"));
  }
}

TEST(SparseConv2dCuda, RepeatsAreBitIdenticalAcrossWorkspacesAndStreams) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(260, 2, 8, 8, 3, 3, 3, 1, 1);  // v1: two chunks; v2: split sums
  const Problem pr = make_problem(s, random_mask(3 * 18, 0.5, 51), 50);
  const auto pat = SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, 18, pr.mask.data()), 0);
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreate(&stream));
  for (int v = 1; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v) {
    CudaExec e;
    e.version = v;
    DeviceProblem a(pr), b(pr);
    // Two workspaces alive at once, so at two addresses: the cached cuSPARSE plans must follow.
    const auto ws_a = workspace_for(pr, *pat, e), ws_b = workspace_for(pr, *pat, e);
    run_all(pr, *pat, a, e, ws_a.get());
    e.stream = reinterpret_cast<lethe::kernels::Stream>(stream);
    run_all(pr, *pat, b, e, ws_b.get());
    const std::string name = std::string("v") + std::to_string(v);
    EXPECT_TRUE(a.y.to_host() == b.y.to_host()) << name << " forward";
    EXPECT_TRUE(a.gx.to_host() == b.gx.to_host()) << name << " backward-data";
    EXPECT_TRUE(a.gw.to_host() == b.gw.to_host()) << name << " backward-weight";
    EXPECT_TRUE(a.gb.to_host() == b.gb.to_host()) << name << " bias gradient";
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(SparseConv2dCuda, EmptyBatchGivesZeroWeightGradient) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(0, 3, 5, 5, 4, 3, 3, 1, 1);
  const Problem pr = make_problem(s, random_mask(4 * 27, 0.5, 61), 60);
  const auto pat = SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, 27, pr.mask.data()), 0);
  for (int v = 1; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v) {
    CudaExec e;
    e.version = v;
    DeviceProblem d(pr);
    run_all(pr, *pat, d, e);
    for (float g : d.gw.to_host()) ASSERT_EQ(g, 0.f) << "v" << v;
    for (float g : d.gb.to_host()) ASSERT_EQ(g, 0.f) << "v" << v;
  }
}

TEST(SparseConv2dCuda, BadArgumentsAreRejected) {
  LETHE_REQUIRE_GPU();
  const Conv2dShape s = make(1, 3, 5, 5, 4, 3, 3, 1, 1);
  const Problem pr = make_problem(s, random_mask(4 * 27, 0.5, 71), 70);
  const auto pat = SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, 27, pr.mask.data()), 0);
  DeviceProblem d(pr);
  Conv2dShape other = s;
  other.K = 5;  // the pattern is 4 x 27
  EXPECT_THROW(lethe::kernels::sparse_conv2d_forward_cuda(other, *pat, d.x.get(), d.w.get(),
                                                          nullptr, d.y.get(), nullptr, 0),
               lethe::Error);
  CudaExec bad;
  bad.version = lethe::kernels::sparse_conv2d_cuda_versions() + 1;
  EXPECT_THROW(lethe::kernels::sparse_conv2d_forward_cuda(s, *pat, d.x.get(), d.w.get(), nullptr,
                                                          d.y.get(), nullptr, 0, bad),
               lethe::Error);
  CudaExec v1;
  v1.version = 1;
  ASSERT_GT(lethe::kernels::sparse_conv2d_cuda_workspace_bytes(s, *pat, v1), 0u);
  EXPECT_THROW(lethe::kernels::sparse_conv2d_backward_data_cuda(s, *pat, d.gy.get(), d.w.get(),
                                                                d.gx.get(), nullptr, 0, v1),
               lethe::Error);
  EXPECT_THROW(SparsePatternCuda::upload(SparsePattern{}, 0), lethe::Error);
}

}  // namespace
