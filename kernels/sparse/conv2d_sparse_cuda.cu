// Sparse conv2d on CUDA (kernels/sparse/conv2d_sparse_cuda.h): the pattern upload, what both
// versions share, the argument checks and the public entry points. The versions themselves:
// conv2d_sparse_cusparse.cu (v1) and conv2d_sparse_direct.cu (v2).
//
// Every entry point does the same: (1) check the shape against the pattern, the device and
// the workspace; (2) gather the weight's kept values into the pattern's value buffers (CSR
// order for the forward, transposed order for backward-data), so the products never read the
// pruned positions and an optimizer's in-place update is always seen; (3) handle the cases
// with nothing to multiply (N = 0, or a fully pruned layer, nnz = 0) with fills, which keeps
// every version free of empty-matrix corner cases; (4) dispatch on the version.
//
// Shared kernels (grid-stride loops, 256 threads, one output element per thread, each output
// written by exactly one thread, so no atomics and a fixed order):
//   gather_values / gather_transposed_values   vals[i] = w[k, j] of entry i
//   fill_bias                                  y = bias broadcast (a fully pruned layer)
//   scatter_weight_grad                        gw = 0, then the kept entries
//   bias_grad                                  one block per k, block_sum over n, p, q
// Tests: tests/cuda/test_conv2d_sparse_cuda.cpp.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/check.h"
#include "kernels/sparse/conv2d_sparse_cuda.h"
#include "kernels/sparse/conv2d_sparse_cuda_internal.cuh"

namespace lethe::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxElems = (int64_t{1} << 31) - 1;

/// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { CUDA_CHECK_NOTHROW(cudaSetDevice(prev_)); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
};

}  // namespace

std::shared_ptr<SparsePatternCuda> SparsePatternCuda::upload(const SparsePattern& pat,
                                                             int device) {
  const int64_t nnz = pat.nnz();
  LETHE_CHECK(pat.rows > 0 && pat.cols > 0 &&
                  static_cast<int64_t>(pat.row_ptr.size()) == pat.rows + 1 &&
                  static_cast<int64_t>(pat.t_ptr.size()) == pat.cols + 1 &&
                  pat.t_row.size() == pat.col_idx.size() && pat.t_src.size() == pat.col_idx.size(),
              "SparsePatternCuda::upload: the pattern is not a complete CSR + transpose of a ",
              pat.rows, " x ", pat.cols, " matrix (build it with make_sparse_pattern)");
  LETHE_CHECK(pat.rows * pat.cols <= kMaxElems, "SparsePatternCuda::upload: a ", pat.rows, " x ",
              pat.cols, " weight is too large for the int32 indices of the CUDA kernels");

  // The int32 arrays, laid end to end in one host vector and one device allocation.
  const int64_t n_ints = (pat.rows + 1) + (pat.cols + 1) + 4 * nnz;
  std::vector<int32_t> host;
  host.reserve(static_cast<size_t>(n_ints));
  for (int64_t v : pat.row_ptr) host.push_back(static_cast<int32_t>(v));
  host.insert(host.end(), pat.col_idx.begin(), pat.col_idx.end());
  for (int64_t k = 0; k < pat.rows; ++k) {  // row_idx: row k once per entry of row k
    const auto k0 = static_cast<size_t>(k);
    host.insert(host.end(), static_cast<size_t>(pat.row_ptr[k0 + 1] - pat.row_ptr[k0]),
                static_cast<int32_t>(k));
  }
  for (int64_t v : pat.t_ptr) host.push_back(static_cast<int32_t>(v));
  host.insert(host.end(), pat.t_row.begin(), pat.t_row.end());
  for (int64_t v : pat.t_src) host.push_back(static_cast<int32_t>(v));

  DeviceGuard guard(device);
  // Owned from here on: if an allocation below throws, the destructor frees the rest.
  std::shared_ptr<SparsePatternCuda> p(new SparsePatternCuda());
  p->device = device;
  p->rows = pat.rows;
  p->cols = pat.cols;
  p->nnz = nnz;
  CUDA_CHECK(cudaMalloc(&p->ints_, host.size() * sizeof(int32_t)));
  CUDA_CHECK(cudaMemcpy(p->ints_, host.data(), host.size() * sizeof(int32_t),
                        cudaMemcpyHostToDevice));
  int32_t* cur = static_cast<int32_t*>(p->ints_);
  p->row_ptr = cur;
  cur += pat.rows + 1;
  p->col_idx = cur;
  cur += nnz;
  p->row_idx = cur;
  cur += nnz;
  p->t_ptr = cur;
  cur += pat.cols + 1;
  p->t_row = cur;
  cur += nnz;
  p->t_src = cur;
  CUDA_CHECK(cudaMalloc(&p->floats_, static_cast<size_t>(nnz > 0 ? 2 * nnz : 1) * sizeof(float)));
  p->vals = static_cast<float*>(p->floats_);
  p->tvals = p->vals + nnz;
  return p;
}

SparsePatternCuda::~SparsePatternCuda() {
  plans.reset();  // cuSPARSE descriptors first: they point into the arrays freed below
  if (ints_) CUDA_CHECK_NOTHROW(cudaFree(ints_));
  if (floats_) CUDA_CHECK_NOTHROW(cudaFree(floats_));
}

namespace sparse_cuda {

using cuda::blocks_for;
using cuda::check_launch;

Geom geom_of(const Conv2dShape& s) {
  Geom g;
  g.N = static_cast<int>(s.N);
  g.C = static_cast<int>(s.C);
  g.H = static_cast<int>(s.H);
  g.W = static_cast<int>(s.W);
  g.K = static_cast<int>(s.K);
  g.R = static_cast<int>(s.R);
  g.S = static_cast<int>(s.S);
  g.P = static_cast<int>(s.P());
  g.Q = static_cast<int>(s.Q());
  g.stride = static_cast<int>(s.stride);
  g.pad = static_cast<int>(s.pad);
  g.HW = g.H * g.W;
  g.PQ = g.P * g.Q;
  g.RS = g.R * g.S;
  g.CRS = g.C * g.RS;
  return g;
}

namespace {

__global__ void gather_values_kernel(int nnz, int crs, const int32_t* __restrict__ row_idx,
                                     const int32_t* __restrict__ col_idx,
                                     const float* __restrict__ w, float* __restrict__ vals) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < nnz; i += gridDim.x * blockDim.x)
    vals[i] = w[static_cast<int64_t>(row_idx[i]) * crs + col_idx[i]];
}

// Transposed entry e is CSR entry t_src[e]: row t_row[e], column col_idx[t_src[e]].
__global__ void gather_transposed_kernel(int nnz, int crs, const int32_t* __restrict__ t_row,
                                         const int32_t* __restrict__ t_src,
                                         const int32_t* __restrict__ col_idx,
                                         const float* __restrict__ w, float* __restrict__ tvals) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < nnz; e += gridDim.x * blockDim.x)
    tvals[e] = w[static_cast<int64_t>(t_row[e]) * crs + col_idx[t_src[e]]];
}

__global__ void fill_bias_kernel(int64_t total, int K, int PQ, const float* __restrict__ bias,
                                 float* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = bias ? bias[(i / PQ) % K] : 0.f;  // y is (N, K, PQ): i / PQ = n*K + k
}

__global__ void scatter_kernel(int nnz, int crs, const int32_t* __restrict__ row_idx,
                               const int32_t* __restrict__ col_idx,
                               const float* __restrict__ gvals, float* __restrict__ gw) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < nnz; i += gridDim.x * blockDim.x)
    gw[static_cast<int64_t>(row_idx[i]) * crs + col_idx[i]] = gvals[i];
}

// One block per output channel k. Thread t sums positions u = t, t + T, ... of the N*PQ
// values of channel k (u = n*PQ + pq), then block_sum folds the threads in a fixed order.
__global__ void bias_grad_kernel(Geom g, const float* __restrict__ gy, float* __restrict__ gb) {
  __shared__ float scratch[32];
  const int k = blockIdx.x;
  const int npq = g.N * g.PQ;
  float acc = 0.f;
  for (int u = threadIdx.x; u < npq; u += blockDim.x) {
    const int n = u / g.PQ, pq = u - n * g.PQ;
    acc += gy[(static_cast<int64_t>(n) * g.K + k) * g.PQ + pq];
  }
  acc = cuda::block_sum(acc, scratch);
  if (threadIdx.x == 0) gb[k] = acc;
}

}  // namespace

void gather_values(SparsePatternCuda& p, const float* w, cudaStream_t st) {
  if (p.nnz == 0) return;
  gather_values_kernel<<<blocks_for(p.nnz, kThreads), kThreads, 0, st>>>(
      static_cast<int>(p.nnz), static_cast<int>(p.cols), p.row_idx, p.col_idx, w, p.vals);
  check_launch("sparse_conv2d gather_values_kernel", st);
}

void gather_transposed_values(SparsePatternCuda& p, const float* w, cudaStream_t st) {
  if (p.nnz == 0) return;
  gather_transposed_kernel<<<blocks_for(p.nnz, kThreads), kThreads, 0, st>>>(
      static_cast<int>(p.nnz), static_cast<int>(p.cols), p.t_row, p.t_src, p.col_idx, w,
      p.tvals);
  check_launch("sparse_conv2d gather_transposed_kernel", st);
}

void fill_bias(const Geom& g, const float* bias, float* y, cudaStream_t st) {
  const int64_t total = static_cast<int64_t>(g.N) * g.K * g.PQ;
  if (total == 0) return;
  fill_bias_kernel<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, g.K, g.PQ, bias, y);
  check_launch("sparse_conv2d fill_bias_kernel", st);
}

void scatter_weight_grad(const SparsePatternCuda& p, const float* gvals, float* gw,
                         cudaStream_t st) {
  // Stream order makes the memset finish before the scatter writes the kept entries.
  CUDA_CHECK(cudaMemsetAsync(gw, 0, static_cast<size_t>(p.rows * p.cols) * sizeof(float), st));
  if (p.nnz == 0) return;
  scatter_kernel<<<blocks_for(p.nnz, kThreads), kThreads, 0, st>>>(
      static_cast<int>(p.nnz), static_cast<int>(p.cols), p.row_idx, p.col_idx, gvals, gw);
  check_launch("sparse_conv2d scatter_kernel", st);
}

void bias_grad(const Geom& g, const float* gy, float* gb, cudaStream_t st) {
  bias_grad_kernel<<<g.K, kThreads, 0, st>>>(g, gy, gb);
  check_launch("sparse_conv2d bias_grad_kernel", st);
}

}  // namespace sparse_cuda

// ---- entry points ---------------------------------------------------------------------

namespace {

using sparse_cuda::Geom;

constexpr int kVersions = 2;
constexpr int kDefaultVersion = 2;  // provisional: see the header

/// The shape's checks against the pattern; the kernels' int32 limits.
Geom check_shape(const Conv2dShape& s, const SparsePatternCuda& p, const char* op) {
  LETHE_CHECK(s.N >= 0 && s.C > 0 && s.K > 0 && s.H > 0 && s.W > 0 && s.R > 0 && s.S > 0 &&
                  s.stride > 0 && s.pad >= 0 && s.H + 2 * s.pad >= s.R &&
                  s.W + 2 * s.pad >= s.S && s.R <= 4096 && s.S <= 4096 && s.pad <= 4096,
              op, ": bad shape (N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K, " R=",
              s.R, " S=", s.S, " stride=", s.stride, " pad=", s.pad, ")");
  LETHE_CHECK(p.rows == s.K && p.cols == s.C * s.R * s.S, op, ": the pattern is ", p.rows, " x ",
              p.cols, " but the weight is ", s.K, " x ", s.C * s.R * s.S);
  LETHE_CHECK(s.N * s.C * s.H * s.W <= kMaxElems && s.N * s.K * s.P() * s.Q() <= kMaxElems, op,
              ": tensors of 2^31 or more elements are not supported (N=", s.N, ")");
  return sparse_cuda::geom_of(s);
}

int version_of(const CudaExec& e, const char* op) {
  LETHE_CHECK(e.version >= 0 && e.version <= kVersions, op, ": version ", e.version,
              " does not exist (0 = default, 1..", kVersions, ")");
  return e.version == 0 ? kDefaultVersion : e.version;
}

size_t workspace_for(const Geom& g, const SparsePatternCuda& p, int v) {
  if (v == 1 && g.N > 0 && p.nnz > 0) return sparse_cuda::cusparse_workspace_bytes(g, p.nnz);
  return 0;
}

/// Everything a call checks before touching the device; returns the version to run.
int check_call(const Conv2dShape& s, const SparsePatternCuda& p, const CudaExec& e,
               void* workspace, size_t workspace_bytes, const char* op, Geom* g) {
  *g = check_shape(s, p, op);
  const int v = version_of(e, op);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  LETHE_CHECK(device == p.device, op, ": the pattern lives on device ", p.device,
              " but device ", device, " is current");
  const size_t need = workspace_for(*g, p, v);
  LETHE_CHECK(workspace_bytes >= need && (need == 0 || workspace != nullptr), op, ": version ",
              sparse_conv2d_cuda_version_name(v), " needs ", need, " bytes of workspace, got ",
              workspace_bytes, " (ask sparse_conv2d_cuda_workspace_bytes)");
  return v;
}

}  // namespace

int sparse_conv2d_cuda_versions() { return kVersions; }

int sparse_conv2d_cuda_resolved_version(const CudaExec& e) {
  return version_of(e, "sparse_conv2d_cuda_resolved_version");
}

const char* sparse_conv2d_cuda_version_name(int v) {
  switch (v) {
    case 1:
      return "cusparse";
    case 2:
      return "direct";
    default:
      return "unknown";
  }
}

size_t sparse_conv2d_cuda_workspace_bytes(const Conv2dShape& s, const SparsePatternCuda& p,
                                          const CudaExec& e) {
  const Geom g = check_shape(s, p, "sparse_conv2d_cuda_workspace_bytes");
  return workspace_for(g, p, version_of(e, "sparse_conv2d_cuda_workspace_bytes"));
}

void sparse_conv2d_forward_cuda(const Conv2dShape& s, SparsePatternCuda& p, const float* x,
                                const float* w, const float* bias, float* y, void* workspace,
                                size_t workspace_bytes, const CudaExec& e) {
  Geom g;
  const int v = check_call(s, p, e, workspace, workspace_bytes, "sparse_conv2d_forward_cuda", &g);
  if (g.N == 0) return;
  LETHE_CHECK(x && w && y, "sparse_conv2d_forward_cuda: x, w and y must not be null");
  const cudaStream_t st = cuda::stream_of(e);
  if (p.nnz == 0) {  // a fully pruned layer: y = bias
    sparse_cuda::fill_bias(g, bias, y, st);
    return;
  }
  sparse_cuda::gather_values(p, w, st);
  if (v == 1)
    sparse_cuda::cusparse_forward(g, p, x, bias, y, workspace, workspace_bytes, st);
  else
    sparse_cuda::direct_forward(g, p, x, bias, y, st);
}

void sparse_conv2d_backward_data_cuda(const Conv2dShape& s, SparsePatternCuda& p,
                                      const float* gy, const float* w, float* gx,
                                      void* workspace, size_t workspace_bytes,
                                      const CudaExec& e) {
  Geom g;
  const int v =
      check_call(s, p, e, workspace, workspace_bytes, "sparse_conv2d_backward_data_cuda", &g);
  if (g.N == 0) return;
  LETHE_CHECK(gy && w && gx, "sparse_conv2d_backward_data_cuda: gy, w and gx must not be null");
  const cudaStream_t st = cuda::stream_of(e);
  if (p.nnz == 0) {  // a fully pruned layer passes no gradient back
    CUDA_CHECK(cudaMemsetAsync(
        gx, 0, static_cast<size_t>(s.N * s.C * s.H * s.W) * sizeof(float), st));
    return;
  }
  sparse_cuda::gather_transposed_values(p, w, st);
  if (v == 1)
    sparse_cuda::cusparse_backward_data(g, p, gy, gx, workspace, workspace_bytes, st);
  else
    sparse_cuda::direct_backward_data(g, p, gy, gx, st);
}

void sparse_conv2d_backward_weight_cuda(const Conv2dShape& s, SparsePatternCuda& p,
                                        const float* x, const float* gy, float* gw, float* gb,
                                        void* workspace, size_t workspace_bytes,
                                        const CudaExec& e) {
  Geom g;
  const int v =
      check_call(s, p, e, workspace, workspace_bytes, "sparse_conv2d_backward_weight_cuda", &g);
  LETHE_CHECK(gw && (g.N == 0 || (x && gy)),
              "sparse_conv2d_backward_weight_cuda: x, gy and gw must not be null");
  const cudaStream_t st = cuda::stream_of(e);
  if (g.N == 0 || p.nnz == 0) {  // nothing to sum, or nowhere to put it: gw = 0
    CUDA_CHECK(cudaMemsetAsync(gw, 0, static_cast<size_t>(p.rows * p.cols) * sizeof(float), st));
  } else if (v == 1) {
    sparse_cuda::cusparse_backward_weight(g, p, x, gy, gw, workspace, workspace_bytes, st);
  } else {
    sparse_cuda::direct_backward_weight(g, p, x, gy, gw, st);
  }
  if (gb) sparse_cuda::bias_grad(g, gy, gb, st);
}

}  // namespace lethe::kernels
