// Seeded per-class train/validation split (see split.h for the RNG layout).
#include "data/split.h"

#include <algorithm>
#include <cmath>

#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::data {

TrainValSplit split_train_val(const std::vector<int32_t>& labels, int64_t num_classes,
                              uint64_t seed, double val_fraction) {
  LETHE_CHECK(num_classes > 0, "split_train_val: num_classes=", num_classes, " must be > 0.");
  LETHE_CHECK(val_fraction >= 0.0 && val_fraction <= 1.0, "split_train_val: val_fraction=",
              val_fraction, " must lie in [0, 1].");
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < labels.size(); ++i) {
    const int32_t c = labels[i];
    LETHE_CHECK(c >= 0 && c < num_classes, "split_train_val: label ", c, " of image ", i,
                " is outside 0..", num_classes - 1, ".");
    by_class[static_cast<size_t>(c)].push_back(static_cast<int64_t>(i));
  }
  Generator gen(seed, 1);  // stream 1: data order, offsets [0, 2^32) belong to the split
  TrainValSplit s;
  for (const auto& idx : by_class) {
    const auto n = static_cast<int64_t>(idx.size());
    // The small epsilon keeps exact products such as 5000 * 0.1 = 500 from flooring to 499.
    const auto n_val = static_cast<int64_t>(std::floor(static_cast<double>(n) * val_fraction + 1e-9));
    const std::vector<int64_t> perm = gen.permutation(n);
    for (int64_t k = 0; k < n; ++k)
      (k < n_val ? s.val : s.train).push_back(idx[static_cast<size_t>(perm[static_cast<size_t>(k)])]);
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.val.begin(), s.val.end());
  return s;
}

}  // namespace lethe::data
