// A synthetic stand-in for CIFAR-10, so the README demo and tests run with no data at all.
//
// Format: the same Dataset as the CIFAR readers (uint8 CHW 3x32x32, int32 labels,
// name "synthetic"). Class c has its own colour (hue c / num_classes) and stripe pattern
// (horizontal for even c, vertical for odd c, period 4, 6 or 8 px by (c / 2) mod 3); each
// image draws a random stripe phase, background grey level, contrast and per-pixel noise.
// Stripes are horizontal or vertical so a horizontal flip keeps the class (augmentation must
// not turn one class into another), and a small CNN learns the classes within an epoch or
// two. Labels are balanced: image i has label i mod num_classes.
//
// RNG: lethe::Generator(seed, stream 6) (design.md lists streams 0..5; 6 is synthetic data),
// image i reads blocks [i * 4096, i * 4096 + 769), so image i is a pure function of
// (seed, i, num_classes) and the set is built in parallel with identical results.
#pragma once

#include <cstdint>

#include "data/dataset.h"

namespace lethe::data {

/// The Generator stream synthetic data is drawn from.
inline constexpr uint64_t kSyntheticStream = 6;
/// Images of the default synthetic training and test sets (load_dataset("synthetic", ...)).
inline constexpr int64_t kSyntheticTrainSize = 10000;
inline constexpr int64_t kSyntheticTestSize = 2000;

/// `n` synthetic 32x32 RGB images of `num_classes` (1..256) learnable classes.
Dataset make_synthetic(int64_t n, int64_t num_classes = 10, uint64_t seed = 0);

/// The default synthetic split: 10,000 training images (seed 1) or 2,000 test images
/// (seed 2), 10 classes.
Dataset make_synthetic_split(Split split);

/// Rounded per-channel mean and std of synthetic images in [0, 1] (measured once; fixed
/// constants, like CIFAR's).
Normalization synthetic_normalization();

}  // namespace lethe::data
