// CUDA sparse conv2d benchmark (kernels/sparse/conv2d_sparse_cuda.cu): v1 "cusparse" and v2
// "direct" on every distinct conv shape of ResNet-18 (CIFAR, width 1.0) at batch 256, at
// 90/95/99% sparsity (seeded uniformly random masks, as bench_conv2d_sparse_cpu), for the three
// products of training, beside a dense baseline: the cuBLAS SGEMMs of the im2col formulation
// on the same shapes (forward K x CRS times CRS x NPQ, backward-data CRS x K times K x NPQ,
// backward-weight K x NPQ times NPQ x CRS), without building im2col, so a lower bound on a
// dense im2col conv. Timed with CUDA events around each call (UseManualTime); counters: ms per
// call and effective GFLOP/s, i.e. the *dense* flops of the conv over the time, so a sparse
// line and the dense line of one shape compare directly (speed-up = ratio of GFLOP/s).
// Names: BM_SparseConv2dCuda/fwd/direct/sparse95/N256_C512_K512_H4_R3_s1 and
//        BM_SparseConv2dCuda/fwd/cublas_dense/N256_C512_K512_H4_R3_s1.
// Run e.g. ./build/bench/bench_conv2d_sparse_cuda --benchmark_filter=sparse95
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cuda_timing.h"
#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/sparse/conv2d_sparse.h"
#include "kernels/sparse/conv2d_sparse_cuda.h"

#define CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                       \
    cublasStatus_t lethe_cb_ = (expr);                                                       \
    LETHE_CHECK(lethe_cb_ == CUBLAS_STATUS_SUCCESS, #expr, " failed: ",                      \
                cublasGetStatusString(lethe_cb_));                                           \
  } while (0)

namespace {

using lethe::bench::Layer;
using lethe::kernels::Conv2dShape;
constexpr int64_t kBatch = 256;

enum class Pass { kForward, kBackwardData, kBackwardWeight };

/// n floats of device memory, freed on scope exit.
class DeviceArray {
 public:
  explicit DeviceArray(int64_t n) {
    CUDA_CHECK(cudaMalloc(&p_, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float)));
  }
  explicit DeviceArray(const std::vector<float>& h) : DeviceArray(static_cast<int64_t>(h.size())) {
    CUDA_CHECK(cudaMemcpy(p_, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  float* get() { return static_cast<float*>(p_); }

 private:
  void* p_ = nullptr;
};

/// Times body() with CUDA events, one measurement per iteration, after one untimed call
/// (cuSPARSE plans, first touches); sets the ms and GFLOP/s (dense flops) counters.
template <typename F>
void time_calls(benchmark::State& state, const Conv2dShape& s, F&& body) {
  const double total_ms = 1e3 * lethe::bench::time_cuda_calls(state, nullptr, body);
  const double iters = static_cast<double>(state.iterations());
  if (iters > 0 && total_ms > 0) {
    state.counters["ms"] = total_ms / iters;
    state.counters["GFLOP/s"] = s.flops() * iters / (total_ms / 1e3) / 1e9;
  }
}

void run_sparse(benchmark::State& state, Conv2dShape s, Pass pass, double sparsity, int version) {
  const int64_t crs = s.C * s.R * s.S, ny = s.N * s.K * s.P() * s.Q();
  const int64_t nx = s.N * s.C * s.H * s.W;
  const auto mask = lethe::bench::random_mask(s.K * crs, sparsity);
  const auto pat = lethe::kernels::SparsePatternCuda::upload(
      lethe::kernels::make_sparse_pattern(s.K, crs, mask.data()), 0);
  DeviceArray x(lethe::bench::random_floats(nx, 1)), w(lethe::bench::random_floats(s.K * crs, 2));
  DeviceArray gy(lethe::bench::random_floats(ny, 4));
  DeviceArray y(ny), gx(nx), gw(s.K * crs);
  lethe::kernels::CudaExec e;
  e.version = version;
  const size_t bytes = lethe::kernels::sparse_conv2d_cuda_workspace_bytes(s, *pat, e);
  void* ws = nullptr;
  if (bytes > 0) CUDA_CHECK(cudaMalloc(&ws, bytes));
  time_calls(state, s, [&] {
    switch (pass) {
      case Pass::kForward:
        lethe::kernels::sparse_conv2d_forward_cuda(s, *pat, x.get(), w.get(), nullptr, y.get(), ws,
                                                   bytes, e);
        break;
      case Pass::kBackwardData:
        lethe::kernels::sparse_conv2d_backward_data_cuda(s, *pat, gy.get(), w.get(), gx.get(), ws,
                                                         bytes, e);
        break;
      case Pass::kBackwardWeight:
        lethe::kernels::sparse_conv2d_backward_weight_cuda(s, *pat, x.get(), gy.get(), gw.get(),
                                                           nullptr, ws, bytes, e);
        break;
    }
  });
  if (ws) CUDA_CHECK(cudaFree(ws));
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle = nullptr;
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));  // fp32, no TF32
    return handle;
  }();
  return h;
}

// The dense products as row-major GEMMs. cuBLAS is column-major, and a row-major M x N matrix
// is the column-major N x M transpose, so row-major C = A * B is computed as C^T = B^T * A^T.
void run_dense(benchmark::State& state, Conv2dShape s, Pass pass) {
  const int K = static_cast<int>(s.K), CRS = static_cast<int>(s.C * s.R * s.S);
  const int NPQ = static_cast<int>(s.N * s.P() * s.Q());
  // Zeros: the values do not change the time of a dense product.
  DeviceArray w(int64_t{K} * CRS), col(int64_t{CRS} * NPQ), out(int64_t{K} * NPQ);
  CUDA_CHECK(cudaMemset(w.get(), 0, sizeof(float) * K * CRS));
  CUDA_CHECK(cudaMemset(col.get(), 0, sizeof(float) * CRS * static_cast<size_t>(NPQ)));
  CUDA_CHECK(cudaMemset(out.get(), 0, sizeof(float) * K * static_cast<size_t>(NPQ)));
  const float one = 1.f, zero = 0.f;
  const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  cublasHandle_t h = cublas();
  time_calls(state, s, [&] {
    switch (pass) {
      case Pass::kForward:  // y (K x NPQ) = w (K x CRS) * col (CRS x NPQ)
        CUBLAS_CHECK(cublasSgemm(h, N, N, NPQ, K, CRS, &one, col.get(), NPQ, w.get(), CRS, &zero,
                                 out.get(), NPQ));
        break;
      case Pass::kBackwardData:  // col_g (CRS x NPQ) = w^T (CRS x K) * gy (K x NPQ)
        CUBLAS_CHECK(cublasSgemm(h, N, T, NPQ, CRS, K, &one, out.get(), NPQ, w.get(), CRS, &zero,
                                 col.get(), NPQ));
        break;
      case Pass::kBackwardWeight:  // gw (K x CRS) = gy (K x NPQ) * col^T (NPQ x CRS)
        CUBLAS_CHECK(cublasSgemm(h, T, N, CRS, K, NPQ, &one, col.get(), NPQ, out.get(), NPQ, &zero,
                                 w.get(), CRS));
        break;
    }
  });
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
  } levels[] = {{"sparse90", 0.90}, {"sparse95", 0.95}, {"sparse99", 0.99}};
  for (const auto& p : passes)
    for (const Layer& l : lethe::bench::kResNet18Layers) {
      const Conv2dShape s = lethe::bench::shape_of(l, kBatch);
      const std::string shape = lethe::bench::shape_name(s);
      char name[160];
      std::snprintf(name, sizeof name, "BM_SparseConv2dCuda/%s/cublas_dense/%s", p.name,
                    shape.c_str());
      benchmark::RegisterBenchmark(name, run_dense, s, p.pass)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
      for (int v = 1; v <= lethe::kernels::sparse_conv2d_cuda_versions(); ++v)
        for (const auto& lv : levels) {
          std::snprintf(name, sizeof name, "BM_SparseConv2dCuda/%s/%s/%s/%s", p.name,
                        lethe::kernels::sparse_conv2d_cuda_version_name(v), lv.name, shape.c_str());
          benchmark::RegisterBenchmark(name, run_sparse, s, p.pass, lv.sparsity, v)
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
        }
    }
}

}  // namespace

int main(int argc, char** argv) { return lethe::bench::run_main(argc, argv, register_all); }
