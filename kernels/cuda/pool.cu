// Pooling on CUDA (formulas in kernels/pool.h): max and average pooling forward and backward
// over NCHW with a square window (`kernel`), stride and zero padding; global average pooling.
//
// Layout: every (n, c) pair is an independent H x W plane of x mapped to a P x Q plane of y
// (and argmax): plane nc starts at nc*H*W in x and at nc*P*Q in y.
// Thread mapping: forward passes take one output per step of a grid-stride loop (flat index
// o = (nc*P + p)*Q + q) and walk its window clipped to the image, in row-major order.
// Backward passes are gathers, one input element (nc, h, w) per step: the outputs whose window
// covers row h are the p with p*stride - pad <= h < p*stride - pad + kernel, that is
//   ceil((h + pad - kernel + 1) / stride) <= p <= floor((h + pad) / stride), clipped to [0, P)
// (the same for w and q). Each thread writes only its own gx, so no atomics are needed:
// deterministic. Max pooling adds gy[o] for the covering outputs whose argmax is this element,
// in increasing o, starting from 0: the CPU scatter's order, so gx matches it bit for bit.
// Exactness: max and argmax are exact (first maximum in row-major window order wins; a NaN
// beats any number, as on the CPU); average pooling sums the clipped window in the CPU's
// order and multiplies by 1/kernel^2 (count_include_pad), so it agrees to rounding.
// Global average: one warp per plane, the HW values summed in double (lane-strided, then the
// warp's butterfly); its backward is a map gx = gy * (1/HW).
// One version each. Tests: tests/cuda/test_pool_cuda.cpp. Bench: bench/bench_ops_cuda.cpp.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/pool.h"

namespace lethe::kernels {

namespace {

using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;
using cuda::warp_sum;

constexpr int kThreads = 256;

// The pooling geometry as the kernels read it (PoolShape's P() and Q() resolved on the host).
struct Geo {
  int64_t H, W, P, Q, kernel, stride, pad;
};

// Output index o -> (plane nc, row p, column q).
__device__ __forceinline__ void split_output(const Geo& g, int64_t o, int64_t& nc, int64_t& p,
                                             int64_t& q) {
  q = o % g.Q;
  const int64_t t = o / g.Q;
  p = t % g.P;
  nc = t / g.P;
}

// The outputs [lo, hi] (inclusive, possibly empty) along one axis whose window covers input
// position h of an axis of `out` outputs.
__device__ __forceinline__ void covering(int64_t h, int64_t kernel, int64_t stride, int64_t pad,
                                         int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t first = h + pad - kernel + 1;  // p*stride must be >= this
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (h + pad) / stride;
  if (hi > out - 1) hi = out - 1;
}

// The max-pool winner rule of the CPU: strictly greater wins (first maximum kept on ties);
// a NaN beats any number and the first NaN stays.
__device__ __forceinline__ bool beats(float v, float best) {
  return v > best || (isnan(v) && !isnan(best));
}

__global__ void maxpool_fwd(int64_t total, Geo g, const float* x, float* y, int32_t* argmax) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += stride) {
    int64_t nc, p, q;
    split_output(g, o, nc, p, q);
    // The window clipped to the image: padded taps never win.
    const int64_t h0 = p * g.stride - g.pad, w0 = q * g.stride - g.pad;
    const int64_t hlo = h0 < 0 ? 0 : h0, hhi = h0 + g.kernel < g.H ? h0 + g.kernel : g.H;
    const int64_t wlo = w0 < 0 ? 0 : w0, whi = w0 + g.kernel < g.W ? w0 + g.kernel : g.W;
    const float* xp = x + nc * g.H * g.W;
    float best = -INFINITY;
    int64_t arg = -1;  // stays -1 (and y -inf) for a window wholly in the padding
    for (int64_t h = hlo; h < hhi; ++h)
      for (int64_t w = wlo; w < whi; ++w) {
        const float v = xp[h * g.W + w];
        if (arg < 0 || beats(v, best)) {
          best = v;
          arg = h * g.W + w;
        }
      }
    y[o] = best;
    argmax[o] = static_cast<int32_t>(arg);
  }
}

// Gather: gx[nc, h, w] = sum of gy[o] over the covering outputs o with argmax[o] == h*W + w.
__global__ void maxpool_bwd(int64_t total, Geo g, const float* gy, const int32_t* argmax,
                            float* gx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t w = i % g.W, t = i / g.W, h = t % g.H, nc = t / g.H;
    int64_t plo, phi, qlo, qhi;
    covering(h, g.kernel, g.stride, g.pad, g.P, plo, phi);
    covering(w, g.kernel, g.stride, g.pad, g.Q, qlo, qhi);
    const int32_t self = static_cast<int32_t>(h * g.W + w);
    const int64_t plane = nc * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = plo; p <= phi; ++p)
      for (int64_t q = qlo; q <= qhi; ++q) {
        const int64_t o = plane + p * g.Q + q;
        if (argmax[o] == self) acc += gy[o];
      }
    gx[i] = acc;
  }
}

__global__ void avgpool_fwd(int64_t total, Geo g, float inv_area, const float* x, float* y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += stride) {
    int64_t nc, p, q;
    split_output(g, o, nc, p, q);
    // Clipped window: padded taps add nothing but still count in the divisor.
    const int64_t h0 = p * g.stride - g.pad, w0 = q * g.stride - g.pad;
    const int64_t hlo = h0 < 0 ? 0 : h0, hhi = h0 + g.kernel < g.H ? h0 + g.kernel : g.H;
    const int64_t wlo = w0 < 0 ? 0 : w0, whi = w0 + g.kernel < g.W ? w0 + g.kernel : g.W;
    const float* xp = x + nc * g.H * g.W;
    float acc = 0.f;
    for (int64_t h = hlo; h < hhi; ++h)
      for (int64_t w = wlo; w < whi; ++w) acc += xp[h * g.W + w];
    y[o] = acc * inv_area;
  }
}

// Gather: gx[nc, h, w] = sum over the covering outputs of gy[o] / kernel^2, in the CPU's
// order; __fmul_rn / __fadd_rn keep the share rounded before the add (no fma contraction).
__global__ void avgpool_bwd(int64_t total, Geo g, float inv_area, const float* gy, float* gx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t w = i % g.W, t = i / g.W, h = t % g.H, nc = t / g.H;
    int64_t plo, phi, qlo, qhi;
    covering(h, g.kernel, g.stride, g.pad, g.P, plo, phi);
    covering(w, g.kernel, g.stride, g.pad, g.Q, qlo, qhi);
    const int64_t plane = nc * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = plo; p <= phi; ++p)
      for (int64_t q = qlo; q <= qhi; ++q)
        acc = __fadd_rn(acc, __fmul_rn(gy[plane + p * g.Q + q], inv_area));
    gx[i] = acc;
  }
}

// One warp per plane: lanes stride over the HW values in double, the warp sums them.
__global__ void global_avg_fwd(int64_t NC, int64_t HW, double inv, const float* x, float* y) {
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kWarps;
  // The loop bound is the same for all lanes of a warp, so each shuffle sees the full warp.
  for (int64_t nc = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; nc < NC;
       nc += step) {
    const float* xp = x + nc * HW;
    double acc = 0.0;
    for (int64_t k = lane; k < HW; k += 32) acc += static_cast<double>(xp[k]);
    acc = warp_sum(acc);
    if (lane == 0) y[nc] = static_cast<float>(acc * inv);
  }
}

__global__ void global_avg_bwd(int64_t total, int64_t HW, float inv, const float* gy,
                               float* gx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride)
    gx[i] = gy[i / HW] * inv;
}

// Checks the shape and resolves P, Q; false when there is nothing to compute.
bool geometry(const char* name, const PoolShape& s, Geo& g) {
  LETHE_CHECK(s.N >= 0 && s.C >= 0 && s.H >= 0 && s.W >= 0 && s.kernel > 0 && s.stride > 0 &&
                  s.pad >= 0,
              name, ": bad shape N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " kernel=",
              s.kernel, " stride=", s.stride, " pad=", s.pad, ".");
  g = Geo{s.H, s.W, s.P(), s.Q(), s.kernel, s.stride, s.pad};
  LETHE_CHECK(s.H * s.W <= INT32_MAX, name, ": plane ", s.H, "x", s.W,
              " too large for int32 argmax.");
  return s.N * s.C > 0 && s.H > 0 && s.W > 0;
}

}  // namespace

// ---- entry points -----------------------------------------------------------------------

void maxpool2d_forward_cuda(const PoolShape& s, const float* x, float* y, int32_t* argmax,
                            const CudaExec& e) {
  Geo g;
  if (!geometry("maxpool2d_forward_cuda", s, g) || g.P <= 0 || g.Q <= 0) return;
  const int64_t total = s.N * s.C * g.P * g.Q;
  const cudaStream_t st = stream_of(e);
  maxpool_fwd<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, g, x, y, argmax);
  check_launch("maxpool2d_forward_cuda", st);
}

void maxpool2d_backward_cuda(const PoolShape& s, const float* gy, const int32_t* argmax,
                             float* gx, const CudaExec& e) {
  Geo g;
  if (!geometry("maxpool2d_backward_cuda", s, g)) return;
  // With no outputs (P or Q <= 0) the covering ranges are empty and gx is all zeros.
  const int64_t total = s.N * s.C * s.H * s.W;
  const cudaStream_t st = stream_of(e);
  maxpool_bwd<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, g, gy, argmax, gx);
  check_launch("maxpool2d_backward_cuda", st);
}

void avgpool2d_forward_cuda(const PoolShape& s, const float* x, float* y, const CudaExec& e) {
  Geo g;
  if (!geometry("avgpool2d_forward_cuda", s, g) || g.P <= 0 || g.Q <= 0) return;
  const int64_t total = s.N * s.C * g.P * g.Q;
  const float inv_area = 1.f / static_cast<float>(s.kernel * s.kernel);  // as the CPU
  const cudaStream_t st = stream_of(e);
  avgpool_fwd<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, g, inv_area, x, y);
  check_launch("avgpool2d_forward_cuda", st);
}

void avgpool2d_backward_cuda(const PoolShape& s, const float* gy, float* gx, const CudaExec& e) {
  Geo g;
  if (!geometry("avgpool2d_backward_cuda", s, g)) return;
  const int64_t total = s.N * s.C * s.H * s.W;
  const float inv_area = 1.f / static_cast<float>(s.kernel * s.kernel);
  const cudaStream_t st = stream_of(e);
  avgpool_bwd<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, g, inv_area, gy, gx);
  check_launch("avgpool2d_backward_cuda", st);
}

void global_avgpool_forward_cuda(int64_t NC, int64_t HW, const float* x, float* y,
                                 const CudaExec& e) {
  LETHE_CHECK(NC >= 0 && HW >= 0, "global_avgpool_forward_cuda: NC = ", NC, ", HW = ", HW,
              " must be >= 0.");
  if (NC == 0 || HW == 0) return;
  const cudaStream_t st = stream_of(e);
  global_avg_fwd<<<blocks_for(NC, kThreads / 32), kThreads, 0, st>>>(
      NC, HW, 1.0 / static_cast<double>(HW), x, y);
  check_launch("global_avgpool_forward_cuda", st);
}

void global_avgpool_backward_cuda(int64_t NC, int64_t HW, const float* gy, float* gx,
                                  const CudaExec& e) {
  LETHE_CHECK(NC >= 0 && HW >= 0, "global_avgpool_backward_cuda: NC = ", NC, ", HW = ", HW,
              " must be >= 0.");
  if (NC == 0 || HW == 0) return;
  const int64_t total = NC * HW;
  const float inv = 1.f / static_cast<float>(HW);  // as the CPU
  const cudaStream_t st = stream_of(e);
  global_avg_bwd<<<blocks_for(total, kThreads), kThreads, 0, st>>>(total, HW, inv, gy, gx);
  check_launch("global_avgpool_backward_cuda", st);
}

}  // namespace lethe::kernels
