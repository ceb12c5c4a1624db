// CUDA softmax family (kernels/cuda/softmax.cu) against the CPU fast path and the double
// oracles on the same seeded inputs: softmax and log_softmax forward/backward, cross-entropy
// forward (per-sample loss, saved logp) and backward, label smoothing 0 and 0.1, every
// version (warp per row, block per row) and the default, M = 256 with C = 10, 100, 1000 and
// awkward C (1, 37, 1500), and in-place use.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "kernels/softmax.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;

struct Shape {
  int64_t M, C;
};

std::vector<Shape> shapes() {
  if (small_shapes_only()) return {{16, 10}, {16, 100}, {3, 1000}, {5, 1}, {7, 37}};
  return {{256, 10}, {256, 100}, {256, 1000}, {256, 1}, {33, 37}, {64, 1500}};
}

std::string tag(const Shape& s, int version) {
  return " M=" + std::to_string(s.M) + " C=" + std::to_string(s.C) + " v" +
         std::to_string(version) +
         (version > 0 ? std::string("(") + softmax_cuda_version_name(version) + ")" : "");
}

std::vector<int32_t> random_labels(int64_t M, int64_t C, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(C - 1));
  std::vector<int32_t> labels(static_cast<size_t>(M));
  for (auto& l : labels) l = dist(gen);
  return labels;
}

// A poisoned device output: every element must be overwritten.
void poison(std::initializer_list<DeviceBuffer<float>*> outs) {
  for (auto* d : outs) d->poison();
}

TEST(SoftmaxCuda, ForwardBackwardMatchCpu) {
  LETHE_REQUIRE_GPU();
  for (const Shape& s : shapes())
    for (int v = 0; v <= softmax_cuda_versions(); ++v) {
      const int64_t n = s.M * s.C;
      const CudaExec e{nullptr, v};
      const std::string t = tag(s, v);
      const auto x = random_vector<float>(n, 1, -8.0, 8.0), gy = random_vector<float>(n, 2);
      std::vector<float> y(x.size()), y_ref(x.size()), lp(x.size()), lp_ref(x.size());
      softmax_forward_cpu(s.M, s.C, x.data(), y.data());
      softmax_forward_ref(s.M, s.C, x.data(), y_ref.data());
      log_softmax_forward_cpu(s.M, s.C, x.data(), lp.data());
      log_softmax_forward_ref(s.M, s.C, x.data(), lp_ref.data());
      DeviceBuffer<float> dx(x), dgy(gy), dy(n), dlp(n);
      poison({&dy, &dlp});
      softmax_forward_cuda(s.M, s.C, dx.get(), dy.get(), e);
      log_softmax_forward_cuda(s.M, s.C, dx.get(), dlp.get(), e);
      const auto gy_h = dy.to_host(), glp_h = dlp.to_host();
      EXPECT_TRUE(all_close(y, gy_h, kFp32Tol, "softmax fwd vs cpu" + t));
      EXPECT_TRUE(all_close(y_ref, gy_h, kFp32Tol, "softmax fwd vs ref" + t));
      EXPECT_TRUE(all_close(lp, glp_h, kFp32Tol, "log_softmax fwd vs cpu" + t));
      EXPECT_TRUE(all_close(lp_ref, glp_h, kFp32Tol, "log_softmax fwd vs ref" + t));

      // Backward from the same (CPU) forward outputs on both sides.
      std::vector<float> gx(x.size()), glx(x.size());
      softmax_backward_cpu(s.M, s.C, y.data(), gy.data(), gx.data());
      log_softmax_backward_cpu(s.M, s.C, lp.data(), gy.data(), glx.data());
      DeviceBuffer<float> dyc(y), dlpc(lp), dgx(n), dglx(n);
      poison({&dgx, &dglx});
      softmax_backward_cuda(s.M, s.C, dyc.get(), dgy.get(), dgx.get(), e);
      log_softmax_backward_cuda(s.M, s.C, dlpc.get(), dgy.get(), dglx.get(), e);
      EXPECT_TRUE(all_close(gx, dgx.to_host(), kFp32Tol, "softmax bwd" + t));
      EXPECT_TRUE(all_close(glx, dglx.to_host(), kFp32Tol, "log_softmax bwd" + t));

      // In place (y aliases x).
      DeviceBuffer<float> inplace(x);
      log_softmax_forward_cuda(s.M, s.C, inplace.get(), inplace.get(), e);
      EXPECT_TRUE(all_close(lp, inplace.to_host(), kFp32Tol, "log_softmax in place" + t));
    }
}

TEST(SoftmaxCuda, CrossEntropyMatchesCpu) {
  LETHE_REQUIRE_GPU();
  for (const Shape& s : shapes())
    for (int v = 0; v <= softmax_cuda_versions(); ++v)
      for (float eps : {0.0f, 0.1f}) {
        const int64_t n = s.M * s.C;
        const CudaExec e{nullptr, v};
        const std::string t = tag(s, v) + " eps=" + std::to_string(eps);
        const auto logits = random_vector<float>(n, 3, -8.0, 8.0);
        const auto labels = random_labels(s.M, s.C, 4);
        const auto gloss = random_vector<float>(s.M, 5);
        std::vector<float> loss(static_cast<size_t>(s.M)), loss_ref(loss.size());
        std::vector<float> lp(logits.size()), lp_ref(logits.size());
        cross_entropy_forward_cpu(s.M, s.C, logits.data(), labels.data(), eps, loss.data(),
                                  lp.data());
        cross_entropy_forward_ref(s.M, s.C, logits.data(), labels.data(), eps, loss_ref.data(),
                                  lp_ref.data());
        DeviceBuffer<float> dlogits(logits), dgloss(gloss), dloss(s.M), dlp(n);
        poison({&dloss, &dlp});
        DeviceBuffer<int32_t> dlabels(labels);
        cross_entropy_forward_cuda(s.M, s.C, dlogits.get(), dlabels.get(), eps, dloss.get(),
                                   dlp.get(), e);
        const auto gl = dloss.to_host(), glp = dlp.to_host();
        EXPECT_TRUE(all_close(loss, gl, kFp32Tol, "ce loss vs cpu" + t));
        EXPECT_TRUE(all_close(loss_ref, gl, kFp32Tol, "ce loss vs ref" + t));
        EXPECT_TRUE(all_close(lp, glp, kFp32Tol, "ce logp vs cpu" + t));
        EXPECT_TRUE(all_close(lp_ref, glp, kFp32Tol, "ce logp vs ref" + t));

        // Backward from the CPU's logp on both sides.
        std::vector<float> g(logits.size());
        cross_entropy_backward_cpu(s.M, s.C, lp.data(), labels.data(), eps, gloss.data(),
                                   g.data());
        DeviceBuffer<float> dlpc(lp), dg(n);
        dg.poison();
        cross_entropy_backward_cuda(s.M, s.C, dlpc.get(), dlabels.get(), eps, dgloss.get(),
                                    dg.get(), e);
        EXPECT_TRUE(all_close(g, dg.to_host(), kFp32Tol, "ce bwd" + t));
      }
}

TEST(SoftmaxCuda, RowsOfEqualLogits) {
  LETHE_REQUIRE_GPU();
  // Equal logits give a uniform row; a large common value must not overflow exp.
  const int64_t M = 4, C = 1000;
  std::vector<float> x(static_cast<size_t>(M * C), 80.f);
  for (int v = 1; v <= softmax_cuda_versions(); ++v) {
    DeviceBuffer<float> dx(x), dy(M * C);
    dy.poison();
    softmax_forward_cuda(M, C, dx.get(), dy.get(), CudaExec{nullptr, v});
    const auto y = dy.to_host();
    EXPECT_TRUE(all_close(std::vector<float>(y.size(), 1.f / C), y, kFp32Tol,
                          "uniform softmax v" + std::to_string(v)));
  }
}

}  // namespace
}  // namespace lethe::kernels
