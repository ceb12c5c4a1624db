// Synthetic learnable images (see synthetic.h for the class patterns and the RNG layout).
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

// Blocks reserved per image: 769 are used (3 parameters + 3072 noise values, 4 per block),
// the rest keeps images apart if the drawing ever needs a few more numbers.
constexpr uint64_t kBlocksPerImage = 4096;

// HSV -> RGB with full value; s in [0, 1].
void hue_to_rgb(double h, double s, float rgb[3]) {
  const double h6 = 6.0 * (h - std::floor(h));
  const int sector = static_cast<int>(h6) % 6;
  const double f = h6 - std::floor(h6);
  const double p = 1.0 - s, q = 1.0 - s * f, t = 1.0 - s * (1.0 - f);
  const double table[6][3] = {{1, t, p}, {q, 1, p}, {p, 1, t}, {p, q, 1}, {t, p, 1}, {1, p, q}};
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<float>(table[sector][c]);
}

void draw_image(int64_t i, int64_t num_classes, uint64_t seed, uint8_t* out, int32_t* label) {
  const int64_t c = i % num_classes;
  *label = static_cast<int32_t>(c);
  Generator g(seed, kSyntheticStream);
  g.set_state({seed, kSyntheticStream, static_cast<uint64_t>(i) * kBlocksPerImage});
  float par[4];  // phase, background grey, contrast, (unused)
  g.fill_uniform(par, 4);
  float noise[kImageBytes];
  g.fill_uniform(noise, kImageBytes, -0.15, 0.15);

  float colour[3];
  hue_to_rgb(static_cast<double>(c) / static_cast<double>(num_classes), 0.85, colour);
  const bool vertical = c % 2 == 1;
  const double period = 4.0 + 2.0 * static_cast<double>((c / 2) % 3);
  const double phase = 2.0 * std::numbers::pi * par[0];
  const float grey = 0.1f + 0.35f * par[1];
  const float contrast = 0.35f + 0.25f * par[2];
  for (int64_t y = 0; y < kHeight; ++y)
    for (int64_t x = 0; x < kWidth; ++x) {
      const double t = static_cast<double>(vertical ? x : y);
      const float s =
          static_cast<float>(0.5 + 0.5 * std::sin(2.0 * std::numbers::pi * t / period + phase));
      for (int64_t ch = 0; ch < kChannels; ++ch) {
        const int64_t k = (ch * kHeight + y) * kWidth + x;
        const float v = std::clamp(grey + contrast * s * colour[ch] + noise[k], 0.0f, 1.0f);
        out[k] = static_cast<uint8_t>(std::lround(v * 255.0f));
      }
    }
}

}  // namespace

Dataset make_synthetic(int64_t n, int64_t num_classes, uint64_t seed) {
  LETHE_CHECK(n >= 0 && n < (int64_t{1} << 40), "make_synthetic: n=", n,
              " must lie in [0, 2^40).");
  LETHE_CHECK(num_classes >= 1 && num_classes <= 256, "make_synthetic: num_classes=",
              num_classes, " must lie in 1..256.");
  Dataset d;
  d.name = "synthetic";
  d.num_classes = num_classes;
  d.images.resize(static_cast<size_t>(n * kImageBytes));
  d.labels.resize(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    draw_image(i, num_classes, seed, d.images.data() + i * kImageBytes,
               d.labels.data() + i);
  return d;
}

Dataset make_synthetic_split(Split split) {
  return split == Split::Train ? make_synthetic(kSyntheticTrainSize, 10, 1)
                               : make_synthetic(kSyntheticTestSize, 10, 2);
}

Normalization synthetic_normalization() {
  // Measured on make_synthetic(2000, 10, 1): 0.4114 / 0.4123 / 0.4114 and std ~0.200; the
  // class hues are spread evenly, so the channels agree in expectation.
  return {{0.412f, 0.412f, 0.412f}, {0.200f, 0.200f, 0.200f}};
}

}  // namespace lethe::data
