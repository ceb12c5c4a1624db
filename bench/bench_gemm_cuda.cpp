// CUDA GEMM benchmark: gemm_cuda's versions (kernels/cuda/gemm.cu) against cuBLAS in the same
// binary, on the GEMMs that im2col makes of ResNet-18 (CIFAR variant, width 1.0) at batch 32,
// for every distinct conv layer:
//   forward          W (K x CRS) * col (CRS x NPQ)          M = K,   N = NPQ, K = CRS
//   backward-data    W^T (CRS x K) * gy (K x NPQ)           M = CRS, N = NPQ, K = K    (_tA)
//   backward-weight  gy (K x NPQ) * col^T (NPQ x CRS)       M = K,   N = CRS, K = NPQ  (_tB)
// plus the classifier 512 -> 10 at batch 256 (forward, gx, gw) and a square 4096 product.
// Each call is timed with CUDA events around it on the stream (UseManualTime, so host
// overhead is excluded); the counter GFLOP/s is 2*M*N*K over that time. Baselines:
// cublasSgemm with CUBLAS_DEFAULT_MATH (fp32 FMA: no TF32 for fp32 inputs; what v1/v2 compete
// with) and with CUBLAS_TF32_TENSOR_OP_MATH (what v3 competes with).
// Names: BM_Gemm/cuda_v2/M512_N512_K4608, BM_Gemm/cublas_tf32/M4608_N512_K512_tA. On the GPU
// machine: ./build/bench/bench_gemm_cuda --benchmark_filter=M512_N512_K4608
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cuda_timing.h"
#include "kernels/check.h"
#include "kernels/gemm.h"

namespace {

using lethe::kernels::CudaExec;
using lethe::kernels::CudaMath;

struct GemmShape {
  int64_t M, N, K;
  bool ta = false, tb = false;
};

enum class Impl { kLethe, kCublasFp32, kCublasTf32 };
struct Variant {
  const char* name;
  Impl impl;
  int version;  // of gemm_cuda (kLethe only)
  CudaMath math;
};
const Variant kVariants[] = {
    {"cuda_v1", Impl::kLethe, 1, CudaMath::FP32},
    {"cuda_v2", Impl::kLethe, 2, CudaMath::FP32},
    {"cuda_v3", Impl::kLethe, 3, CudaMath::TF32},
    {"cublas_fp32", Impl::kCublasFp32, 0, CudaMath::FP32},
    {"cublas_tf32", Impl::kCublasTf32, 0, CudaMath::TF32},
};

void cublas_check(cublasStatus_t st, const char* what) {
  LETHE_CHECK(st == CUBLAS_STATUS_SUCCESS, what, " failed: ", cublasGetStatusString(st));
}

// RAII owners, so a failed check (an exception) frees what was made.
struct DeviceArray {
  float* p = nullptr;
  explicit DeviceArray(const std::vector<float>& host) {
    const size_t bytes = (host.empty() ? 1 : host.size()) * sizeof(float);
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), bytes));
    CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceArray() { CUDA_CHECK_NOTHROW(cudaFree(p)); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
};
/// A stream of its own, so the events time only this benchmark's work.
struct Stream {
  cudaStream_t stream = nullptr;
  Stream() { CUDA_CHECK(cudaStreamCreate(&stream)); }
  ~Stream() { CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};
struct Cublas {
  cublasHandle_t h = nullptr;
  Cublas(cudaStream_t stream, cublasMath_t math) {
    cublas_check(cublasCreate(&h), "cublasCreate");
    cublas_check(cublasSetStream(h, stream), "cublasSetStream");
    cublas_check(cublasSetMathMode(h, math), "cublasSetMathMode");
  }
  ~Cublas() { cublasDestroy(h); }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
};

void run_body(benchmark::State& state, const GemmShape& g, const Variant& v) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    state.SkipWithError("no CUDA device");
    return;
  }
  // Stored operands: A is M x K (K x M when transposed), B is K x N (N x K), C is M x N.
  const int64_t lda = g.ta ? g.M : g.K, ldb = g.tb ? g.K : g.N, ldc = g.N;
  const DeviceArray A(lethe::bench::random_floats(g.M * g.K, 1));
  const DeviceArray B(lethe::bench::random_floats(g.K * g.N, 2));
  const DeviceArray C(std::vector<float>(static_cast<size_t>(g.M * g.N)));
  const Stream se;
  const bool use_cublas = v.impl != Impl::kLethe;
  const Cublas cublas(se.stream, v.impl == Impl::kCublasTf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                             : CUBLAS_DEFAULT_MATH);
  const float one = 1.f, zero = 0.f;
  const auto launch = [&] {
    if (!use_cublas) {
      lethe::kernels::gemm_cuda(g.ta, g.tb, g.M, g.N, g.K, 1.f, A.p, lda, B.p, ldb, 0.f, C.p,
                                ldc, CudaExec{se.stream, v.version, v.math});
      return;
    }
    // cuBLAS is column-major. A row-major matrix read column-major is its transpose, so the
    // row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands,
    // keep each one's transpose flag, and swap M and N.
    cublas_check(cublasSgemm(cublas.h, g.tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                             g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.N),
                             static_cast<int>(g.M), static_cast<int>(g.K), &one, B.p,
                             static_cast<int>(ldb), A.p, static_cast<int>(lda), &zero, C.p,
                             static_cast<int>(ldc)),
                 "cublasSgemm");
  };
  // The warm-up call takes module loading and cuBLAS's heuristics and workspace out.
  const double seconds = lethe::bench::time_cuda_calls(state, se.stream, launch);
  // Computed here from the event time rather than as a rate counter, which this library
  // version may divide by CPU time.
  const double flops = 2.0 * g.M * g.N * g.K * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = seconds > 0 ? flops / seconds * 1e-9 : 0.0;
}

void run(benchmark::State& state, GemmShape g, Variant v) {
  try {
    run_body(state, g, v);
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}

/// "M512_N512_K4608", with "_tA" / "_tB" when an operand is stored transposed.
std::string shape_name(const GemmShape& g) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "M%lld_N%lld_K%lld%s%s", static_cast<long long>(g.M),
                static_cast<long long>(g.N), static_cast<long long>(g.K), g.ta ? "_tA" : "",
                g.tb ? "_tB" : "");
  return buf;
}

std::vector<GemmShape> shapes() {
  constexpr int64_t kBatch = 32;
  std::vector<GemmShape> out;
  for (const lethe::bench::Layer& l : lethe::bench::kResNet18Layers) {
    const auto s = lethe::bench::shape_of(l, kBatch);
    const int64_t npq = s.N * s.P() * s.Q(), crs = s.C * s.R * s.S;
    out.push_back({s.K, npq, crs});               // forward
    out.push_back({crs, npq, s.K, true, false});  // backward-data
    out.push_back({s.K, crs, npq, false, true});  // backward-weight
  }
  out.push_back({256, 10, 512, false, true});   // classifier forward: x * w^T
  out.push_back({256, 512, 10});                // classifier gx = gy * w
  out.push_back({10, 512, 256, true, false});   // classifier gw = gy^T * x
  out.push_back({4096, 4096, 4096});            // square, for comparison with published figures
  return out;
}

void register_all() {
  std::set<std::string> seen;  // layers sharing a GEMM shape are measured once
  for (const GemmShape& g : shapes()) {
    const std::string shape = shape_name(g);
    if (!seen.insert(shape).second) continue;
    for (const Variant& v : kVariants) {
      char name[160];
      std::snprintf(name, sizeof name, "BM_Gemm/%s/%s", v.name, shape.c_str());
      benchmark::RegisterBenchmark(name, run, g, v)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
