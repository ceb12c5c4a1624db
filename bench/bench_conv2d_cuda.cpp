// CUDA conv2d benchmark: forward, backward-data and backward-weight of lethe's kernels
// (kernels/cuda/conv2d.cu, conv2d_tc.cu), every version, on every distinct conv shape of
// ResNet-18 (CIFAR variant, width 1.0) at batch 256 and 128. v1 and v2 run under
// CudaMath::FP32, v3 (TF32 tensor cores) under CudaMath::TF32.
// Timing: CUDA events around each call on one non-blocking stream (UseManualTime), after one
// untimed warm-up call; backward-weight includes its split-K reduce and the gb reduction.
// Counters, as rates: "GFLOP" = 2*N*K*P*Q*C*R*S per call (GFLOP/s) and "GB" = the bytes a call
// must move at least, its inputs and outputs once each (GB/s). H100 peaks (docs: GPU.md): FP32
// 66.9 TFLOP/s, TF32 tensor cores 494.7 TFLOP/s, HBM3 3.35 TB/s.
// Names: BM_Conv2dForward/cuda_v2/N256_C128_K128_H16_R3_s1. v1 is the direct loop port and
// takes seconds per backward-weight call on the big layers; for a quick run:
//   ./build/bench/bench_conv2d_cuda --benchmark_filter='cuda_v[23]'
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cuda_timing.h"
#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/cuda_exec.h"

namespace {

using lethe::bench::Layer;
using lethe::bench::random_floats;
using lethe::bench::shape_name;
using lethe::kernels::Conv2dShape;
using lethe::kernels::CudaExec;
using lethe::kernels::CudaMath;

enum class Pass { kForward, kBackwardData, kBackwardWeight };

/// Seeded values in [-1, 1), at least n of them: one pool shared by every input of every case,
/// so the host does not regenerate ~17M floats per benchmark (timing does not depend on them).
const float* random_pool(int64_t n) {
  static std::vector<float> pool;
  if (static_cast<int64_t>(pool.size()) < n) pool = random_floats(n, 1);
  return pool.data();
}

/// Device memory of `bytes`, freed on scope exit.
class DeviceArray {
 public:
  explicit DeviceArray(size_t bytes) { CUDA_CHECK(cudaMalloc(&p_, bytes > 0 ? bytes : 1)); }
  /// n floats from the random pool.
  static DeviceArray random(int64_t n) {
    DeviceArray a(static_cast<size_t>(n) * sizeof(float));
    CUDA_CHECK(cudaMemcpy(a.p_, random_pool(n), static_cast<size_t>(n) * sizeof(float),
                          cudaMemcpyHostToDevice));
    return a;
  }
  ~DeviceArray() { CUDA_CHECK_NOTHROW(cudaFree(p_)); }
  DeviceArray(DeviceArray&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  float* f() { return static_cast<float*>(p_); }
  void* get() { return p_; }

 private:
  void* p_ = nullptr;
};

/// The non-blocking stream the timed calls run on.
struct Timer {
  cudaStream_t stream = nullptr;
  Timer() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)); }
  ~Timer() { CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream)); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
};

/// Bytes one call reads and writes at the least (each input and output once).
double min_bytes(const Conv2dShape& s, Pass pass) {
  const double x = double(s.N) * s.C * s.H * s.W, w = double(s.K) * s.C * s.R * s.S;
  const double y = double(s.N) * s.K * s.P() * s.Q(), b = double(s.K);
  switch (pass) {
    case Pass::kForward:
      return 4.0 * (x + w + b + y);
    case Pass::kBackwardData:
      return 4.0 * (y + w + x);
    case Pass::kBackwardWeight:
      return 4.0 * (x + y + w + b);
  }
  return 0;
}

void run(benchmark::State& state, Conv2dShape s, Pass pass, CudaExec e) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    state.SkipWithError("no CUDA device");
    return;
  }
  try {
    const int64_t nx = s.N * s.C * s.H * s.W, nw = s.K * s.C * s.R * s.S;
    const int64_t ny = s.N * s.K * s.P() * s.Q();
    DeviceArray x = DeviceArray::random(nx), w = DeviceArray::random(nw);
    DeviceArray b = DeviceArray::random(s.K), gy = DeviceArray::random(ny);
    DeviceArray y(ny * sizeof(float)), gx(nx * sizeof(float)), gw(nw * sizeof(float));
    DeviceArray gb(s.K * sizeof(float));
    const size_t ws_bytes =
        pass == Pass::kBackwardWeight ? lethe::kernels::conv2d_cuda_workspace_bytes(s, e) : 0;
    DeviceArray ws(ws_bytes);
    Timer timer;
    e.stream = timer.stream;
    auto call = [&] {
      switch (pass) {
        case Pass::kForward:
          lethe::kernels::conv2d_forward_cuda(s, x.f(), w.f(), b.f(), y.f(), e);
          break;
        case Pass::kBackwardData:
          lethe::kernels::conv2d_backward_data_cuda(s, gy.f(), w.f(), gx.f(), e);
          break;
        case Pass::kBackwardWeight:
          lethe::kernels::conv2d_backward_weight_cuda(s, x.f(), gy.f(), gw.f(), gb.f(), ws.get(),
                                                      ws_bytes, e);
          break;
      }
    };
    CUDA_CHECK(cudaDeviceSynchronize());  // the uploads, before the warm-up call
    lethe::bench::time_cuda_calls(state, timer.stream, call);
    // With UseManualTime the rates divide by the event-measured time.
    state.counters["GFLOP"] =
        benchmark::Counter(s.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GB"] = benchmark::Counter(min_bytes(s, pass) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  } catch (const std::exception& err) {
    state.SkipWithError(err.what());
  }
}

void register_all() {
  const struct {
    const char* name;
    Pass pass;
  } passes[] = {{"BM_Conv2dForward/", Pass::kForward},
                {"BM_Conv2dBackwardData/", Pass::kBackwardData},
                {"BM_Conv2dBackwardWeight/", Pass::kBackwardWeight}};
  const struct {
    const char* name;
    int version;
    CudaMath math;
  } impls[] = {{"cuda_v1/", 1, CudaMath::FP32},
               {"cuda_v2/", 2, CudaMath::FP32},
               {"cuda_v3/", 3, CudaMath::TF32},
               {"cuda_v4/", 4, CudaMath::FP32},
               {"cuda_v5/", 5, CudaMath::FP32}};
  for (const auto& p : passes)
    for (int64_t batch : {256, 128})
      for (const Layer& l : lethe::bench::kResNet18Layers) {
        const Conv2dShape s = lethe::bench::shape_of(l, batch);
        for (const auto& impl : impls) {
          CudaExec e;
          e.version = impl.version;
          e.math = impl.math;
          benchmark::RegisterBenchmark((std::string(p.name) + impl.name + shape_name(s)).c_str(),
                                       run, s, p.pass, e)
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
        }
        // Vendor baseline (cuDNN, fp32 and TF32) for the same shape and pass goes here, named
        // p.name + "cudnn/" and "cudnn_tf32/" + shape_name(s), timed the same way, so that
        // every lethe line sits next to its comparison.
      }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
