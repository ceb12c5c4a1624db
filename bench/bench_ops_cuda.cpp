// CUDA benchmark of the small op families at ResNet-18 (CIFAR variant, width 1.0) batch-256
// sizes: elementwise (relu, add_relu, axpy) on the largest activation 256x64x32x32, every
// version; the fused SGD update over ResNet-18's 11,173,962 parameters (momentum, weight decay,
// mask), every version; softmax cross-entropy forward and backward at M = 256 for C = 10 and
// 100, every version; max pooling 2x2 s2 on 256x64x32x32 (VGG-16's first pool) and ResNet-18's
// global average pool 256x512x4x4, forward and backward; augmentation (crop_flip,
// image_to_float) of a 256-image batch. The baseline in the same binary is a device-to-device
// cudaMemcpyAsync of the elementwise size: the bandwidth ceiling of a read + write stream.
// Each line reports the counter "GB" (bytes each kernel must move per call, every input read
// once and every output written once, in units of 1e9) as a rate, i.e. GB/s; the H100's HBM3
// gives about 3,000 GB/s for a copy (../shared/docs/GPU.md). Tiny launches (CE at C = 10) measure
// latency, not bandwidth. Timing: CUDA events around each call (UseManualTime).
// Names: BM_Relu/cuda_v2_vec4/n16777216. Run on the GPU machine: ./bench_ops_cuda
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cuda_timing.h"
#include "kernels/augment.h"
#include "kernels/check.h"
#include "kernels/elementwise.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"

namespace {

using ::lethe::detail::concat;

namespace k = lethe::kernels;
using lethe::bench::random_floats;

constexpr int64_t kBatch = 256;
constexpr int64_t kActivation = kBatch * 64 * 32 * 32;  // layer1's output, 16.8M floats
constexpr int64_t kResNet18Params = 11173962;

/// A device array of n T, filled from the host or left as is; freed on scope exit.
template <typename T>
class Dev {
 public:
  explicit Dev(int64_t n) {
    CUDA_CHECK(cudaMalloc(&p_, static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)));
  }
  explicit Dev(const std::vector<T>& h) : Dev(static_cast<int64_t>(h.size())) {
    CUDA_CHECK(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Dev() { CUDA_CHECK_NOTHROW(cudaFree(p_)); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
};

/// Times `call` with CUDA events on the default stream (one warm-up call first) and reports
/// `bytes` per call as the GB/s counter.
void time_calls(benchmark::State& state, double bytes, const std::function<void()>& call) {
  lethe::bench::time_cuda_calls(state, nullptr, call);
  state.counters["GB"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

std::vector<uint8_t> keep_mask(int64_t n, double density) {
  std::mt19937 gen(7);
  std::bernoulli_distribution keep(density);
  std::vector<uint8_t> m(static_cast<size_t>(n));
  for (auto& b : m) b = keep(gen) ? 1 : 0;
  return m;
}

void reg(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& st) { fn(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

std::string version_tag(const char* family_name, int v) {
  return "cuda_v" + std::to_string(v) + "_" + family_name;
}

// ---- elementwise and the copy baseline --------------------------------------------------

void register_elementwise() {
  const int64_t n = kActivation;
  const std::string size = concat("/n", n);
  reg("BM_Copy/cudaMemcpy_d2d" + size, [n](benchmark::State& st) {
    Dev<float> x(random_floats(n, 1)), y(n);
    time_calls(st, 8.0 * n, [&] {
      CUDA_CHECK(cudaMemcpyAsync(y.get(), x.get(), n * sizeof(float), cudaMemcpyDeviceToDevice));
    });
  });
  for (int v = 1; v <= k::elementwise_cuda_versions(); ++v) {
    const std::string tag = concat("/", version_tag(k::elementwise_cuda_version_name(v), v), size);
    const k::CudaExec e{nullptr, v};
    reg("BM_Relu" + tag, [n, e](benchmark::State& st) {
      Dev<float> x(random_floats(n, 1)), y(n);
      time_calls(st, 8.0 * n, [&] { k::relu_forward_cuda(n, x.get(), y.get(), e); });
    });
    reg("BM_AddRelu" + tag, [n, e](benchmark::State& st) {
      Dev<float> a(random_floats(n, 1)), b(random_floats(n, 2)), y(n);
      time_calls(st, 12.0 * n, [&] { k::add_relu_cuda(n, a.get(), b.get(), y.get(), e); });
    });
    reg("BM_Axpy" + tag, [n, e](benchmark::State& st) {
      Dev<float> x(random_floats(n, 1)), y(random_floats(n, 2));
      time_calls(st, 12.0 * n, [&] { k::axpy_cuda(n, 1e-3f, x.get(), y.get(), e); });
    });
  }
}

// ---- SGD ----------------------------------------------------------------------------------

void register_sgd() {
  const int64_t n = kResNet18Params;
  for (int v = 1; v <= k::optim_cuda_versions(); ++v) {
    const std::string tag = concat("/", version_tag(k::optim_cuda_version_name(v), v), "/n", n);
    const k::CudaExec e{nullptr, v};
    // Reads w, g, buf (and the mask bytes), writes w and buf.
    for (bool masked : {false, true})
      reg(std::string(masked ? "BM_SgdUpdateMasked" : "BM_SgdUpdate") + tag,
          [n, e, masked](benchmark::State& st) {
            Dev<float> w(random_floats(n, 1)), g(random_floats(n, 2)), buf(random_floats(n, 3));
            Dev<uint8_t> mask(keep_mask(n, 0.1));
            const k::SgdParams p{0.1, 0.9, 5e-4, false};
            time_calls(st, (masked ? 21.0 : 20.0) * n, [&] {
              k::sgd_update_cuda(n, p, w.get(), g.get(), buf.get(), masked ? mask.get() : nullptr,
                                 e);
            });
          });
  }
}

// ---- softmax cross-entropy ----------------------------------------------------------------

void register_cross_entropy() {
  const int64_t M = kBatch;
  for (int64_t C : {int64_t{10}, int64_t{100}}) {
    const std::string shape = concat("/M", M, "_C", C);
    for (int v = 1; v <= k::softmax_cuda_versions(); ++v) {
      const std::string tag = concat("/", version_tag(k::softmax_cuda_version_name(v), v), shape);
      const k::CudaExec e{nullptr, v};
      reg("BM_CrossEntropyForward" + tag, [M, C, e](benchmark::State& st) {
        Dev<float> logits(random_floats(M * C, 1)), loss(M), logp(M * C);
        Dev<int32_t> labels(std::vector<int32_t>(static_cast<size_t>(M), 3));
        time_calls(st, 8.0 * M * C + 8.0 * M, [&] {
          k::cross_entropy_forward_cuda(M, C, logits.get(), labels.get(), 0.1f, loss.get(),
                                        logp.get(), e);
        });
      });
    }
    // The backward is one map over M*C outputs, the same kernel for every version.
    reg("BM_CrossEntropyBackward/cuda" + shape, [M, C](benchmark::State& st) {
      Dev<float> logp(random_floats(M * C, 1)), gloss(random_floats(M, 2)), g(M * C);
      Dev<int32_t> labels(std::vector<int32_t>(static_cast<size_t>(M), 3));
      time_calls(st, 8.0 * M * C + 8.0 * M, [&] {
        k::cross_entropy_backward_cuda(M, C, logp.get(), labels.get(), 0.1f, gloss.get(),
                                       g.get());
      });
    });
  }
}

// ---- pooling ------------------------------------------------------------------------------

void register_pool() {
  k::PoolShape s;
  s.N = kBatch;
  s.C = 64;
  s.H = s.W = 32;
  s.kernel = s.stride = 2;
  const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.P() * s.Q();
  const std::string shape = "/cuda/N256_C64_H32_k2_s2";
  reg("BM_MaxPoolForward" + shape, [s, nx, ny](benchmark::State& st) {
    Dev<float> x(random_floats(nx, 1)), y(ny);
    Dev<int32_t> arg(ny);
    time_calls(st, 4.0 * nx + 8.0 * ny,
               [&] { k::maxpool2d_forward_cuda(s, x.get(), y.get(), arg.get()); });
  });
  reg("BM_MaxPoolBackward" + shape, [s, nx, ny](benchmark::State& st) {
    Dev<float> x(random_floats(nx, 1)), y(ny), gy(random_floats(ny, 2)), gx(nx);
    Dev<int32_t> arg(ny);
    k::maxpool2d_forward_cuda(s, x.get(), y.get(), arg.get());
    time_calls(st, 8.0 * ny + 4.0 * nx,
               [&] { k::maxpool2d_backward_cuda(s, gy.get(), arg.get(), gx.get()); });
  });
  const int64_t NC = kBatch * 512, HW = 16;
  const std::string gshape = "/cuda/N256_C512_H4";
  reg("BM_GlobalAvgPoolForward" + gshape, [NC, HW](benchmark::State& st) {
    Dev<float> x(random_floats(NC * HW, 1)), y(NC);
    time_calls(st, 4.0 * NC * HW + 4.0 * NC,
               [&] { k::global_avgpool_forward_cuda(NC, HW, x.get(), y.get()); });
  });
  reg("BM_GlobalAvgPoolBackward" + gshape, [NC, HW](benchmark::State& st) {
    Dev<float> gy(random_floats(NC, 1)), gx(NC * HW);
    time_calls(st, 4.0 * NC * HW + 4.0 * NC,
               [&] { k::global_avgpool_backward_cuda(NC, HW, gy.get(), gx.get()); });
  });
}

// ---- augmentation -------------------------------------------------------------------------

void register_augment() {
  const int64_t n = kBatch, bytes = n * 3 * 32 * 32;
  const std::string size = concat("/cuda/N", n);
  reg("BM_CropFlip" + size, [n, bytes](benchmark::State& st) {
    std::mt19937 gen(3);
    std::uniform_int_distribution<int> shift(-4, 4), coin(0, 1);
    std::vector<uint8_t> src(static_cast<size_t>(bytes)), flip(static_cast<size_t>(n));
    std::vector<int8_t> dy(flip.size()), dx(flip.size());
    for (auto& b : src) b = static_cast<uint8_t>(gen() & 0xFF);
    for (size_t i = 0; i < flip.size(); ++i) {
      dy[i] = static_cast<int8_t>(shift(gen));
      dx[i] = static_cast<int8_t>(shift(gen));
      flip[i] = static_cast<uint8_t>(coin(gen));
    }
    Dev<uint8_t> dsrc(src), dflip(flip);
    Dev<int8_t> ddy(dy), ddx(dx);
    Dev<float> out(bytes);
    time_calls(st, 5.0 * bytes, [&] {
      k::crop_flip_cuda(n, dsrc.get(), ddy.get(), ddx.get(), dflip.get(), out.get());
    });
  });
  reg("BM_ImageToFloat" + size, [n, bytes](benchmark::State& st) {
    Dev<uint8_t> src(std::vector<uint8_t>(static_cast<size_t>(bytes), 77));
    Dev<float> out(bytes);
    time_calls(st, 5.0 * bytes, [&] { k::image_to_float_cuda(n, src.get(), out.get()); });
  });
}

void register_all() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_ops_cuda: no CUDA device, nothing to measure.\n");
    return;
  }
  register_elementwise();
  register_sgd();
  register_cross_entropy();
  register_pool();
  register_augment();
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
