// The seeded train/validation split of SPEC section 1: for each class, shuffle that class's
// indices with the seeded RNG and hold out the first 10% as validation; the other 90%
// (CIFAR-10: 4,500 per class, 45,000 in all) are "the training split" used for training,
// retain and forget sets.
//
// RNG: lethe::Generator(seed, stream 1 = data order) from offset 0; classes are shuffled in
// order 0, 1, ..., each by Generator::permutation of its index list (original order), so
// the split is a pure function of (labels, seed, fraction). The loader's epoch orders use the
// same stream from offset 2^32 on (data/loader.h), so the two never share numbers.
#pragma once

#include <cstdint>
#include <vector>

namespace lethe::data {

/// Original indices (0..N-1 of the training files), each list sorted ascending.
struct TrainValSplit {
  std::vector<int64_t> train;  ///< the training split (retain + forget come from here)
  std::vector<int64_t> val;    ///< held-out validation images
};

/// Per class, floor(count * val_fraction) indices (after a seeded shuffle) go to `val`.
/// @param labels the training labels, all in [0, num_classes)
TrainValSplit split_train_val(const std::vector<int32_t>& labels, int64_t num_classes,
                              uint64_t seed, double val_fraction = 0.1);

}  // namespace lethe::data
