// The backdoor trigger and data poisoning (data/backdoor.h).
#include "data/backdoor.h"

#include <algorithm>
#include <cmath>

#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::data {

void apply_trigger(uint8_t* image) {
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t y = kTriggerFirst; y < kTriggerFirst + kTriggerSize; ++y)
      std::fill_n(image + (c * kHeight + y) * kWidth + kTriggerFirst, kTriggerSize, uint8_t{0});
}

std::vector<int64_t> choose_poisoned(const std::vector<int64_t>& split, double fraction,
                                     uint64_t seed) {
  LETHE_CHECK(fraction > 0 && fraction < 1, "the poisoned share (--poison-fraction) must lie in (0, 1), got ",
              fraction);
  const auto n = static_cast<int64_t>(split.size());
  const auto count = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  LETHE_CHECK(count >= 1, "poisoning ", fraction * 100, "% of ", n,
              " training images selects none; use a larger fraction or more data");
  Generator gen(seed, kPoisonStream);
  const std::vector<int64_t> perm = gen.permutation(n);
  std::vector<int64_t> out(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k)
    out[static_cast<size_t>(k)] = split[static_cast<size_t>(perm[static_cast<size_t>(k)])];
  std::sort(out.begin(), out.end());
  return out;
}

Dataset poison_dataset(const Dataset& train, const std::vector<int64_t>& poisoned,
                       int64_t target) {
  LETHE_CHECK(target >= 0 && target < train.num_classes, "the backdoor target class ", target,
              " is not a class of ", train.name, " (0..", train.num_classes - 1, ")");
  Dataset out = train;
  for (int64_t i : poisoned) {
    LETHE_CHECK(i >= 0 && i < out.size(), "poisoned index ", i, " is outside the ", out.size(),
                " training images");
    apply_trigger(out.images.data() + i * kImageBytes);
    out.labels[static_cast<size_t>(i)] = static_cast<int32_t>(target);
  }
  return out;
}

Dataset triggered_copy(const Dataset& test) {
  Dataset out = test;
  for (int64_t i = 0; i < out.size(); ++i) apply_trigger(out.images.data() + i * kImageBytes);
  return out;
}

std::vector<int64_t> indices_not_of_class(const Dataset& data, int64_t target) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < data.size(); ++i)
    if (data.labels[static_cast<size_t>(i)] != target) out.push_back(i);
  return out;
}

double attack_success_rate(const std::vector<int64_t>& predicted, int64_t target) {
  if (predicted.empty()) return 0;
  const auto hits = std::count(predicted.begin(), predicted.end(), target);
  return 100.0 * static_cast<double>(hits) / static_cast<double>(predicted.size());
}

}  // namespace lethe::data
