// CPU sparse conv2d benchmark (kernels/sparse/conv2d_sparse.cpp) against lethe's dense path
// (kernels/cpu/conv2d.cpp) on every distinct conv shape of ResNet-18 (CIFAR, width 1.0) at
// batch 32: forward, backward-data and backward-weight, dense and at 50/75/90/95/99% sparsity
// (seeded uniformly random masks; a real OMP mask is not uniform across layers, see
// docs/sparse.md for the end-to-end figures with one). Times in ms; the ratio dense/sparse of
// two lines in the same run is the speed-up. Run with OMP_NUM_THREADS=2, e.g.
//   flock /tmp/lethe-build.lock ./build/bench/bench_conv2d_sparse_cpu --benchmark_filter=fwd
// Names: BM_SparseConv2d/fwd/sparse95/N32_C512_K512_H4_R3_s1 (dense: .../dense/...).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/conv2d.h"
#include "kernels/sparse/conv2d_sparse.h"

namespace {

using lethe::kernels::Conv2dShape;

using lethe::bench::Layer;
using lethe::bench::random_floats;
constexpr int64_t kBatch = 32;
Conv2dShape shape_of(const Layer& l) { return lethe::bench::shape_of(l, kBatch); }

enum class Pass { kForward, kBackwardData, kBackwardWeight };

// sparsity < 0: the dense kernels.
void run(benchmark::State& state, Conv2dShape s, Pass pass, double sparsity) {
  const int64_t P = s.P(), Q = s.Q(), crs = s.C * s.R * s.S;
  const auto x = random_floats(s.N * s.C * s.H * s.W, 1);
  auto w = random_floats(s.K * crs, 2);
  const auto gy = random_floats(s.N * s.K * P * Q, 4);
  std::vector<float> y(s.N * s.K * P * Q), gx(x.size()), gw(w.size());
  const std::vector<uint8_t> mask =
      sparsity >= 0 ? lethe::bench::random_mask(static_cast<int64_t>(w.size()), sparsity)
                    : std::vector<uint8_t>(w.size(), 1);
  const auto pat = lethe::kernels::make_sparse_pattern(s.K, crs, mask.data());
  for (auto _ : state) {
    if (sparsity < 0) {
      switch (pass) {
        case Pass::kForward:
          lethe::kernels::conv2d_forward_cpu<float>(s, x.data(), w.data(), nullptr, y.data());
          break;
        case Pass::kBackwardData:
          lethe::kernels::conv2d_backward_data_cpu<float>(s, gy.data(), w.data(), gx.data());
          break;
        case Pass::kBackwardWeight:
          lethe::kernels::conv2d_backward_weight_cpu<float>(s, x.data(), gy.data(), gw.data(),
                                                            nullptr);
          break;
      }
    } else {
      switch (pass) {
        case Pass::kForward:
          lethe::kernels::sparse_conv2d_forward_cpu<float>(s, pat, x.data(), w.data(), nullptr,
                                                           y.data());
          break;
        case Pass::kBackwardData:
          lethe::kernels::sparse_conv2d_backward_data_cpu<float>(s, pat, gy.data(), w.data(),
                                                                 gx.data());
          break;
        case Pass::kBackwardWeight:
          lethe::kernels::sparse_conv2d_backward_weight_cpu<float>(s, pat, x.data(), gy.data(),
                                                                   gw.data(), nullptr);
          break;
      }
    }
    benchmark::ClobberMemory();
  }
}

void register_all() {
  const struct {
    const char* name;
    Pass pass;
  } passes[] = {{"fwd", Pass::kForward}, {"bwd_data", Pass::kBackwardData},
                {"bwd_weight", Pass::kBackwardWeight}};
  const struct {
    const char* name;
    double sparsity;
  } kinds[] = {{"dense", -1},        {"sparse50", 0.50}, {"sparse75", 0.75},
               {"sparse90", 0.90},   {"sparse95", 0.95}, {"sparse99", 0.99}};
  for (const auto& p : passes)
    for (const Layer& l : lethe::bench::kResNet18Layers)
      for (const auto& k : kinds) {
        const Conv2dShape s = shape_of(l);
        char prefix[64];
        std::snprintf(prefix, sizeof prefix, "BM_SparseConv2d/%s/%s/", p.name, k.name);
        benchmark::RegisterBenchmark((prefix + lethe::bench::shape_name(s)).c_str(), run, s,
                                     p.pass, k.sparsity)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
