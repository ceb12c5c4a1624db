// SGD update on CUDA (see kernels/optim.h), one fused pass over n parameters in PyTorch's
// order, as the CPU fast path:
//   g' = g + wd*w;  buf = momentum*buf + g';  w -= lr*buf  (Nesterov: w -= lr*(g' + momentum*buf));
//   then w = mask ? w : +0.   momentum == 0: w -= lr*g' and buf is never touched (may be null).
// Layout: flat float32 arrays; w and buf are updated in place, g is read only, mask is bytes.
// The hyper-parameters are rounded to float once on the host, as the CPU fast path does; the
// products may be contracted into fmas (nvcc's default), so results agree with the CPU to
// rounding (tests use kFp32Tol), while the mask is exact: a pruned weight is written as +0
// in the same pass, whatever momentum and weight decay did to it. The momentum buffer is
// left unmasked, as PyTorch leaves it.
// Thread mapping: grid-stride loops, kThreads per block.
// Versions (e.version; 0 = v2):
//   v1 "scalar": one parameter per loop step, the direct port of the CPU loop.
//   v2 "vec4":   float4 loads and stores of w, g and buf (the mask bytes one by one). The
//                pointers must share their misalignment modulo 16 bytes: the `head` (< 4)
//                elements before the 16-byte boundary and the tail after the last whole
//                float4 go one at a time; otherwise v2 falls back to v1.
// Tests: tests/cuda/test_optim_cuda.cpp. Bench: bench/bench_ops_cuda.cpp.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/optim.h"

namespace lethe::kernels {

namespace {

using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;
using cuda::vec4_head;

constexpr int kThreads = 256;
constexpr int kVersions = 2;

// The hyper-parameters as the kernels use them (float, flags resolved on the host).
struct Hyper {
  float lr, momentum, wd;
  bool use_momentum, nesterov;
};

// One parameter's update: returns the new weight (before the mask) and updates b.
__device__ __forceinline__ float sgd_step(const Hyper& h, float w, float g, float& b) {
  const float gi = g + h.wd * w;
  if (!h.use_momentum) return w - h.lr * gi;
  b = h.momentum * b + gi;
  return w - h.lr * (h.nesterov ? gi + h.momentum * b : b);
}

// The pruning mask, applied last: a select, so the weight becomes exactly +0.
__device__ __forceinline__ float keep(const uint8_t* mask, int64_t i, float w) {
  return mask != nullptr && mask[i] == 0 ? 0.f : w;
}

// Element i, shared by v1 and the head/tail of v2.
__device__ __forceinline__ void update_one(const Hyper& h, int64_t i, float* w, const float* g,
                                           float* buf, const uint8_t* mask) {
  float b = h.use_momentum ? buf[i] : 0.f;
  const float wi = sgd_step(h, w[i], g[i], b);
  if (h.use_momentum) buf[i] = b;
  w[i] = keep(mask, i, wi);
}

// v1: one parameter per step of a grid-stride loop.
__global__ void sgd_v1(int64_t n, Hyper h, float* w, const float* g, float* buf,
                       const uint8_t* mask) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    update_one(h, i, w, g, buf, mask);
}

// v2: [0, head) one by one up to the 16-byte boundary, n4 float4s, then the tail.
__global__ void sgd_v2(int64_t n, int64_t head, Hyper h, float* w, const float* g, float* buf,
                       const uint8_t* mask) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n4 = (n - head) / 4, tail = head + 4 * n4;
  // Head and tail hold fewer than 4 elements each; the first threads of the grid take them.
  if (tid < head) update_one(h, tid, w, g, buf, mask);
  if (tid < n - tail) update_one(h, tail + tid, w, g, buf, mask);
  for (int64_t v = tid; v < n4; v += stride) {
    const int64_t i = head + 4 * v;  // w + i, g + i, buf + i are 16-byte aligned here
    float4 wv = *reinterpret_cast<const float4*>(w + i);
    const float4 gv = *reinterpret_cast<const float4*>(g + i);
    float4 bv = make_float4(0.f, 0.f, 0.f, 0.f);
    if (h.use_momentum) bv = *reinterpret_cast<const float4*>(buf + i);
    wv.x = keep(mask, i, sgd_step(h, wv.x, gv.x, bv.x));
    wv.y = keep(mask, i + 1, sgd_step(h, wv.y, gv.y, bv.y));
    wv.z = keep(mask, i + 2, sgd_step(h, wv.z, gv.z, bv.z));
    wv.w = keep(mask, i + 3, sgd_step(h, wv.w, gv.w, bv.w));
    if (h.use_momentum) *reinterpret_cast<float4*>(buf + i) = bv;
    *reinterpret_cast<float4*>(w + i) = wv;
  }
}

void launch_v1(cudaStream_t s, int64_t n, const Hyper& h, float* w, const float* g,
               float* buf, const uint8_t* mask) {
  sgd_v1<<<blocks_for(n, kThreads), kThreads, 0, s>>>(n, h, w, g, buf, mask);
  check_launch("sgd_update_cuda (v1)", s);
}

void launch_v2(cudaStream_t s, int64_t n, int64_t head, const Hyper& h, float* w,
               const float* g, float* buf, const uint8_t* mask) {
  head = std::min(head, n);
  sgd_v2<<<blocks_for((n - head) / 4, kThreads), kThreads, 0, s>>>(n, head, h, w, g, buf,
                                                                    mask);
  check_launch("sgd_update_cuda (v2)", s);
}

}  // namespace

void sgd_update_cuda(int64_t n, const SgdParams& p, float* w, const float* g, float* buf,
                     const uint8_t* mask, const CudaExec& e) {
  LETHE_CHECK(n >= 0, "sgd_update_cuda: n = ", n, " must be >= 0.");
  LETHE_CHECK(e.version >= 0 && e.version <= kVersions, "sgd_update_cuda: version ", e.version,
              " is not one of 0..", kVersions, ".");
  const bool use_momentum = p.momentum != 0.0;
  LETHE_CHECK(!use_momentum || buf != nullptr,
              "sgd_update_cuda: momentum ", p.momentum, " needs a momentum buffer.");
  if (n == 0) return;
  const Hyper h{static_cast<float>(p.lr), static_cast<float>(p.momentum),
                static_cast<float>(p.weight_decay), use_momentum, p.nesterov};
  float* b = use_momentum ? buf : nullptr;  // never read or written without momentum
  const cudaStream_t s = stream_of(e);
  const int v = e.version == 0 ? 2 : e.version;
  const int64_t head = v == 2 ? vec4_head({w, g, b}) : -1;
  if (head >= 0)
    launch_v2(s, n, head, h, w, g, b, mask);
  else
    launch_v1(s, n, h, w, g, b, mask);
}

int optim_cuda_versions() { return kVersions; }

const char* optim_cuda_version_name(int v) {
  switch (v) {
    case 1: return "scalar";
    case 2: return "vec4";
    default: return "unknown";
  }
}

}  // namespace lethe::kernels
