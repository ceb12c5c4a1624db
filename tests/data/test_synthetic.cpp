// The synthetic data set: deterministic per image, balanced, learnable (a nearest-centroid
// classifier on mean colour separates the classes), and its normalisation constants match
// its pixel statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "data/synthetic.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

// Chromaticity of an image: per-channel mean minus the grey level, scaled to unit length.
std::array<double, 3> chroma(const Dataset& d, int64_t i) {
  std::array<double, 3> m{};
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 1024; ++k) m[c] += d.image(i)[c * 1024 + k];
  const double grey = (m[0] + m[1] + m[2]) / 3.0;
  double norm = 0;
  for (double& v : m) {
    v -= grey;
    norm += v * v;
  }
  for (double& v : m) v /= std::sqrt(norm) + 1e-12;
  return m;
}

TEST(Synthetic, DeterministicBalancedAndPerImage) {
  const Dataset a = make_synthetic(100, 10, 5);
  const Dataset b = make_synthetic(100, 10, 5);
  const Dataset prefix = make_synthetic(30, 10, 5);
  const Dataset other = make_synthetic(100, 10, 6);
  EXPECT_EQ(a.name, "synthetic");
  EXPECT_EQ(a.num_classes, 10);
  ASSERT_EQ(a.images.size(), 100u * 3072u);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(std::memcmp(a.images.data(), prefix.images.data(), prefix.images.size()), 0);
  EXPECT_NE(a.images, other.images);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(a.labels[i], i % 10);
  EXPECT_THROW(make_synthetic(10, 0, 1), Error);
  EXPECT_EQ(make_synthetic_split(Split::Test).size(), kSyntheticTestSize);
}

TEST(Synthetic, ClassesAreLearnable) {
  const Dataset train = make_synthetic(1000, 10, 1), test = make_synthetic(500, 10, 2);
  std::vector<std::array<double, 3>> centroid(10, {0, 0, 0});
  for (int64_t i = 0; i < train.size(); ++i) {
    const auto f = chroma(train, i);
    for (int c = 0; c < 3; ++c) centroid[train.labels[i]][c] += f[c];
  }
  int64_t correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    const auto f = chroma(test, i);
    int best = 0;
    double best_d = 1e300;
    for (int k = 0; k < 10; ++k) {
      double d = 0;
      for (int c = 0; c < 3; ++c) d += std::pow(f[c] - centroid[k][c] / 100.0, 2);
      if (d < best_d) best_d = d, best = k;
    }
    correct += best == test.labels[i];
  }
  EXPECT_GT(correct, 450) << "nearest-centroid accuracy " << correct << " / 500";
}

TEST(Synthetic, NormalizationMatchesPixelStatistics) {
  const Dataset d = make_synthetic(2000, 10, 1);
  const Normalization norm = synthetic_normalization();
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < d.size(); ++i)
      for (int k = 0; k < 1024; ++k) {
        const double v = d.image(i)[c * 1024 + k] / 255.0;
        s += v;
        s2 += v * v;
      }
    const double n = 1024.0 * static_cast<double>(d.size());
    const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
    std::cout << "[ stats ] channel " << c << " mean " << mean << " std " << sd << "\n";
    EXPECT_NEAR(mean, norm.mean[c], 0.01);
    EXPECT_NEAR(sd, norm.std[c], 0.01);
  }
}

}  // namespace
}  // namespace lethe::data
