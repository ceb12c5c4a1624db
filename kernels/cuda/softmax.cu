// Softmax family on CUDA (formulas in kernels/softmax.h): softmax and log_softmax forward and
// backward, cross-entropy with label smoothing forward (per-sample loss and the saved logp)
// and backward.
//
// Layout: row-major M x C, row i (one sample's logits) at x[i*C .. i*C + C).
// Numerics, as the CPU fast path: the row max in float is subtracted before expf (the largest
// term is exactly 1, nothing overflows); row sums (of exp, of gy, of gy*y, of logp) are
// accumulated in double and rounded once; the log-sum-exp is log() of the double sum, rounded
// to float; expf is CUDA's accurate version (not the --use_fast_math intrinsic), so results
// agree with the CPU to a few ulp (kFp32Tol).
// Thread mapping: a group of kRow threads per row; thread r of the group takes columns
// r, r + kRow, ... . Each row is three sweeps: max, sum of exp, write. Element j is read and
// written by the same thread, so y may alias x (but cross-entropy's logp must not alias its
// logits: rank 0 rereads the labelled logit after the sweeps). A group's reductions are warp
// shuffles (kRow = 32) or a block reduction through shared memory (kRow = kThreads).
// Versions (e.version; 0 = v1 for C <= kWarpMaxC, else v2; a heuristic, not yet tuned):
//   v1 "warp_row":  kRow = 32, a block holds kThreads/32 rows; no shared memory, no barrier.
//   v2 "block_row": kRow = kThreads, one row per block; for large C, where a warp's 32 lanes
//                   would walk the row alone.
// Cross-entropy backward is a plain map over the M*C outputs (one version).
// Tests: tests/cuda/test_softmax_cuda.cpp. Bench: bench/bench_ops_cuda.cpp.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/softmax.h"

namespace lethe::kernels {

namespace {

using cuda::block_sum;
using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;
using cuda::warp_max;
using cuda::warp_sum;

constexpr int kThreads = 256;
constexpr int kVersions = 2;
constexpr int64_t kWarpMaxC = 256;
constexpr int64_t kMaxRowBlocks = 65535;

// ---- group reductions: every thread of the row group gets the result ---------------------

// The shared scratch of the block reductions (unused when kRow == 32).
struct RowScratch {
  float f[32];
  double d[32];
};

template <int kRow>
__device__ __forceinline__ double row_sum(double v, RowScratch& sh) {
  if constexpr (kRow == 32)
    return warp_sum(v);
  else
    return block_sum(v, sh.d);
}

template <int kRow>
__device__ __forceinline__ float row_max(float v, RowScratch& sh) {
  if constexpr (kRow == 32) {
    return warp_max(v);
  } else {
    // As block_sum: warp maxima to shared memory, then the first warp's lanes combine them.
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();  // the previous row's readers of sh.f are done
    if (lane == 0) sh.f[warp] = v;
    __syncthreads();
    v = lane < (kRow >> 5) ? sh.f[lane] : -INFINITY;
    return warp_max(v);
  }
}

// The rows of this block and the thread's rank within its row group. For kRow == 32 each
// warp is a group; the loop over rows is uniform within a group (a warp or the whole block),
// so every thread of a group reaches every shuffle and barrier.
template <int kRow>
struct RowMap {
  int64_t first, step;
  int rank;
  __device__ RowMap() {
    constexpr int kRowsPerBlock = kThreads / kRow;
    first = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRow;
    step = static_cast<int64_t>(gridDim.x) * kRowsPerBlock;
    rank = static_cast<int>(threadIdx.x % kRow);
  }
};

// Sweeps 1 and 2 of a row: its max and sum_j exp(x_j - max) (in double).
template <int kRow>
__device__ __forceinline__ void max_and_sum_exp(int64_t C, const float* xr, int rank,
                                                RowScratch& sh, float& m, double& sum) {
  float mx = -INFINITY;
  for (int64_t j = rank; j < C; j += kRow) mx = fmaxf(mx, xr[j]);
  m = row_max<kRow>(mx, sh);
  double s = 0.0;
  for (int64_t j = rank; j < C; j += kRow) s += static_cast<double>(expf(xr[j] - m));
  sum = row_sum<kRow>(s, sh);
}

// ---- kernels: one template per op over the row-group size ---------------------------------

template <int kRow>
__global__ void softmax_fwd(int64_t M, int64_t C, const float* x, float* y) {
  __shared__ RowScratch sh;
  const RowMap<kRow> rm;
  for (int64_t i = rm.first; i < M; i += rm.step) {
    float m;
    double sum;
    max_and_sum_exp<kRow>(C, x + i * C, rm.rank, sh, m, sum);
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = rm.rank; j < C; j += kRow) y[i * C + j] = expf(x[i * C + j] - m) * inv;
  }
}

template <int kRow>
__global__ void log_softmax_fwd(int64_t M, int64_t C, const float* x, float* y) {
  __shared__ RowScratch sh;
  const RowMap<kRow> rm;
  for (int64_t i = rm.first; i < M; i += rm.step) {
    float m;
    double sum;
    max_and_sum_exp<kRow>(C, x + i * C, rm.rank, sh, m, sum);
    const float lse = static_cast<float>(log(sum));
    for (int64_t j = rm.rank; j < C; j += kRow) y[i * C + j] = (x[i * C + j] - m) - lse;
  }
}

// gx = y * (gy - sum_j gy_j y_j)
template <int kRow>
__global__ void softmax_bwd(int64_t M, int64_t C, const float* y, const float* gy, float* gx) {
  __shared__ RowScratch sh;
  const RowMap<kRow> rm;
  for (int64_t i = rm.first; i < M; i += rm.step) {
    double dot = 0.0;
    for (int64_t j = rm.rank; j < C; j += kRow)
      dot += static_cast<double>(gy[i * C + j]) * static_cast<double>(y[i * C + j]);
    const float d = static_cast<float>(row_sum<kRow>(dot, sh));
    for (int64_t j = rm.rank; j < C; j += kRow)
      gx[i * C + j] = y[i * C + j] * (gy[i * C + j] - d);
  }
}

// gx = gy - exp(y) * sum_j gy_j
template <int kRow>
__global__ void log_softmax_bwd(int64_t M, int64_t C, const float* y, const float* gy,
                                float* gx) {
  __shared__ RowScratch sh;
  const RowMap<kRow> rm;
  for (int64_t i = rm.first; i < M; i += rm.step) {
    double s = 0.0;
    for (int64_t j = rm.rank; j < C; j += kRow) s += static_cast<double>(gy[i * C + j]);
    const float sf = static_cast<float>(row_sum<kRow>(s, sh));
    for (int64_t j = rm.rank; j < C; j += kRow)
      gx[i * C + j] = gy[i * C + j] - expf(y[i * C + j]) * sf;
  }
}

// logp = log_softmax(logits); loss_i = -(1-eps) logp[i, t_i] - eps/C sum_j logp[i, j].
// The smoothing sum is taken over the rounded logp values written, as on the CPU, and only
// when eps != 0 (a uniform branch), so the plain loss is exactly -logp[t].
template <int kRow>
__global__ void cross_entropy_fwd(int64_t M, int64_t C, const float* logits,
                                  const int32_t* labels, double eps, float* loss, float* logp) {
  __shared__ RowScratch sh;
  const RowMap<kRow> rm;
  for (int64_t i = rm.first; i < M; i += rm.step) {
    const float* xr = logits + i * C;
    float m;
    double sum;
    max_and_sum_exp<kRow>(C, xr, rm.rank, sh, m, sum);
    const float lse = static_cast<float>(log(sum));
    double sum_lp = 0.0;
    for (int64_t j = rm.rank; j < C; j += kRow) {
      const float lp = (xr[j] - m) - lse;
      logp[i * C + j] = lp;
      sum_lp += static_cast<double>(lp);
    }
    if (eps != 0.0) sum_lp = row_sum<kRow>(sum_lp, sh);
    if (rm.rank == 0) {
      // The same float expression as the sweep above, so it equals the stored logp[t].
      const float lpt = (xr[labels[i]] - m) - lse;
      loss[i] = static_cast<float>(-(1.0 - eps) * static_cast<double>(lpt) -
                                   eps / static_cast<double>(C) * sum_lp);
    }
  }
}

// glogits[i, j] = gloss_i * (exp(logp[i, j]) - (j == t_i ? on : off)), one output per step.
__global__ void cross_entropy_bwd(int64_t M, int64_t C, const float* logp,
                                  const int32_t* labels, float on, float off,
                                  const float* gloss, float* glogits) {
  const int64_t total = M * C, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    const int64_t i = k / C, j = k - i * C;
    const float target = j == labels[i] ? on : off;
    glogits[k] = gloss[i] * (expf(logp[k]) - target);
  }
}

// ---- launchers --------------------------------------------------------------------------

// Grid for M rows in groups of kRow threads (grid-stride over rows beyond the cap).
template <int kRow>
unsigned row_blocks(int64_t M) {
  constexpr int64_t kRowsPerBlock = kThreads / kRow;
  return blocks_for(M, static_cast<int>(kRowsPerBlock), kMaxRowBlocks);
}

// The version to run: e.version, or by C when 0.
int pick(const char* name, int64_t M, int64_t C, const CudaExec& e) {
  LETHE_CHECK(M >= 0 && C >= 0, name, ": M = ", M, ", C = ", C, " must be >= 0.");
  LETHE_CHECK(e.version >= 0 && e.version <= kVersions, name, ": version ", e.version,
              " is not one of 0..", kVersions, ".");
  if (e.version != 0) return e.version;
  return C <= kWarpMaxC ? 1 : 2;
}

// Launches the v1 (kRow = 32) or v2 (kRow = kThreads) instance of a row kernel over M rows.
// type_identity: the arguments convert to the kernel's parameter types, not deduce them.
template <typename... Args>
void launch_rows(cudaStream_t s, const char* name, int v, int64_t M,
                 void (*warp_rows)(int64_t, Args...), void (*block_rows)(int64_t, Args...),
                 std::type_identity_t<Args>... args) {
  if (v == 1)
    warp_rows<<<row_blocks<32>(M), kThreads, 0, s>>>(M, args...);
  else
    block_rows<<<row_blocks<kThreads>(M), kThreads, 0, s>>>(M, args...);
  check_launch(name, s);
}

}  // namespace

// ---- entry points -----------------------------------------------------------------------

void softmax_forward_cuda(int64_t M, int64_t C, const float* x, float* y, const CudaExec& e) {
  const int v = pick("softmax_forward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  launch_rows(s, "softmax_forward_cuda", v, M, softmax_fwd<32>, softmax_fwd<kThreads>, C, x, y);
}

void log_softmax_forward_cuda(int64_t M, int64_t C, const float* x, float* y,
                              const CudaExec& e) {
  const int v = pick("log_softmax_forward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  launch_rows(s, "log_softmax_forward_cuda", v, M, log_softmax_fwd<32>, log_softmax_fwd<kThreads>,
              C, x, y);
}

void softmax_backward_cuda(int64_t M, int64_t C, const float* y, const float* gy, float* gx,
                           const CudaExec& e) {
  const int v = pick("softmax_backward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  launch_rows(s, "softmax_backward_cuda", v, M, softmax_bwd<32>, softmax_bwd<kThreads>, C, y, gy,
              gx);
}

void log_softmax_backward_cuda(int64_t M, int64_t C, const float* y, const float* gy,
                               float* gx, const CudaExec& e) {
  const int v = pick("log_softmax_backward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  launch_rows(s, "log_softmax_backward_cuda", v, M, log_softmax_bwd<32>,
              log_softmax_bwd<kThreads>, C, y, gy, gx);
}

void cross_entropy_forward_cuda(int64_t M, int64_t C, const float* logits,
                                const int32_t* labels, float smoothing, float* loss,
                                float* logp, const CudaExec& e) {
  const int v = pick("cross_entropy_forward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  const double eps = static_cast<double>(smoothing);
  launch_rows(s, "cross_entropy_forward_cuda", v, M, cross_entropy_fwd<32>,
              cross_entropy_fwd<kThreads>, C, logits, labels, eps, loss, logp);
}

void cross_entropy_backward_cuda(int64_t M, int64_t C, const float* logp,
                                 const int32_t* labels, float smoothing, const float* gloss,
                                 float* glogits, const CudaExec& e) {
  pick("cross_entropy_backward_cuda", M, C, e);
  if (M == 0 || C == 0) return;
  const cudaStream_t s = stream_of(e);
  // The smoothed target mass, rounded to float as on the CPU: eps/C on every class, and
  // (1 - eps) + eps/C on the labelled one.
  const float off = smoothing / static_cast<float>(C);
  const float on = (1.f - smoothing) + off;
  cross_entropy_bwd<<<blocks_for(M * C, kThreads), kThreads, 0, s>>>(M, C, logp, labels, on,
                                                                     off, gloss, glogits);
  check_launch("cross_entropy_backward_cuda", s);
}

int softmax_cuda_versions() { return kVersions; }

const char* softmax_cuda_version_name(int v) {
  switch (v) {
    case 1: return "warp_row";
    case 2: return "block_row";
    default: return "unknown";
  }
}

}  // namespace lethe::kernels
