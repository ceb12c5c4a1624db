// CPU conv2d benchmark: forward, backward-data and backward-weight (kernels/cpu/conv2d.cpp,
// conv2d_avx512.cpp) on every distinct conv shape of ResNet-18 (CIFAR variant, width 1.0) at
// batch 32 and of the width-0.25 model at batch 128 (the `--preset cpu` training step), plus
// the vendor baseline: OpenBLAS SGEMM alone on each layer's forward product,
// i.e. im2col + SGEMM with the im2col for free.
// Each line reports GFLOP/s (2*N*K*P*Q*C*R*S per pass) as the counter "GFLOP" (a rate); the
// FP32 peak of the 2-core development machine is 229 GFLOP/s. Run with OMP_NUM_THREADS=2, e.g.
//   flock /tmp/lethe-build.lock ./build/bench/bench_conv2d_cpu
// Names: BM_Conv2dForward/cpu/N32_C128_K128_H16_R3_s1. Results: docs/benchmarks-cpu.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/conv2d.h"
#include "kernels/gemm.h"

namespace {

using lethe::kernels::Conv2dShape;

using lethe::bench::Layer;
using lethe::bench::random_floats;
constexpr int64_t kBatch = 32;
Conv2dShape shape_of(const Layer& l) { return lethe::bench::shape_of(l, kBatch); }

using lethe::bench::shape_name;

void report(benchmark::State& state, double flops) {
  // kIsIterationInvariantRate: (flops per iteration * iterations) / seconds. Counting in units
  // of 1e9 makes the console show "GFLOP=123.4/s", i.e. GFLOP/s.
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

enum class Pass { kForward, kBackwardData, kBackwardWeight, kGemmOnly };

void run(benchmark::State& state, Conv2dShape s, Pass pass) {
  const int64_t P = s.P(), Q = s.Q();
  const auto x = random_floats(s.N * s.C * s.H * s.W, 1);
  const auto w = random_floats(s.K * s.C * s.R * s.S, 2);
  const auto b = random_floats(s.K, 3);
  const auto gy = random_floats(s.N * s.K * P * Q, 4);
  std::vector<float> y(s.N * s.K * P * Q), gx(x.size()), gw(w.size()), gb(b.size());
  // The GEMM ceiling: the forward product on a ready-made CRS x NPQ column matrix.
  const int64_t crs = s.C * s.R * s.S, npq = s.N * P * Q;
  std::vector<float> col, out;
  if (pass == Pass::kGemmOnly) {
    col = random_floats(crs * npq, 5);
    out.resize(s.K * npq);
  }
  for (auto _ : state) {
    switch (pass) {
      case Pass::kForward:
        lethe::kernels::conv2d_forward_cpu<float>(s, x.data(), w.data(), b.data(), y.data());
        break;
      case Pass::kBackwardData:
        lethe::kernels::conv2d_backward_data_cpu<float>(s, gy.data(), w.data(), gx.data());
        break;
      case Pass::kBackwardWeight:
        lethe::kernels::conv2d_backward_weight_cpu<float>(s, x.data(), gy.data(), gw.data(),
                                                          gb.data());
        break;
      case Pass::kGemmOnly:
        lethe::kernels::gemm_cpu<float>(false, false, s.K, npq, crs, 1.f, w.data(), crs,
                                        col.data(), npq, 0.f, out.data(), npq);
        break;
    }
    benchmark::ClobberMemory();
  }
  report(state, s.flops());
}

void register_all() {
  const struct {
    const char* name;
    Pass pass;
  } passes[] = {{"BM_Conv2dForward/cpu/", Pass::kForward},
                {"BM_Conv2dBackwardData/cpu/", Pass::kBackwardData},
                {"BM_Conv2dBackwardWeight/cpu/", Pass::kBackwardWeight},
                {"BM_Conv2dForward/openblas_gemm_only/", Pass::kGemmOnly}};
  for (const auto& p : passes) {
    for (const Layer& l : lethe::bench::kResNet18Layers) {
      const Conv2dShape s = shape_of(l);
      benchmark::RegisterBenchmark((std::string(p.name) + shape_name(s)).c_str(), run, s, p.pass)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    for (const Layer& l : lethe::bench::kResNet18W025Layers) {
      const Conv2dShape s = lethe::bench::shape_of(l, 128);
      benchmark::RegisterBenchmark((std::string(p.name) + shape_name(s)).c_str(), run, s, p.pass)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
