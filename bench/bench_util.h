// What the conv benchmarks share: the distinct conv shapes of ResNet-18 (CIFAR variant, width
// 1.0), their Conv2dShape at a batch, and seeded random inputs.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv2d.h"

namespace lethe::bench {

/// One distinct conv shape: C in, K out channels, H x H input, R x R filter, stride.
struct Layer {
  int64_t C, K, H, R, stride;
};
inline constexpr Layer kResNet18Layers[] = {
    {3, 64, 32, 3, 1},                                                  // stem
    {64, 64, 32, 3, 1},                                                 // layer1
    {64, 128, 32, 3, 2},  {128, 128, 16, 3, 1}, {64, 128, 32, 1, 2},    // layer2
    {128, 256, 16, 3, 2}, {256, 256, 8, 3, 1},  {128, 256, 16, 1, 2},   // layer3
    {256, 512, 8, 3, 2},  {512, 512, 4, 3, 1},  {256, 512, 8, 1, 2},    // layer4
};

/// The same network at width 0.25 (`--preset cpu`, the model the CPU experiments train):
/// 16-32-64-128 channels.
inline constexpr Layer kResNet18W025Layers[] = {
    {3, 16, 32, 3, 1},                                             // stem
    {16, 16, 32, 3, 1},                                            // layer1
    {16, 32, 32, 3, 2},  {32, 32, 16, 3, 1}, {16, 32, 32, 1, 2},   // layer2
    {32, 64, 16, 3, 2},  {64, 64, 8, 3, 1},  {32, 64, 16, 1, 2},   // layer3
    {64, 128, 8, 3, 2},  {128, 128, 4, 3, 1}, {64, 128, 8, 1, 2},  // layer4
};

inline kernels::Conv2dShape shape_of(const Layer& l, int64_t batch) {
  kernels::Conv2dShape s;
  s.N = batch;
  s.C = l.C;
  s.K = l.K;
  s.H = s.W = l.H;
  s.R = s.S = l.R;
  s.stride = l.stride;
  s.pad = l.R / 2;  // 3x3 pad 1, 1x1 pad 0
  return s;
}

/// Seeded uniform values in [-1, 1).
inline std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

/// "N32_C64_K128_H32_R3_s2": the shape part of a benchmark name.
inline std::string shape_name(const kernels::Conv2dShape& s) {
  // snprintf rather than string operator+ chains: GCC 12 -Wrestrict misfires on those.
  char buf[96];
  std::snprintf(buf, sizeof buf, "N%lld_C%lld_K%lld_H%lld_R%lld_s%lld",
                static_cast<long long>(s.N), static_cast<long long>(s.C),
                static_cast<long long>(s.K), static_cast<long long>(s.H),
                static_cast<long long>(s.R), static_cast<long long>(s.stride));
  return buf;
}

/// main() of a benchmark binary whose cases `register_all` registers at run time.
inline int run_main(int argc, char** argv, void (*register_all)()) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

/// The sparse benchmarks' pruning mask over n weights: round(sparsity * n) of them pruned,
/// chosen by a seeded shuffle (seed 7), so the CPU and CUDA benches time the same masks.
inline std::vector<uint8_t> random_mask(int64_t n, double sparsity) {
  std::vector<uint8_t> mask(static_cast<size_t>(n), 1);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::shuffle(idx.begin(), idx.end(), std::mt19937(7));
  const auto pruned = static_cast<size_t>(sparsity * static_cast<double>(n) + 0.5);
  for (size_t i = 0; i < pruned; ++i) mask[static_cast<size_t>(idx[i])] = 0;
  return mask;
}

}  // namespace lethe::bench
