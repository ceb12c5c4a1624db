// GPU augmentation of CIFAR batches (see kernels/augment.h): pad-crop-flip and the plain
// uint8 -> float conversion of n 3x32x32 images.
//
// Layout: image i at src + i*3072 (uint8 CHW) and out + i*3072 (float32 CHW); flat output
// index k = ((i*3 + c)*32 + y)*32 + x.
// crop_flip: one output element per step of a grid-stride loop. It reads its image's
//   transform (dy, dx, flip; the same for the 3072 threads of an image, so the loads hit the
//   cache) and the source byte at (y + dy, x' + dx) with x' = flip ? 31 - x : x, or writes 0
//   when that position falls in the zero padding. The bounds test also keeps a bad shift
//   from reading outside the image. Consecutive threads write consecutive floats.
// image_to_float: one byte per step (v1), or four when src is 4-byte and out 16-byte aligned
//   (one uchar4 load, one float4 store); the image size is a multiple of 4, so no tail.
// value / 255 is __fdiv_rn: the correctly rounded quotient, the same float as the host's
// `float(v) / 255.0f` table in data/augment.cpp, whatever the compiler's division flags.
// One version each (image_to_float picks its path by alignment).
// Tests: tests/cuda/test_augment_cuda.cpp. Bench: bench/bench_ops_cuda.cpp.
#include <cstdint>

#include "kernels/augment.h"
#include "kernels/cuda/common.cuh"

namespace lethe::kernels {

namespace {

using cuda::blocks_for;
using cuda::check_launch;
using cuda::stream_of;

constexpr int kThreads = 256;
constexpr int kSide = 32;                          // image height = width
constexpr int64_t kPlane = kSide * kSide;          // 1024
constexpr int64_t kImage = 3 * kPlane;             // 3072 values per image

__device__ __forceinline__ float unit(uint8_t v) {
  return __fdiv_rn(static_cast<float>(v), 255.f);
}

__global__ void crop_flip_kernel(int64_t total, const uint8_t* src, const int8_t* dy,
                                 const int8_t* dx, const uint8_t* flip, float* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    // k -> (image i, channel plane offset, row y, column x)
    const int x = static_cast<int>(k % kSide);
    const int y = static_cast<int>((k / kSide) % kSide);
    const int64_t i = k / kImage;
    const int64_t plane = (k / kPlane) * kPlane;  // start of plane (i, c) in src and out
    const int sy = y + dy[i];
    const int sx = (flip[i] ? kSide - 1 - x : x) + dx[i];
    const bool inside = sy >= 0 && sy < kSide && sx >= 0 && sx < kSide;
    out[k] = inside ? unit(src[plane + sy * kSide + sx]) : 0.f;
  }
}

__global__ void to_float_v1(int64_t total, const uint8_t* src, float* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride)
    out[k] = unit(src[k]);
}

// Four values per step; total4 = total / 4 (total is a multiple of 4).
__global__ void to_float_vec4(int64_t total4, const uchar4* src, float4* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total4;
       k += stride) {
    const uchar4 v = src[k];
    out[k] = make_float4(unit(v.x), unit(v.y), unit(v.z), unit(v.w));
  }
}

}  // namespace

void crop_flip_cuda(int64_t n, const uint8_t* src, const int8_t* dy, const int8_t* dx,
                    const uint8_t* flip, float* out, const CudaExec& e) {
  LETHE_CHECK(n >= 0, "crop_flip_cuda: n = ", n, " must be >= 0.");
  if (n == 0) return;
  const int64_t total = n * kImage;
  const cudaStream_t s = stream_of(e);
  crop_flip_kernel<<<blocks_for(total, kThreads), kThreads, 0, s>>>(total, src, dy, dx, flip,
                                                                     out);
  check_launch("crop_flip_cuda", s);
}

void image_to_float_cuda(int64_t n, const uint8_t* src, float* out, const CudaExec& e) {
  LETHE_CHECK(n >= 0, "image_to_float_cuda: n = ", n, " must be >= 0.");
  if (n == 0) return;
  const int64_t total = n * kImage;
  const cudaStream_t s = stream_of(e);
  const bool aligned = reinterpret_cast<uintptr_t>(src) % 4 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (aligned) {
    to_float_vec4<<<blocks_for(total / 4, kThreads), kThreads, 0, s>>>(
        total / 4, reinterpret_cast<const uchar4*>(src), reinterpret_cast<float4*>(out));
  } else {
    to_float_v1<<<blocks_for(total, kThreads), kThreads, 0, s>>>(total, src, out);
  }
  check_launch("image_to_float_cuda", s);
}

}  // namespace lethe::kernels
