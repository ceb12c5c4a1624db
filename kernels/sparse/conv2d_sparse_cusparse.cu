// Sparse conv2d v1 "cusparse" (kernels/sparse/conv2d_sparse_cuda.h): im2col + cuSPARSE.
//
// The batch is cut into chunks of nb images (the last may hold fewer) whose L = nb*P*Q output
// positions are the columns of the dense matrices, t = b*PQ + p*Q + q for image n0 + b. A chunk
// keeps its dense blocks within kChunkBytes / kChunkCols so they stay near L2 while cuSPARSE
// reads them once per kept weight. All dense matrices are row-major; a K x L or CRS x L block
// has leading dimension ld (a full chunk's L rounded up to 4 floats, 16 bytes).
//   forward, per chunk:    col (CRS x L) = im2col(x)          [im2col_kernel]
//                          tmp (K x L)   = W (CSR) * col       [cusparseSpMM]
//                          y[n,k,:]      = tmp[k, b*PQ:] + b[k] [epilogue_kernel: NCHW]
//   backward-data:         gyc (K x L)   = gy of the chunk      [gather_gy_kernel]
//                          colg (CRS x L) = W^T (CSR) * gyc     [cusparseSpMM]
//                          gx = col2im(colg), gather form: each input pixel sums the
//                          (r, s) taps that read it, in a fixed order [col2im_kernel]
//   backward-weight:       gvals (nnz) = 0, then per chunk
//                          colT (L x CRS) = im2col(x), transposed layout
//                          gyc (K x L)
//                          gvals += (gyc * colT) sampled at the pattern [cusparseSDDMM]
//                          then gw = scatter(gvals) (0 elsewhere)
// W^T is the pattern's transposed copy read as a CSR matrix (t_ptr, t_row, values gathered in
// transposed order): cuSPARSE's CUSPARSE_OPERATION_TRANSPOSE is never used, as it may give
// different roundings from run to run. The SpMM algorithm is CUSPARSE_SPMM_CSR_ALG2, the
// deterministic CSR algorithm made for row-major dense matrices. The chunks are summed in
// order (beta = 1 on a zeroed gvals), so backward-weight is deterministic as long as the
// SDDMM itself is (it computes each sampled entry as one dot product).
//
// Plans: per pattern and (product, L, ld) one set of descriptors, the external buffer and one
// cusparseSpMM_preprocess / cusparseSDDMM_preprocess, made on first use and kept with the
// pattern (a full chunk and a tail chunk are two plans). Every call only repoints the dense
// descriptors at this call's workspace. The cuSPARSE handle is one per device for the
// process, behind a mutex that each call holds while it enqueues its work.
#include <cuda_runtime.h>
#include <cusparse.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "kernels/check.h"
#include "kernels/sparse/conv2d_sparse_cuda_internal.cuh"

#define CUSPARSE_CHECK(expr)                                                               \
  do {                                                                                     \
    cusparseStatus_t lethe_sp_ = (expr);                                                   \
    LETHE_CHECK(lethe_sp_ == CUSPARSE_STATUS_SUCCESS, #expr, " failed: ",                  \
                cusparseGetErrorString(lethe_sp_));                                        \
  } while (0)

#define CUSPARSE_CHECK_NOTHROW(expr)                                                       \
  do {                                                                                     \
    cusparseStatus_t lethe_sp_ = (expr);                                                   \
    if (lethe_sp_ != CUSPARSE_STATUS_SUCCESS)                                              \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,            \
                   cusparseGetErrorString(lethe_sp_));                                     \
  } while (0)

namespace lethe::kernels {

namespace sparse_cuda {

enum class CusparseOp : int { kForward, kBackwardData, kBackwardWeight };

/// One product's cuSPARSE state for one chunk width. SpMM: sp = A, d1 = B, d2 = C.
/// SDDMM: d1 = A, d2 = B, sp = C.
struct CusparsePlan {
  cusparseSpMatDescr_t sp = nullptr;
  cusparseDnMatDescr_t d1 = nullptr, d2 = nullptr;
  void* buffer = nullptr;
  CusparsePlan() = default;
  CusparsePlan(const CusparsePlan&) = delete;
  CusparsePlan& operator=(const CusparsePlan&) = delete;
  ~CusparsePlan() {
    if (sp) CUSPARSE_CHECK_NOTHROW(cusparseDestroySpMat(sp));
    if (d1) CUSPARSE_CHECK_NOTHROW(cusparseDestroyDnMat(d1));
    if (d2) CUSPARSE_CHECK_NOTHROW(cusparseDestroyDnMat(d2));
    if (buffer) CUDA_CHECK_NOTHROW(cudaFree(buffer));
  }
};

}  // namespace sparse_cuda

struct SparsePatternCuda::Plans {
  std::map<std::tuple<int, int64_t, int64_t>, std::unique_ptr<sparse_cuda::CusparsePlan>> by_key;
};

void SparsePatternCuda::PlansDeleter::operator()(Plans* p) const { delete p; }

namespace sparse_cuda {
namespace {

using Op = CusparseOp;
using Plan = CusparsePlan;
using cuda::blocks_for;
using cuda::check_launch;

constexpr int kThreads = 256;
constexpr int64_t kChunkBytes = int64_t{32} << 20;  // the CRS-row and K-row blocks of a chunk
constexpr int64_t kChunkCols = 16384;               // at most this many columns L per chunk
constexpr cusparseSpMMAlg_t kSpmmAlg = CUSPARSE_SPMM_CSR_ALG2;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// Where a chunk's blocks live in the workspace (byte offsets, 256-aligned).
struct Layout {
  int nb = 1;          // images per full chunk
  int64_t ld = 0;      // leading dimension of the K x L and CRS x L blocks
  int64_t ldt = 0;     // leading dimension of the L x CRS block (backward-weight)
  size_t off_k = 0;    // the K-row block: tmp (forward) or gyc (both backward products)
  size_t off_v = 0;    // nnz floats: the sampled products (backward-weight)
  size_t bytes = 0;    // total; the CRS-row block (col, colg or colT) starts at 0
};

Layout layout_of(const Geom& g, int64_t nnz) {
  Layout l;
  const int64_t per_image = (static_cast<int64_t>(g.CRS) + g.K) * g.PQ * 4;
  const int64_t by_bytes = kChunkBytes / per_image, by_cols = kChunkCols / g.PQ;
  l.nb = static_cast<int>(std::clamp<int64_t>(std::min(by_bytes, by_cols), 1, std::max(g.N, 1)));
  const int64_t L = static_cast<int64_t>(l.nb) * g.PQ;
  l.ld = round_up(L, 4);
  l.ldt = round_up(g.CRS, 4);
  const int64_t crs_block = std::max(g.CRS * l.ld, L * l.ldt) * 4;
  l.off_k = static_cast<size_t>(round_up(crs_block, 256));
  l.off_v = l.off_k + static_cast<size_t>(round_up(g.K * l.ld * 4, 256));
  l.bytes = l.off_v + static_cast<size_t>(round_up(std::max<int64_t>(nnz, 1) * 4, 256));
  return l;
}

// ---- kernels (grid-stride loops; one output element per thread) -----------------------

// col(j, t) = x[n0 + b, c, p*stride + r - pad, q*stride + s - pad] (0 in the padding) with
// j = (c, r, s) and t = (b, p, q). t_major: stored at col[j*ld + t] (CRS x L, forward), else
// at col[t*ld + j] (L x CRS, for the SDDMM). The index with stride 1 in the store varies
// fastest across threads, so stores coalesce.
__global__ void im2col_kernel(Geom g, const float* __restrict__ x, int n0, int L, bool t_major,
                              int64_t ld, float* __restrict__ col) {
  const int64_t total = static_cast<int64_t>(g.CRS) * L;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int j, t;
    if (t_major) {
      j = static_cast<int>(i / L);
      t = static_cast<int>(i - static_cast<int64_t>(j) * L);
    } else {
      t = static_cast<int>(i / g.CRS);
      j = static_cast<int>(i - static_cast<int64_t>(t) * g.CRS);
    }
    const int b = t / g.PQ, pq = t - b * g.PQ, p = pq / g.Q, q = pq - p * g.Q;
    const int c = j / g.RS, rs = j - c * g.RS, r = rs / g.S, s = rs - r * g.S;
    const int ih = p * g.stride - g.pad + r, iw = q * g.stride - g.pad + s;
    // One unsigned compare per axis covers both ends (a negative index wraps to a huge one).
    float v = 0.f;
    if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.H) &&
        static_cast<unsigned>(iw) < static_cast<unsigned>(g.W))
      v = x[(static_cast<int64_t>(n0 + b) * g.C + c) * g.HW + ih * g.W + iw];
    col[t_major ? j * ld + t : t * ld + j] = v;
  }
}

// gyc[k*ld + t] = gy[n0 + b, k, p, q]: the chunk's gradient as one K x L matrix.
__global__ void gather_gy_kernel(Geom g, const float* __restrict__ gy, int n0, int L, int64_t ld,
                                 float* __restrict__ gyc) {
  const int64_t total = static_cast<int64_t>(g.K) * L;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int k = static_cast<int>(i / L), t = static_cast<int>(i - static_cast<int64_t>(k) * L);
    const int b = t / g.PQ, pq = t - b * g.PQ;
    gyc[k * ld + t] = gy[(static_cast<int64_t>(n0 + b) * g.K + k) * g.PQ + pq];
  }
}

// y[n0 + b, k, p, q] = tmp[k*ld + t] + bias[k]: back from K x L to NCHW.
__global__ void epilogue_kernel(Geom g, const float* __restrict__ tmp, int n0, int L, int64_t ld,
                                const float* __restrict__ bias, float* __restrict__ y) {
  const int64_t total = static_cast<int64_t>(g.K) * L;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int k = static_cast<int>(i / L), t = static_cast<int>(i - static_cast<int64_t>(k) * L);
    const int b = t / g.PQ, pq = t - b * g.PQ;
    y[(static_cast<int64_t>(n0 + b) * g.K + k) * g.PQ + pq] =
        tmp[k * ld + t] + (bias ? bias[k] : 0.f);
  }
}

// gx[n0 + b, c, h, w] = sum over the taps (r, s) whose output position (p, q) reads (h, w):
// p = (h + pad - r) / stride must be whole and inside [0, P), the same for q. Gather form:
// one thread per input pixel, a fixed (r, s) order, no atomics.
__global__ void col2im_kernel(Geom g, const float* __restrict__ colg, int n0, int nimg,
                              int64_t ld, float* __restrict__ gx) {
  const int64_t chw = static_cast<int64_t>(g.C) * g.HW, total = nimg * chw;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int b = static_cast<int>(i / chw);
    const int rem = static_cast<int>(i - b * chw);  // c*HW + h*W + w
    const int c = rem / g.HW, hw = rem - c * g.HW, h = hw / g.W, w = hw - h * g.W;
    float acc = 0.f;
    for (int r = 0; r < g.R; ++r) {
      const int hp = h + g.pad - r;
      if (hp < 0) break;  // hp only falls as r grows
      const int p = hp / g.stride;
      if (p * g.stride != hp || p >= g.P) continue;
      for (int s = 0; s < g.S; ++s) {
        const int wq = w + g.pad - s;
        if (wq < 0) break;
        const int q = wq / g.stride;
        if (q * g.stride != wq || q >= g.Q) continue;
        acc += colg[(c * g.RS + r * g.S + s) * ld + b * g.PQ + p * g.Q + q];
      }
    }
    gx[(n0 + b) * chw + rem] = acc;
  }
}

// ---- cuSPARSE state ---------------------------------------------------------------------

struct HandleState {
  std::mutex mutex;
  std::map<int, cusparseHandle_t> handles;  // per device, kept for the process
};

HandleState& handle_state() {
  static HandleState* s = new HandleState();  // never destroyed: the driver may be gone at exit
  return *s;
}

/// The device's handle bound to `st`; the caller holds handle_state().mutex.
cusparseHandle_t handle_for(int device, cudaStream_t st) {
  cusparseHandle_t& h = handle_state().handles[device];
  if (!h) CUSPARSE_CHECK(cusparseCreate(&h));
  CUSPARSE_CHECK(cusparseSetStream(h, st));
  return h;
}

cusparseSpMatDescr_t make_csr(int64_t rows, int64_t cols, int64_t nnz, int32_t* ptr,
                              int32_t* idx, float* vals) {
  cusparseSpMatDescr_t d = nullptr;
  CUSPARSE_CHECK(cusparseCreateCsr(&d, rows, cols, nnz, ptr, idx, vals, CUSPARSE_INDEX_32I,
                                   CUSPARSE_INDEX_32I, CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F));
  return d;
}

cusparseDnMatDescr_t make_dense(int64_t rows, int64_t cols, int64_t ld, float* v) {
  cusparseDnMatDescr_t d = nullptr;
  CUSPARSE_CHECK(cusparseCreateDnMat(&d, rows, cols, ld, v, CUDA_R_32F, CUSPARSE_ORDER_ROW));
  return d;
}

/// The plan of `op` at chunk width L (made, sized and preprocessed on first use), its dense
/// descriptors pointed at this call's blocks. crs_blk: col / colg / colT; k_blk: tmp / gyc;
/// v_blk: the SDDMM output.
Plan& plan_for(cusparseHandle_t h, SparsePatternCuda& p, Op op, int64_t L, const Layout& lay,
               float* crs_blk, float* k_blk, float* v_blk) {
  if (!p.plans) p.plans.reset(new SparsePatternCuda::Plans());
  auto& slot = p.plans->by_key[{static_cast<int>(op), L, lay.ld}];
  const int64_t K = p.rows, CRS = p.cols;
  const float alpha = 1.f, beta = op == Op::kBackwardWeight ? 1.f : 0.f;
  const auto N = CUSPARSE_OPERATION_NON_TRANSPOSE;
  if (!slot) {
    auto plan = std::make_unique<Plan>();
    size_t bytes = 0;
    switch (op) {
      case Op::kForward:  // C (K x L) = A (K x CRS) * B (CRS x L)
        plan->sp = make_csr(K, CRS, p.nnz, p.row_ptr, p.col_idx, p.vals);
        plan->d1 = make_dense(CRS, L, lay.ld, crs_blk);
        plan->d2 = make_dense(K, L, lay.ld, k_blk);
        break;
      case Op::kBackwardData:  // C (CRS x L) = A^T (CRS x K, as CSR) * B (K x L)
        plan->sp = make_csr(CRS, K, p.nnz, p.t_ptr, p.t_row, p.tvals);
        plan->d1 = make_dense(K, L, lay.ld, k_blk);
        plan->d2 = make_dense(CRS, L, lay.ld, crs_blk);
        break;
      case Op::kBackwardWeight:  // C (K x CRS, sampled) += A (K x L) * B (L x CRS)
        plan->d1 = make_dense(K, L, lay.ld, k_blk);
        plan->d2 = make_dense(L, CRS, lay.ldt, crs_blk);
        plan->sp = make_csr(K, CRS, p.nnz, p.row_ptr, p.col_idx, v_blk);
        break;
    }
    if (op == Op::kBackwardWeight)
      CUSPARSE_CHECK(cusparseSDDMM_bufferSize(h, N, N, &alpha, plan->d1, plan->d2, &beta,
                                              plan->sp, CUDA_R_32F, CUSPARSE_SDDMM_ALG_DEFAULT,
                                              &bytes));
    else
      CUSPARSE_CHECK(cusparseSpMM_bufferSize(h, N, N, &alpha, plan->sp, plan->d1, &beta,
                                             plan->d2, CUDA_R_32F, kSpmmAlg, &bytes));
    // Once per pattern and chunk width, like the upload: not a per-step allocation.
    if (bytes > 0) CUDA_CHECK(cudaMalloc(&plan->buffer, bytes));
    // The pattern never changes, so its analysis is done once; the buffer stays this plan's
    // (cuSPARSE keeps the analysis in it).
    if (op == Op::kBackwardWeight)
      CUSPARSE_CHECK(cusparseSDDMM_preprocess(h, N, N, &alpha, plan->d1, plan->d2, &beta,
                                              plan->sp, CUDA_R_32F, CUSPARSE_SDDMM_ALG_DEFAULT,
                                              plan->buffer));
    else
      CUSPARSE_CHECK(cusparseSpMM_preprocess(h, N, N, &alpha, plan->sp, plan->d1, &beta,
                                             plan->d2, CUDA_R_32F, kSpmmAlg, plan->buffer));
    slot = std::move(plan);
  }
  // The workspace may move between calls: repoint the dense matrices (and the SDDMM output).
  switch (op) {
    case Op::kForward:
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d1, crs_blk));
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d2, k_blk));
      break;
    case Op::kBackwardData:
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d1, k_blk));
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d2, crs_blk));
      break;
    case Op::kBackwardWeight:
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d1, k_blk));
      CUSPARSE_CHECK(cusparseDnMatSetValues(slot->d2, crs_blk));
      CUSPARSE_CHECK(cusparseSpMatSetValues(slot->sp, v_blk));
      break;
  }
  return *slot;
}

void spmm(cusparseHandle_t h, Plan& plan) {
  const float alpha = 1.f, beta = 0.f;
  const auto N = CUSPARSE_OPERATION_NON_TRANSPOSE;
  CUSPARSE_CHECK(cusparseSpMM(h, N, N, &alpha, plan.sp, plan.d1, &beta, plan.d2, CUDA_R_32F,
                              kSpmmAlg, plan.buffer));
}

/// The workspace's three blocks.
struct Blocks {
  float* crs;
  float* k;
  float* v;
};

Blocks blocks_of(void* ws, size_t ws_bytes, const Layout& lay, const char* op) {
  LETHE_CHECK(ws != nullptr && ws_bytes >= lay.bytes, op, " (cusparse): the workspace has ",
              ws_bytes, " bytes, ", lay.bytes, " are needed");
  char* base = static_cast<char*>(ws);
  return {reinterpret_cast<float*>(base), reinterpret_cast<float*>(base + lay.off_k),
          reinterpret_cast<float*>(base + lay.off_v)};
}

}  // namespace

size_t cusparse_workspace_bytes(const Geom& g, int64_t nnz) { return layout_of(g, nnz).bytes; }

void cusparse_forward(const Geom& g, SparsePatternCuda& p, const float* x, const float* bias,
                      float* y, void* ws, size_t ws_bytes, cudaStream_t st) {
  const Layout lay = layout_of(g, p.nnz);
  const Blocks blk = blocks_of(ws, ws_bytes, lay, "sparse_conv2d_forward_cuda");
  std::lock_guard<std::mutex> lock(handle_state().mutex);
  const cusparseHandle_t h = handle_for(p.device, st);
  for (int n0 = 0; n0 < g.N; n0 += lay.nb) {
    const int nimg = std::min(lay.nb, g.N - n0), L = nimg * g.PQ;
    const int64_t cells = static_cast<int64_t>(g.CRS) * L;
    im2col_kernel<<<blocks_for(cells, kThreads), kThreads, 0, st>>>(g, x, n0, L, true, lay.ld,
                                                                     blk.crs);
    check_launch("sparse_conv2d(cusparse) im2col_kernel", st);
    // SpMM is asked for beta = 0; the block is zeroed anyway so that no stale NaN of an
    // earlier call can leak through a 0 * NaN.
    CUDA_CHECK(cudaMemsetAsync(blk.k, 0, static_cast<size_t>(g.K * lay.ld) * sizeof(float), st));
    spmm(h, plan_for(h, p, Op::kForward, L, lay, blk.crs, blk.k, blk.v));
    const int64_t outs = static_cast<int64_t>(g.K) * L;
    epilogue_kernel<<<blocks_for(outs, kThreads), kThreads, 0, st>>>(g, blk.k, n0, L, lay.ld,
                                                                     bias, y);
    check_launch("sparse_conv2d(cusparse) epilogue_kernel", st);
  }
}

void cusparse_backward_data(const Geom& g, SparsePatternCuda& p, const float* gy, float* gx,
                            void* ws, size_t ws_bytes, cudaStream_t st) {
  const Layout lay = layout_of(g, p.nnz);
  const Blocks blk = blocks_of(ws, ws_bytes, lay, "sparse_conv2d_backward_data_cuda");
  std::lock_guard<std::mutex> lock(handle_state().mutex);
  const cusparseHandle_t h = handle_for(p.device, st);
  for (int n0 = 0; n0 < g.N; n0 += lay.nb) {
    const int nimg = std::min(lay.nb, g.N - n0), L = nimg * g.PQ;
    const int64_t gys = static_cast<int64_t>(g.K) * L;
    gather_gy_kernel<<<blocks_for(gys, kThreads), kThreads, 0, st>>>(g, gy, n0, L, lay.ld, blk.k);
    check_launch("sparse_conv2d(cusparse) gather_gy_kernel", st);
    CUDA_CHECK(
        cudaMemsetAsync(blk.crs, 0, static_cast<size_t>(g.CRS * lay.ld) * sizeof(float), st));
    spmm(h, plan_for(h, p, Op::kBackwardData, L, lay, blk.crs, blk.k, blk.v));
    const int64_t pixels = static_cast<int64_t>(nimg) * g.C * g.HW;
    col2im_kernel<<<blocks_for(pixels, kThreads), kThreads, 0, st>>>(g, blk.crs, n0, nimg,
                                                                     lay.ld, gx);
    check_launch("sparse_conv2d(cusparse) col2im_kernel", st);
  }
}

void cusparse_backward_weight(const Geom& g, SparsePatternCuda& p, const float* x,
                              const float* gy, float* gw, void* ws, size_t ws_bytes,
                              cudaStream_t st) {
  const Layout lay = layout_of(g, p.nnz);
  const Blocks blk = blocks_of(ws, ws_bytes, lay, "sparse_conv2d_backward_weight_cuda");
  std::lock_guard<std::mutex> lock(handle_state().mutex);
  const cusparseHandle_t h = handle_for(p.device, st);
  const float alpha = 1.f, beta = 1.f;  // gvals += this chunk's sampled products
  const auto N = CUSPARSE_OPERATION_NON_TRANSPOSE;
  CUDA_CHECK(cudaMemsetAsync(blk.v, 0, static_cast<size_t>(p.nnz) * sizeof(float), st));
  for (int n0 = 0; n0 < g.N; n0 += lay.nb) {
    const int nimg = std::min(lay.nb, g.N - n0), L = nimg * g.PQ;
    const int64_t cells = static_cast<int64_t>(g.CRS) * L, gys = static_cast<int64_t>(g.K) * L;
    im2col_kernel<<<blocks_for(cells, kThreads), kThreads, 0, st>>>(g, x, n0, L, false, lay.ldt,
                                                                     blk.crs);
    check_launch("sparse_conv2d(cusparse) im2col_kernel (transposed)", st);
    gather_gy_kernel<<<blocks_for(gys, kThreads), kThreads, 0, st>>>(g, gy, n0, L, lay.ld, blk.k);
    check_launch("sparse_conv2d(cusparse) gather_gy_kernel", st);
    Plan& plan = plan_for(h, p, Op::kBackwardWeight, L, lay, blk.crs, blk.k, blk.v);
    CUSPARSE_CHECK(cusparseSDDMM(h, N, N, &alpha, plan.d1, plan.d2, &beta, plan.sp, CUDA_R_32F,
                                 CUSPARSE_SDDMM_ALG_DEFAULT, plan.buffer));
  }
  scatter_weight_grad(p, blk.v, gw, st);
}

}  // namespace sparse_cuda
}  // namespace lethe::kernels
