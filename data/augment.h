// CPU augmentation of SPEC section 1 (training only): pad 4 px with zeros (black, before
// normalisation), take a random 32x32 crop, flip horizontally with p = 0.5; and the plain
// uint8 -> float conversion used for evaluation batches.
//
// Format: the source is one uint8 CHW image (3x32x32, R,G,B planes); the output is float32
// CHW in [0, 1] (value / 255, torchvision's ToTensor), NOT normalised (the model does that).
// A crop of the 40x40 padded image at corner (4 + dy, 4 + dx) is the source shifted by
// (dy, dx) in -4..4 with zeros where it leaves the image; the flip follows the crop (as
// torchvision's RandomCrop then RandomHorizontalFlip):
//   out[c][y][x] = src[c][y + dy][x' + dx] / 255, x' = flip ? 31 - x : x, 0 when outside.
//
// RNG (design.md stream 2 = augmentation): the transform of the sample at position p of
// epoch e is drawn by lethe::Generator(seed, 2) with its offset set to e * 2^32 + 4 p:
// randint(9) - 4 -> dy, randint(9) - 4 -> dx, randint(2) -> flip (one block each, four
// reserved). It is a pure function of (seed, e, p), which makes resumed epochs exact.
#pragma once

#include <cstdint>

namespace lethe::data {

/// Zero padding on each side before the random crop.
inline constexpr int kPad = 4;

/// One augmentation: the crop as a shift of the source, and the horizontal flip.
struct CropFlip {
  int dy = 0;         ///< row shift in -kPad..kPad (crop corner row = kPad + dy)
  int dx = 0;         ///< column shift in -kPad..kPad
  bool flip = false;  ///< mirror left-right after the crop
  bool operator==(const CropFlip&) const = default;
};

/// Writes the augmented image: src uint8 [3,32,32] -> out float32 [3,32,32] in [0, 1].
void crop_flip_image(const uint8_t* src, CropFlip t, float* out);

/// Writes the un-augmented image as float32 in [0, 1] (value / 255).
void image_to_float(const uint8_t* src, float* out);

/// The transform of the sample at `position` of `epoch` (see the header comment).
/// @param position 0-based place of the sample in the epoch's order, < 2^30
CropFlip draw_crop_flip(uint64_t seed, int64_t epoch, int64_t position);

}  // namespace lethe::data
