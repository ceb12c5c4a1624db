// What the CUDA benchmarks share: each call timed with CUDA events recorded on its stream
// (Google Benchmark's manual time), after one untimed warm-up call that takes module loading,
// library plans and first touches out of the measurement.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include "kernels/check.h"

namespace lethe::bench {

/// Runs call() once untimed, then once per benchmark iteration between two events on
/// `stream` (nullptr: the default stream), setting each iteration's time. Returns the total
/// event-measured seconds, for counters that must divide by that time rather than by
/// Google Benchmark's own clock.
template <typename F>
double time_cuda_calls(benchmark::State& state, cudaStream_t stream, F&& call) {
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  call();
  // Uploads may have gone to the legacy default stream, which a non-blocking stream does
  // not wait for.
  CUDA_CHECK(cudaDeviceSynchronize());
  double seconds = 0;
  for (auto _ : state) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    call();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
    seconds += static_cast<double>(ms) * 1e-3;
  }
  CUDA_CHECK_NOTHROW(cudaEventDestroy(stop));
  CUDA_CHECK_NOTHROW(cudaEventDestroy(start));
  return seconds;
}

}  // namespace lethe::bench
