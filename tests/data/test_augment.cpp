// Pad-crop-flip augmentation: exact against an explicit 40x40 zero-padded oracle for every
// shift and flip, zero padding visible as 0, and the drawn shifts cover -4..4 uniformly.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data_test_util.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

std::vector<uint8_t> test_image(int64_t id) {
  std::vector<uint8_t> img(kImageBytes);
  for (int64_t k = 0; k < kImageBytes; ++k) img[static_cast<size_t>(k)] = lethe::testing::test_pixel(id, k);
  return img;
}

// The oracle: build the padded image, crop at (4 + dy, 4 + dx), then mirror the crop.
std::vector<float> reference(const std::vector<uint8_t>& src, CropFlip t) {
  constexpr int P = 40;
  std::vector<float> padded(3 * P * P, 0.0f);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        padded[(c * P + y + 4) * P + x + 4] = static_cast<float>(src[(c * 32 + y) * 32 + x]) / 255.0f;
  std::vector<float> crop(kImageBytes), out(kImageBytes);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        crop[(c * 32 + y) * 32 + x] = padded[(c * P + y + 4 + t.dy) * P + x + 4 + t.dx];
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        out[(c * 32 + y) * 32 + x] = crop[(c * 32 + y) * 32 + (t.flip ? 31 - x : x)];
  return out;
}

TEST(Augment, IdentityIsPlainConversion) {
  const std::vector<uint8_t> src = test_image(3);
  std::vector<float> a(kImageBytes), b(kImageBytes);
  crop_flip_image(src.data(), {}, a.data());
  image_to_float(src.data(), b.data());
  for (int64_t k = 0; k < kImageBytes; ++k) {
    ASSERT_EQ(a[k], b[k]);
    ASSERT_EQ(b[k], static_cast<float>(src[k]) / 255.0f);  // ToTensor's value, bit for bit
  }
}

TEST(Augment, EveryShiftAndFlipMatchesThePaddedCrop) {
  const std::vector<uint8_t> src = test_image(11);
  std::vector<float> got(kImageBytes);
  for (int dy = -kPad; dy <= kPad; ++dy)
    for (int dx = -kPad; dx <= kPad; ++dx)
      for (bool flip : {false, true}) {
        const CropFlip t{dy, dx, flip};
        crop_flip_image(src.data(), t, got.data());
        const std::vector<float> want = reference(src, t);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
            << "dy=" << dy << " dx=" << dx << " flip=" << flip;
      }
}

TEST(Augment, PaddingIsBlackAndShiftIsExact) {
  std::vector<uint8_t> white(kImageBytes, 255);
  std::vector<float> out(kImageBytes);
  crop_flip_image(white.data(), {-4, 3, false}, out.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const bool inside = y >= 4 && x < 29;  // rows 0..3 padded above, columns 29..31 at right
        ASSERT_EQ(out[(c * 32 + y) * 32 + x], inside ? 1.0f : 0.0f) << c << "," << y << "," << x;
      }
  // A flipped shift: the padded columns move to the left edge.
  crop_flip_image(white.data(), {0, 3, true}, out.data());
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[3], 1.0f);
  EXPECT_EQ(out[31], 1.0f);
  // One marked source pixel lands where the shift says.
  std::vector<uint8_t> dot(kImageBytes, 0);
  dot[(1 * 32 + 10) * 32 + 20] = 200;  // channel G, y = 10, x = 20
  crop_flip_image(dot.data(), {2, -3, false}, out.data());
  EXPECT_EQ(out[(1 * 32 + 8) * 32 + 23], 200.0f / 255.0f);  // out[y][x] = src[y+2][x-3]
  crop_flip_image(dot.data(), {2, -3, true}, out.data());
  EXPECT_EQ(out[(1 * 32 + 8) * 32 + (31 - 23)], 200.0f / 255.0f);
  EXPECT_THROW(crop_flip_image(dot.data(), {5, 0, false}, out.data()), Error);
}

TEST(Augment, DrawsCoverTheRangeUniformlyAndAreReproducible) {
  std::vector<int64_t> dy(9, 0), dx(9, 0);
  int64_t flips = 0;
  constexpr int64_t n = 18000;
  for (int64_t p = 0; p < n; ++p) {
    const CropFlip t = draw_crop_flip(5, 2, p);
    ASSERT_GE(t.dy, -4);
    ASSERT_LE(t.dy, 4);
    ASSERT_GE(t.dx, -4);
    ASSERT_LE(t.dx, 4);
    dy[static_cast<size_t>(t.dy + 4)]++;
    dx[static_cast<size_t>(t.dx + 4)]++;
    flips += t.flip;
  }
  for (int k = 0; k < 9; ++k) {
    EXPECT_NEAR(dy[k], n / 9, 200) << "dy=" << k - 4;  // sd ~ 42
    EXPECT_NEAR(dx[k], n / 9, 200) << "dx=" << k - 4;
  }
  EXPECT_NEAR(flips, n / 2, 300);  // sd ~ 67
  EXPECT_EQ(draw_crop_flip(5, 2, 77), draw_crop_flip(5, 2, 77));
  int64_t same_epoch = 0, same_seed = 0;
  for (int64_t p = 0; p < 200; ++p) {
    same_epoch += draw_crop_flip(5, 2, p) == draw_crop_flip(5, 3, p);
    same_seed += draw_crop_flip(5, 2, p) == draw_crop_flip(6, 2, p);
  }
  EXPECT_LT(same_epoch, 20);  // 1/162 chance each
  EXPECT_LT(same_seed, 20);
}

}  // namespace
}  // namespace lethe::data
