// CUDA SGD update (kernels/cuda/optim.cu) against the CPU fast path and the double oracle:
// with and without momentum (buf = nullptr then), Nesterov, weight decay, a pruning mask over
// 10 steps (pruned weights stay exactly +0), every version, sizes 1, 3, odd small and
// 1000003, pointers misaligned alike (v2's head) and differently (v2's fallback to v1).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/optim.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::Shifted;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;

constexpr int kSteps = 10;

struct Config {
  const char* name;
  SgdParams p;
};

const Config kConfigs[] = {
    {"plain", {0.1, 0.0, 0.0, false}},
    {"wd", {0.1, 0.0, 5e-4, false}},
    {"momentum_wd", {0.1, 0.9, 5e-4, false}},
    {"nesterov_wd", {0.1, 0.9, 5e-4, true}},
    {"nesterov", {0.05, 0.9, 0.0, true}},
};

// Runs kSteps updates from the same start on the CPU fast path and on CUDA (a new gradient
// each step), then compares w and buf, and checks that pruned weights are exactly +0.
void run_case(int64_t n, const Config& cfg, bool masked, int version, int64_t off_w,
              int64_t off_g) {
  const std::string tag = std::string(cfg.name) + (masked ? " masked" : "") + " v" +
                          std::to_string(version) + " n=" + std::to_string(n) + " off=" +
                          std::to_string(off_w) + "," + std::to_string(off_g);
  const bool momentum = cfg.p.momentum != 0.0;
  std::vector<float> w = random_vector<float>(n, 1), buf(static_cast<size_t>(n), 0.f);
  std::vector<uint8_t> mask(static_cast<size_t>(n));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = static_cast<uint8_t>((i * 7 + 3) % 5 < 3);
  // Pruned weights start at their (nonzero) value: the first step must zero them.
  Shifted<float> dw(w, off_w), dg(n, off_g), dbuf(buf, off_w);
  Shifted<uint8_t> dmask(mask, off_g);
  const CudaExec e{nullptr, version};
  for (int step = 0; step < kSteps; ++step) {
    const auto g = random_vector<float>(n, 100 + static_cast<uint32_t>(step));
    dg.upload(g);
    sgd_update_cpu(n, cfg.p, w.data(), g.data(), momentum ? buf.data() : nullptr,
                   masked ? mask.data() : nullptr);
    sgd_update_cuda(n, cfg.p, dw.get(), dg.get(), momentum ? dbuf.get() : nullptr,
                    masked ? dmask.get() : nullptr, e);
  }
  const auto gw = dw.to_host();
  EXPECT_TRUE(all_close(w, gw, kFp32Tol, "w " + tag));
  if (momentum) {
    EXPECT_TRUE(all_close(buf, dbuf.to_host(), kFp32Tol, "buf " + tag));
  }
  if (masked) {
    int64_t revived = 0;
    for (size_t i = 0; i < gw.size(); ++i)
      if (mask[i] == 0 && (gw[i] != 0.f || std::signbit(gw[i]))) ++revived;
    EXPECT_EQ(revived, 0) << "pruned weights not exactly +0 after " << kSteps << " steps, "
                          << tag;
  }
}

TEST(OptimCuda, SgdMatchesCpuSmallSizes) {
  LETHE_REQUIRE_GPU();
  for (int v = 1; v <= optim_cuda_versions(); ++v)
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{4099}})
      for (const Config& cfg : kConfigs)
        for (bool masked : {false, true})
          for (const auto& off : {std::vector<int64_t>{0, 0}, {1, 1}, {1, 0}})
            run_case(n, cfg, masked, v, off[0], off[1]);
}

TEST(OptimCuda, SgdMatchesCpuLarge) {
  LETHE_REQUIRE_GPU();
  if (small_shapes_only()) GTEST_SKIP() << "large shapes only";
  const int64_t n = 1000003;
  for (int v = 1; v <= optim_cuda_versions(); ++v)
    for (const auto& off : {std::vector<int64_t>{0, 0}, {1, 1}, {1, 0}}) {
      run_case(n, kConfigs[3], true, v, off[0], off[1]);
      run_case(n, kConfigs[1], false, v, off[0], off[1]);
    }
}

TEST(OptimCuda, SgdOneStepMatchesOracle) {
  LETHE_REQUIRE_GPU();
  const int64_t n = small_shapes_only() ? 4099 : 100003;
  for (const Config& cfg : kConfigs) {
    const bool momentum = cfg.p.momentum != 0.0;
    auto w = random_vector<float>(n, 5), buf = random_vector<float>(n, 6);
    const auto g = random_vector<float>(n, 7);
    DeviceBuffer<float> dw(w), dg(g), dbuf(buf);
    sgd_update_ref(n, cfg.p, w.data(), g.data(), momentum ? buf.data() : nullptr, nullptr);
    sgd_update_cuda(n, cfg.p, dw.get(), dg.get(), momentum ? dbuf.get() : nullptr, nullptr);
    EXPECT_TRUE(all_close(w, dw.to_host(), kFp32Tol, std::string("w vs ref ") + cfg.name));
    if (momentum) {
      EXPECT_TRUE(all_close(buf, dbuf.to_host(), kFp32Tol, std::string("buf vs ref ") + cfg.name));
    }
  }
}

TEST(OptimCuda, BadArgumentsThrow) {
  LETHE_REQUIRE_GPU();
  DeviceBuffer<float> w(4), g(4);
  SgdParams p;  // momentum 0.9 needs a buffer
  EXPECT_THROW(sgd_update_cuda(4, p, w.get(), g.get(), nullptr, nullptr), Error);
  p.momentum = 0.0;
  EXPECT_THROW(sgd_update_cuda(4, p, w.get(), g.get(), nullptr, nullptr, CudaExec{nullptr, 9}),
               Error);
}

}  // namespace
}  // namespace lethe::kernels
