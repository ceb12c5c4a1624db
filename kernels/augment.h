// GPU data augmentation of CIFAR batches: the pad-crop-flip of data/augment.h and the plain
// uint8 -> float conversion, applied to a whole batch already on the device.
//
// Format: src is n uint8 CHW images (3x32x32, R,G,B planes, 3072 bytes each, back to back);
// out is n float32 CHW images in [0, 1] (value / 255, correctly rounded: the same float as
// the CPU's table), not normalised. Per image i, with dy, dx in -4..4 and flip 0/1:
//   out[i][c][y][x] = src[i][c][y + dy][x' + dx] / 255, x' = flip ? 31 - x : x,
//   0 where the shifted position leaves the image (the zero padding).
// The transforms are drawn on the host (data::draw_crop_flip, a pure function of seed, epoch
// and position) and passed as three small device arrays, so a GPU epoch augments exactly as
// a CPU one: these kernels equal data::crop_flip_image / data::image_to_float bit for bit.
// Shifts outside -4..4 are a caller error; the kernel still reads only inside the image.
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

namespace lethe::kernels {

// ---- CUDA (kernels/cuda/augment.cu): float32, device pointers ----
/// @param src n*3*32*32 bytes; dy, dx, flip: n entries each; out: n*3*32*32 floats
void crop_flip_cuda(int64_t n, const uint8_t* src, const int8_t* dy, const int8_t* dx,
                    const uint8_t* flip, float* out, const CudaExec& e = {});
/// @param src n*3*32*32 bytes; out: n*3*32*32 floats
void image_to_float_cuda(int64_t n, const uint8_t* src, float* out, const CudaExec& e = {});

}  // namespace lethe::kernels
