// Elementwise family on CUDA (formulas in kernels/elementwise.h): relu forward/backward, add,
// add_relu, mul, scale, axpy, fill and mask_mul over flat float32 arrays of n elements.
//
// Layout: flat; every op is a pure map over i in [0, n). Element i is read and then written
// by one thread, so an output may alias an input of the same position (no __restrict__).
// Thread mapping: grid-stride loops, kThreads per block, the grid capped by blocks_for.
// Exactness: each op is the same single IEEE operation as the CPU fast path (relu as the
// select `x < 0 ? 0 : x`, so a NaN passes; axpy as one fmaf, as GCC contracts the CPU loop;
// mask_mul as a select, so a pruned inf/NaN becomes +0), so results are bit-identical.
//
// How the ops share two kernels: an op is a small struct holding its pointers, with one()
// doing element i and four() doing the 16-byte-aligned elements i..i+3. The float formulas
// themselves are one-line functors (Relu, Add, ...) plugged into MapOp.
//
// Versions (e.version; 0 = v2):
//   v1 "scalar": one element per loop step, the direct port of the CPU loop.
//   v2 "vec4":   float4 loads and stores (one 16-byte transaction per 4 elements). The float
//                pointers must share their misalignment modulo 16 bytes: the first `head`
//                (< 4) elements, up to the 16-byte boundary, and the tail after the last
//                whole float4 are done one at a time. Pointers misaligned differently (say
//                x offset by one float, y not) fall back to v1.
// Tests: tests/cuda/test_elementwise_cuda.cpp. Bench: bench/bench_ops_cuda.cpp.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"

namespace lethe::kernels {

namespace {

using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;
using cuda::vec4_head;

constexpr int kThreads = 256;
constexpr int kVersions = 2;

// ---- the per-element formulas: (first input, second input) -> output --------------------
// Unused inputs arrive as 0.

struct Relu {
  __device__ float operator()(float x, float) const { return x < 0.f ? 0.f : x; }
};
struct ReluGrad {  // (x, gy): gradient 0 at x == 0
  __device__ float operator()(float x, float gy) const { return x > 0.f ? gy : 0.f; }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct AddRelu {
  __device__ float operator()(float a, float b) const {
    const float s = a + b;
    return s < 0.f ? 0.f : s;
  }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct Scale {
  float alpha;
  __device__ float operator()(float x, float) const { return alpha * x; }
};
struct Axpy {  // (x, y_old)
  float alpha;
  __device__ float operator()(float x, float y) const { return fmaf(alpha, x, y); }
};
struct Fill {
  float value;
  __device__ float operator()(float, float) const { return value; }
};

// ---- ops: the loads and stores around a formula -------------------------------------------

// y = f(a, b) with kIn in 0..2 float inputs (a, then b); the unused pointers are nullptr.
template <int kIn, class F>
struct MapOp {
  const float* a;
  const float* b;
  float* y;
  F f;

  __device__ void one(int64_t i) const {
    float va = 0.f, vb = 0.f;
    if constexpr (kIn >= 1) va = a[i];
    if constexpr (kIn >= 2) vb = b[i];
    y[i] = f(va, vb);
  }
  // i is a multiple of 4 past the head, so a + i, b + i, y + i are 16-byte aligned.
  __device__ void four(int64_t i) const {
    float4 va = make_float4(0.f, 0.f, 0.f, 0.f), vb = va;
    if constexpr (kIn >= 1) va = *reinterpret_cast<const float4*>(a + i);
    if constexpr (kIn >= 2) vb = *reinterpret_cast<const float4*>(b + i);
    float4 r;
    r.x = f(va.x, vb.x);
    r.y = f(va.y, vb.y);
    r.z = f(va.z, vb.z);
    r.w = f(va.w, vb.w);
    *reinterpret_cast<float4*>(y + i) = r;
  }
};

// y = mask ? x : 0. The mask bytes are read one by one (4 consecutive bytes of a warp's
// float4s still coalesce); only x and y take part in the alignment.
struct MaskOp {
  const float* x;
  const uint8_t* mask;
  float* y;

  __device__ void one(int64_t i) const { y[i] = mask[i] ? x[i] : 0.f; }
  __device__ void four(int64_t i) const {
    const float4 v = *reinterpret_cast<const float4*>(x + i);
    float4 r;
    r.x = mask[i] ? v.x : 0.f;
    r.y = mask[i + 1] ? v.y : 0.f;
    r.z = mask[i + 2] ? v.z : 0.f;
    r.w = mask[i + 3] ? v.w : 0.f;
    *reinterpret_cast<float4*>(y + i) = r;
  }
};

// ---- kernels ----------------------------------------------------------------------------

// v1: one element per step of a grid-stride loop.
template <class Op>
__global__ void map_v1(int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    op.one(i);
}

// v2: elements [0, head) reach the 16-byte boundary, then n4 whole float4s, then the tail.
template <class Op>
__global__ void map_v2(int64_t n, int64_t head, Op op) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n4 = (n - head) / 4, tail = head + 4 * n4;
  // Head and tail hold fewer than 4 elements each: the first threads of the grid take them
  // (the grid always has at least one block of kThreads).
  if (tid < head) op.one(tid);
  if (tid < n - tail) op.one(tail + tid);
  for (int64_t v = tid; v < n4; v += stride) op.four(head + 4 * v);
}

// ---- launchers --------------------------------------------------------------------------

template <class Op>
void launch_v1(cudaStream_t s, const char* name, int64_t n, const Op& op) {
  map_v1<<<blocks_for(n, kThreads), kThreads, 0, s>>>(n, op);
  check_launch(name, s);
}

template <class Op>
void launch_v2(cudaStream_t s, const char* name, int64_t n, int64_t head, const Op& op) {
  head = std::min(head, n);
  const int64_t n4 = (n - head) / 4;
  map_v2<<<blocks_for(n4, kThreads), kThreads, 0, s>>>(n, head, op);
  check_launch(name, s);
}

// The entry points' common part: argument checks, version choice, v2's fallback to v1.
template <class Op>
void run(const char* name, int64_t n, const Op& op, std::initializer_list<const float*> ptrs,
         const CudaExec& e) {
  LETHE_CHECK(n >= 0, name, ": n = ", n, " must be >= 0.");
  LETHE_CHECK(e.version >= 0 && e.version <= kVersions, name, ": version ", e.version,
              " is not one of 0..", kVersions, ".");
  if (n == 0) return;
  const cudaStream_t s = stream_of(e);
  const int v = e.version == 0 ? 2 : e.version;
  const int64_t head = v == 2 ? vec4_head(ptrs) : -1;
  if (head >= 0)
    launch_v2(s, name, n, head, op);
  else
    launch_v1(s, name, n, op);
}

}  // namespace

// ---- entry points -----------------------------------------------------------------------

void relu_forward_cuda(int64_t n, const float* x, float* y, const CudaExec& e) {
  run("relu_forward_cuda", n, MapOp<1, Relu>{x, nullptr, y, {}}, {x, y}, e);
}

void relu_backward_cuda(int64_t n, const float* x, const float* gy, float* gx,
                        const CudaExec& e) {
  run("relu_backward_cuda", n, MapOp<2, ReluGrad>{x, gy, gx, {}}, {x, gy, gx}, e);
}

void add_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e) {
  run("add_cuda", n, MapOp<2, Add>{a, b, y, {}}, {a, b, y}, e);
}

void add_relu_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e) {
  run("add_relu_cuda", n, MapOp<2, AddRelu>{a, b, y, {}}, {a, b, y}, e);
}

void mul_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e) {
  run("mul_cuda", n, MapOp<2, Mul>{a, b, y, {}}, {a, b, y}, e);
}

void scale_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e) {
  run("scale_cuda", n, MapOp<1, Scale>{x, nullptr, y, Scale{alpha}}, {x, y}, e);
}

void axpy_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e) {
  run("axpy_cuda", n, MapOp<2, Axpy>{x, y, y, Axpy{alpha}}, {x, y}, e);
}

void fill_cuda(int64_t n, float value, float* y, const CudaExec& e) {
  run("fill_cuda", n, MapOp<0, Fill>{nullptr, nullptr, y, Fill{value}}, {y}, e);
}

void mask_mul_cuda(int64_t n, const float* x, const uint8_t* mask, float* y,
                   const CudaExec& e) {
  run("mask_mul_cuda", n, MaskOp{x, mask, y}, {x, y}, e);
}

int elementwise_cuda_versions() { return kVersions; }

const char* elementwise_cuda_version_name(int v) {
  switch (v) {
    case 1: return "scalar";
    case 2: return "vec4";
    default: return "unknown";
  }
}

}  // namespace lethe::kernels
