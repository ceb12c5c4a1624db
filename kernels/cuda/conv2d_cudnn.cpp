// conv2d through cuDNN's convolution API (kernels/conv2d_cudnn.h). One plan per (shape, math
// mode): tensor/filter/convolution descriptors and the heuristic's algorithm for each of the
// three products, built on first use and kept for the process (a training run has a dozen
// distinct shapes). The legacy convolution API is deprecated in cuDNN 9 in favour of the
// graph API; it is still shipped and is what PyTorch's cuDNN path used for years, which is
// what a baseline wants.
#include <cudnn.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "kernels/check.h"
#include "kernels/conv2d_cudnn.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define CUDNN_CHECK(expr)                                                                  \
  do {                                                                                     \
    cudnnStatus_t lethe_st_ = (expr);                                                      \
    LETHE_CHECK(lethe_st_ == CUDNN_STATUS_SUCCESS, #expr, " failed: ",                     \
                cudnnGetErrorString(lethe_st_));                                           \
  } while (0)

namespace lethe::kernels {
namespace {

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t workspace = 0;
};

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int>;

struct State {
  std::mutex mutex;
  cudnnHandle_t handle = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

State& state() {
  static State* s = new State();  // never destroyed: the driver may be gone at exit
  return *s;
}

int as_int(int64_t v, const char* what) {
  LETHE_CHECK(v >= 0 && v <= (int64_t{1} << 31) - 1, "conv2d (cudnn): ", what, " = ", v,
              " does not fit cuDNN's int");
  return static_cast<int>(v);
}

/// The first (fastest by cuDNN's heuristic) usable algorithm: status success, and in fp32 mode
/// FMA math only, so that a TF32 tensor-op algorithm is never taken behind fp32's back.
template <typename Perf>
const Perf& choose(const Perf* perf, int found, CudaMath math, const char* product) {
  for (int i = 0; i < found; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (math == CudaMath::FP32 && perf[i].mathType != CUDNN_FMA_MATH) continue;
    return perf[i];
  }
  LETHE_CHECK(false, "conv2d (cudnn): no ", product, " algorithm for this shape in ",
              math == CudaMath::FP32 ? "fp32 (FMA-only)" : "tf32", " mode");
}

/// The plan for shape s (created on first use), with the handle bound to e's stream.
Plan& plan_for(const Conv2dShape& s, const CudaExec& e, cudnnHandle_t& handle) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  if (!st.handle) CUDNN_CHECK(cudnnCreate(&st.handle));
  CUDNN_CHECK(cudnnSetStream(st.handle, reinterpret_cast<cudaStream_t>(e.stream)));
  handle = st.handle;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  LETHE_CHECK(device == 0, "conv2d (cudnn): the cuDNN backend uses cuda:0 only so far");
  const Key key{s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad, static_cast<int>(e.math)};
  std::unique_ptr<Plan>& slot = st.plans[key];
  if (slot) return *slot;

  auto p = std::make_unique<Plan>();
  const int N = as_int(s.N, "N"), C = as_int(s.C, "C"), H = as_int(s.H, "H"),
            W = as_int(s.W, "W"), K = as_int(s.K, "K"), R = as_int(s.R, "R"),
            S = as_int(s.S, "S"), P = as_int(s.P(), "P"), Q = as_int(s.Q(), "Q");
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->bias));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, K, P, Q));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, K, 1, 1));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, K, C, R, S));
  const int pad = as_int(s.pad, "pad"), stride = as_int(s.stride, "stride");
  // Cross-correlation (no filter flip), as every deep-learning framework's "convolution".
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, pad, pad, stride, stride, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // fp32 mode must never use tensor cores (TF32); tf32 mode lets cuDNN choose them.
  CUDNN_CHECK(cudnnSetConvolutionMathType(
      p->conv, e.math == CudaMath::TF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));

  int found = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, p->x, p->w, p->conv, p->y,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, fwd));
  p->fwd = choose(fwd, found, e.math, "forward").algo;
  cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
      handle, p->w, p->y, p->conv, p->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, bd));
  p->bwd_data = choose(bd, found, e.math, "backward-data").algo;
  cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle, p->x, p->y, p->conv, p->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, bf));
  p->bwd_filter = choose(bf, found, e.math, "backward-filter").algo;

  size_t a = 0, b = 0, c = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, p->x, p->w, p->conv, p->y, p->fwd, &a));
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, p->w, p->y, p->conv, p->x,
                                                           p->bwd_data, &b));
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, p->x, p->y, p->conv, p->w,
                                                             p->bwd_filter, &c));
  p->workspace = std::max(a, std::max(b, c));
  slot = std::move(p);
  return *slot;
}

void check_workspace(const Plan& p, size_t have, const char* op) {
  LETHE_CHECK(have >= p.workspace, op, " (cudnn): workspace of ", have, " bytes, needs ",
              p.workspace, " (conv2d_cudnn_workspace_bytes)");
}

}  // namespace

size_t conv2d_cudnn_workspace_bytes(const Conv2dShape& s, const CudaExec& e) {
  cudnnHandle_t h = nullptr;
  return plan_for(s, e, h).workspace;
}

void conv2d_forward_cudnn(const Conv2dShape& s, const float* x, const float* w,
                          const float* bias, float* y, void* workspace, size_t workspace_bytes,
                          const CudaExec& e) {
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(s, e, h);
  check_workspace(p, workspace_bytes, "conv2d forward");
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.conv, p.fwd, workspace,
                                      workspace_bytes, &zero, p.y, y));
  if (bias) CUDNN_CHECK(cudnnAddTensor(h, &one, p.bias, bias, &one, p.y, y));
}

void conv2d_backward_data_cudnn(const Conv2dShape& s, const float* gy, const float* w, float* gx,
                                void* workspace, size_t workspace_bytes, const CudaExec& e) {
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(s, e, h);
  check_workspace(p, workspace_bytes, "conv2d backward-data");
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, gy, p.conv, p.bwd_data,
                                           workspace, workspace_bytes, &zero, p.x, gx));
}

void conv2d_backward_weight_cudnn(const Conv2dShape& s, const float* x, const float* gy,
                                  float* gw, float* gb, void* workspace, size_t workspace_bytes,
                                  const CudaExec& e) {
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(s, e, h);
  check_workspace(p, workspace_bytes, "conv2d backward-weight");
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, gy, p.conv, p.bwd_filter,
                                             workspace, workspace_bytes, &zero, p.w, gw));
  if (gb) CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, p.y, gy, &zero, p.bias, gb));
}

std::string conv2d_cudnn_algorithms(const Conv2dShape& s, const CudaExec& e) {
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(s, e, h);
  return "cudnn:" + std::to_string(static_cast<int>(p.fwd)) + "/" +
         std::to_string(static_cast<int>(p.bwd_data)) + "/" +
         std::to_string(static_cast<int>(p.bwd_filter));
}

}  // namespace lethe::kernels
