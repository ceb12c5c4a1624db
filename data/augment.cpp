// Pad-crop-flip augmentation and uint8 -> float conversion (see augment.h for the formula
// and the RNG layout).
#include "data/augment.h"

#include <array>

#include "data/dataset.h"
#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

// v / 255 for every byte: a table lookup is both exact (the same float as the division)
// and cheaper than a convert + divide per pixel.
const std::array<float, 256>& byte_to_unit() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[static_cast<size_t>(v)] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  return table;
}

constexpr uint64_t kAugmentStream = 2;
constexpr uint64_t kBlocksPerSample = 4;

}  // namespace

void crop_flip_image(const uint8_t* src, CropFlip t, float* out) {
  LETHE_CHECK(t.dy >= -kPad && t.dy <= kPad && t.dx >= -kPad && t.dx <= kPad,
              "crop_flip_image: shift (", t.dy, ", ", t.dx, ") outside -", kPad, "..", kPad, ".");
  const auto& lut = byte_to_unit();
  const int h = static_cast<int>(kHeight), w = static_cast<int>(kWidth);
  for (int c = 0; c < static_cast<int>(kChannels); ++c) {
    const uint8_t* plane = src + c * h * w;
    for (int y = 0; y < h; ++y) {
      float* row = out + (c * h + y) * w;
      const int sy = y + t.dy;
      if (sy < 0 || sy >= h) {  // a padded row: black
        for (int x = 0; x < w; ++x) row[x] = 0.0f;
        continue;
      }
      const uint8_t* srow = plane + sy * w;
      for (int x = 0; x < w; ++x) {
        const int sx = (t.flip ? w - 1 - x : x) + t.dx;
        row[x] = (sx >= 0 && sx < w) ? lut[srow[sx]] : 0.0f;
      }
    }
  }
}

void image_to_float(const uint8_t* src, float* out) {
  const auto& lut = byte_to_unit();
  for (int64_t k = 0; k < kImageBytes; ++k) out[k] = lut[src[k]];
}

CropFlip draw_crop_flip(uint64_t seed, int64_t epoch, int64_t position) {
  LETHE_CHECK(epoch >= 0 && epoch < (int64_t{1} << 31) && position >= 0 &&
                  position < (int64_t{1} << 30),
              "draw_crop_flip: epoch ", epoch, " or position ", position, " out of range.");
  Generator g(seed, kAugmentStream);
  g.set_state({seed, kAugmentStream,
               (static_cast<uint64_t>(epoch) << 32) +
                   kBlocksPerSample * static_cast<uint64_t>(position)});
  CropFlip t;
  t.dy = static_cast<int>(g.randint(2 * kPad + 1)) - kPad;
  t.dx = static_cast<int>(g.randint(2 * kPad + 1)) - kPad;
  t.flip = g.randint(2) == 1;
  return t;
}

}  // namespace lethe::data
