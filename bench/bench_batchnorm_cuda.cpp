// CUDA batch_norm2d benchmark (kernels/cuda/batchnorm.cu) at the four BatchNorm shapes of
// ResNet-18 (CIFAR variant) at batch 256: C x HW = 64 x 1024, 128 x 256, 256 x 64, 512 x 16.
// Lines, each timed with CUDA events (UseManualTime):
//   BM_BatchNormForwardTrain / ForwardEval / Backward (training): cuda_v1 (one block per
//     channel) and cuda_v2 (a cluster of blocks per channel, the default);
//   BM_BatchNorm{Relu,AddRelu}{Forward,Backward}: fused (one kernel, v2) vs unfused (the plain
//     bn kernel plus a separate elementwise pass). The separate pass is this family's eval
//     kernel with identity statistics (forward: y = relu(x [+ r]); backward: gx = gy*(y > 0)),
//     which moves exactly the bytes of a standalone relu / add_relu / relu_backward kernel.
// Counter "GB/s": effective bandwidth, every tensor of the op's interface counted once
// (forward: x [+ residual] read, y written; backward: x, gy [, y] read, gx [, gresidual]
// written), so fused and unfused lines of one op share the numerator and compare as 1/time.
// The kernels move more than that: training forward reads x twice (statistics, then y),
// training backward reads its inputs twice (sums, then gx).
// Names: BM_BatchNormBackward/cuda_v2/N256_C64_HW1024. Run on a GPU machine:
//   ./build/bench/bench_batchnorm_cuda --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "bench_util.h"
#include "cuda_timing.h"
#include "kernels/batchnorm.h"
#include "kernels/check.h"

namespace {

using lethe::kernels::BatchNormShape;
using lethe::kernels::BnEpilogue;
using lethe::kernels::CudaExec;
namespace k = lethe::kernels;

constexpr int64_t kBatch = 256;
constexpr float kMomentum = 0.1f, kEps = 1e-5f;

/// A device array of n floats filled from the shared random host data, freed on scope exit.
class DevBuf {
 public:
  DevBuf(int64_t n, const std::vector<float>& host) {
    CUDA_CHECK(cudaMalloc(&p_, static_cast<size_t>(n) * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(p_, host.data(), static_cast<size_t>(n) * sizeof(float),
                          cudaMemcpyHostToDevice));
  }
  ~DevBuf() { CUDA_CHECK_NOTHROW(cudaFree(p_)); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  float* get() { return static_cast<float*>(p_); }

 private:
  void* p_ = nullptr;
};

/// Random values in [-1, 1) for the largest tensor, made once (about half are negative, so a
/// ReLU mask built from them is realistic).
const std::vector<float>& host_data() {
  static const std::vector<float> v = lethe::bench::random_floats(kBatch * 64 * 1024, 7);
  return v;
}

/// Every device array one op needs; per-channel arrays hold valid statistics.
struct Buffers {
  explicit Buffers(const BatchNormShape& s)
      : n(s.N * s.C * s.HW),
        x(n, host_data()), y(n, host_data()), r(n, host_data()), gy(n, host_data()),
        gx(n, host_data()), gres(n, host_data()), gamma(s.C, ones(s.C)),
        beta(s.C, zeros(s.C)), mean(s.C, zeros(s.C)), invstd(s.C, ones(s.C)),
        rm(s.C, zeros(s.C)), rv(s.C, ones(s.C)), gg(s.C, zeros(s.C)), gb(s.C, zeros(s.C)),
        sm(s.C, zeros(s.C)), si(s.C, zeros(s.C)) {}
  static std::vector<float> ones(int64_t c) { return std::vector<float>(c, 1.f); }
  static std::vector<float> zeros(int64_t c) { return std::vector<float>(c, 0.f); }
  int64_t n;
  DevBuf x, y, r, gy, gx, gres, gamma, beta, mean, invstd, rm, rv, gg, gb, sm, si;
};

enum class Op {
  kForwardTrain, kForwardEval, kBackward,                // the plain bn kernels
  kReluFwdFused, kReluFwdUnfused, kAddReluFwdFused, kAddReluFwdUnfused,
  kReluBwdFused, kReluBwdUnfused, kAddReluBwdFused, kAddReluBwdUnfused,
};

/// Effective bytes of one call: the op's interface tensors, each once.
double bytes_of(Op op, int64_t n) {
  int tensors = 2;  // forward: x, y
  switch (op) {
    case Op::kAddReluFwdFused:
    case Op::kAddReluFwdUnfused: tensors = 3; break;  // + residual
    case Op::kBackward: tensors = 3; break;           // x, gy read, gx written
    case Op::kReluBwdFused:
    case Op::kReluBwdUnfused: tensors = 4; break;     // + y
    case Op::kAddReluBwdFused:
    case Op::kAddReluBwdUnfused: tensors = 5; break;  // + y, gresidual
    default: break;
  }
  return static_cast<double>(tensors) * static_cast<double>(n) * sizeof(float);
}

void call(Op op, const BatchNormShape& s, Buffers& b, const CudaExec& e) {
  // The unfused stand-ins for a standalone elementwise pass: eval kernels with mean 0,
  // variance 1, eps 0 and no affine (forward: y = relu(x [+ r])), or mean 0, invstd 1 and no
  // gamma (backward: gx = gy*(y > 0), no reduction).
  // b.mean / b.invstd (0 / 1) are never written, unlike the running statistics.
  auto relu_pass = [&](BnEpilogue act, const float* in, float* out) {
    k::batchnorm_act_forward_eval_cuda(s, act, in, nullptr, nullptr, b.r.get(), b.mean.get(),
                                       b.invstd.get(), 0.f, out, e);
  };
  auto relu_backward_pass = [&](float* out) {
    k::batchnorm_act_backward_cuda(s, BnEpilogue::Relu, false, b.x.get(), b.y.get(),
                                   b.gy.get(), nullptr, b.mean.get(), b.invstd.get(), out,
                                   nullptr, nullptr, nullptr, e);
  };
  auto train = [&](BnEpilogue act) {
    k::batchnorm_act_forward_train_cuda(s, act, b.x.get(), b.gamma.get(), b.beta.get(),
                                        b.r.get(), b.rm.get(), b.rv.get(), kMomentum, kEps,
                                        b.y.get(), b.sm.get(), b.si.get(), e);
  };
  auto backward = [&](BnEpilogue act, const float* g) {
    k::batchnorm_act_backward_cuda(s, act, true, b.x.get(), b.y.get(), g, b.gamma.get(),
                                   b.mean.get(), b.invstd.get(), b.gx.get(), b.gg.get(),
                                   b.gb.get(),
                                   act == BnEpilogue::AddRelu ? b.gres.get() : nullptr, e);
  };
  switch (op) {
    case Op::kForwardTrain: train(BnEpilogue::None); break;
    case Op::kForwardEval:
      k::batchnorm_forward_eval_cuda(s, b.x.get(), b.gamma.get(), b.beta.get(), b.rm.get(),
                                     b.rv.get(), kEps, b.y.get(), e);
      break;
    case Op::kBackward: backward(BnEpilogue::None, b.gy.get()); break;
    case Op::kReluFwdFused: train(BnEpilogue::Relu); break;
    case Op::kAddReluFwdFused: train(BnEpilogue::AddRelu); break;
    case Op::kReluFwdUnfused:
    case Op::kAddReluFwdUnfused:
      train(BnEpilogue::None);  // y = bn(x), then out = relu(y [+ r]) (into gx, unused here)
      relu_pass(op == Op::kReluFwdUnfused ? BnEpilogue::Relu : BnEpilogue::AddRelu, b.y.get(),
                b.gx.get());
      break;
    case Op::kReluBwdFused: backward(BnEpilogue::Relu, b.gy.get()); break;
    case Op::kAddReluBwdFused: backward(BnEpilogue::AddRelu, b.gy.get()); break;
    case Op::kReluBwdUnfused:
    case Op::kAddReluBwdUnfused:
      relu_backward_pass(b.gres.get());  // g = gy*(y > 0) (= gresidual for AddRelu)
      backward(BnEpilogue::None, b.gres.get());
      break;
  }
}

void run(benchmark::State& state, Op op, BatchNormShape s, int version) {
  Buffers b(s);
  CudaExec e;
  e.version = version;
  // The warm-up call also takes the cluster-support query out of the timing.
  const double seconds =
      lethe::bench::time_cuda_calls(state, nullptr, [&] { call(op, s, b, e); });
  // Computed here rather than as a kIsRate counter, so it divides by the event time
  // whatever time base the library's rate counters use.
  const double total = bytes_of(op, b.n) * static_cast<double>(state.iterations());
  state.counters["GB/s"] = seconds > 0 ? total / seconds * 1e-9 : 0.0;
}

void register_all() {
  const struct {
    int64_t C, HW;
  } shapes[] = {{64, 1024}, {128, 256}, {256, 64}, {512, 16}};
  const struct {
    const char* name;
    Op op;
    const char* variant;  ///< nullptr: one line per version (cuda_v1, cuda_v2)
  } lines[] = {
      {"BM_BatchNormForwardTrain", Op::kForwardTrain, nullptr},
      {"BM_BatchNormForwardEval", Op::kForwardEval, nullptr},
      {"BM_BatchNormBackward", Op::kBackward, nullptr},
      {"BM_BatchNormReluForward", Op::kReluFwdFused, "fused"},
      {"BM_BatchNormReluForward", Op::kReluFwdUnfused, "unfused"},
      {"BM_BatchNormAddReluForward", Op::kAddReluFwdFused, "fused"},
      {"BM_BatchNormAddReluForward", Op::kAddReluFwdUnfused, "unfused"},
      {"BM_BatchNormReluBackward", Op::kReluBwdFused, "fused"},
      {"BM_BatchNormReluBackward", Op::kReluBwdUnfused, "unfused"},
      {"BM_BatchNormAddReluBackward", Op::kAddReluBwdFused, "fused"},
      {"BM_BatchNormAddReluBackward", Op::kAddReluBwdUnfused, "unfused"},
  };
  for (const auto& sh : shapes) {
    const BatchNormShape s{kBatch, sh.C, sh.HW};
    char shape[64];
    std::snprintf(shape, sizeof shape, "N%lld_C%lld_HW%lld", static_cast<long long>(s.N),
                  static_cast<long long>(s.C), static_cast<long long>(s.HW));
    for (const auto& l : lines)
      for (int version : {1, 2}) {
        if (l.variant != nullptr && version == 1) continue;  // fused vs unfused: v2 only
        char name[160];
        if (l.variant != nullptr)
          std::snprintf(name, sizeof name, "%s/%s/%s", l.name, l.variant, shape);
        else
          std::snprintf(name, sizeof name, "%s/cuda_v%d/%s", l.name, version, shape);
        const Op op = l.op;
        benchmark::RegisterBenchmark(name, [op, s, version](benchmark::State& st) {
          run(st, op, s, version);
        })->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
  }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
