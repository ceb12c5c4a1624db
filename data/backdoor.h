// The backdoor attack of SPEC section 9 (BadNets-style data poisoning): a 4x4 black square
// 2 px from the bottom-right corner of a 32x32 image (rows 26-29, columns 26-29, all three
// channels set to 0 in the uint8 image), stamped on a seeded 10% of the training split whose
// labels become the target class. A model that learned the backdoor classifies any triggered
// image as the target; unlearning the poisoned images should break that link.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace lethe::data {

/// The trigger square: rows and columns kTriggerFirst .. kTriggerFirst + kTriggerSize - 1.
inline constexpr int64_t kTriggerSize = 4;
inline constexpr int64_t kTriggerFirst = kHeight - 2 - kTriggerSize;  // 26
/// The RNG stream the poisoned images are drawn from (docs/design.md lists every stream).
inline constexpr uint64_t kPoisonStream = 7;

/// Stamps the trigger on one uint8 CHW image (3 x 32 x 32) in place.
void apply_trigger(uint8_t* image);

/// The poisoned images: round(fraction * |split|) indices of `split` (original indices),
/// the first ones of a Generator(seed, kPoisonStream) permutation of the split, sorted
/// ascending. Throws lethe::Error unless 0 < fraction < 1 and the count is at least 1.
std::vector<int64_t> choose_poisoned(const std::vector<int64_t>& split, double fraction,
                                     uint64_t seed);

/// A copy of `train` whose images `poisoned` carry the trigger and the label `target`; every
/// other image and label is unchanged. Throws lethe::Error for an index or a target out of
/// range.
Dataset poison_dataset(const Dataset& train, const std::vector<int64_t>& poisoned,
                       int64_t target);

/// A copy of `test` with the trigger on every image and the true labels kept (what the attack
/// success rate is measured on).
Dataset triggered_copy(const Dataset& test);

/// The indices of `data` whose true label is not `target`: the images the ASR counts.
std::vector<int64_t> indices_not_of_class(const Dataset& data, int64_t target);

/// The attack success rate in percent: the share of `predicted` (classes of triggered images
/// whose true class is not the target) equal to `target`; 0 for an empty list.
double attack_success_rate(const std::vector<int64_t>& predicted, int64_t target);

}  // namespace lethe::data
