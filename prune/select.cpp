// Global selection (see select.h).
#include "prune/select.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/rng.h"

namespace lethe::prune {

int64_t prune_count(double rate, int64_t total) {
  LETHE_CHECK(std::isfinite(rate) && rate >= 0.0 && rate <= 1.0, "the pruning rate must lie in ",
              "[0, 1] (a fraction, e.g. 0.95), got ", rate);
  LETHE_CHECK(total >= 0, "prune_count: negative total ", total);
  // std::llround rounds halves away from zero; rate * total is exact enough for any model size
  // (below 2^53 weights) that the rounding decides only true halves.
  return std::min<int64_t>(total, std::llround(rate * static_cast<double>(total)));
}

void prune_smallest(const std::vector<double>& scores, std::vector<uint8_t>& keep, int64_t n) {
  LETHE_CHECK(scores.size() == keep.size(), "prune_smallest: ", scores.size(), " scores for ",
              keep.size(), " weights");
  LETHE_CHECK(keep.size() < std::numeric_limits<uint32_t>::max(),
              "prune_smallest: more than 2^32 weights are not supported");
  if (n <= 0) {
    LETHE_CHECK(n == 0, "prune_smallest: cannot prune a negative number (", n, ") of weights");
    return;
  }
  // 32-bit candidate indices: half the memory of int64 for the 11-15 M weights of the paper's
  // models, and every conv weight count lethe builds fits.
  std::vector<uint32_t> kept;
  kept.reserve(keep.size());
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) {
      LETHE_CHECK(std::isfinite(scores[i]), "pruning score ", scores[i], " at weight ", i,
                  " is not finite, so weights cannot be ranked");
      kept.push_back(static_cast<uint32_t>(i));
    }
  LETHE_CHECK(n <= static_cast<int64_t>(kept.size()), "cannot prune ", n, " weights: only ",
              kept.size(), " are left");
  // (score, index) is a strict total order, so the n smallest are one well-defined set and
  // nth_element (linear time) finds exactly it.
  auto less = [&](uint32_t a, uint32_t b) {
    return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
  };
  if (n < static_cast<int64_t>(kept.size()))
    std::nth_element(kept.begin(), kept.begin() + n, kept.end(), less);
  for (int64_t i = 0; i < n; ++i) keep[kept[static_cast<size_t>(i)]] = 0;
}

MaskSet magnitude_prune(nn::Module& model, const MaskSet& current, int64_t target_pruned) {
  validate_masks(model, current, "magnitude_prune");
  std::vector<uint8_t> keep = flatten_masks(model, current);
  const int64_t total = static_cast<int64_t>(keep.size());
  int64_t pruned = 0;
  for (uint8_t k : keep) pruned += k == 0;
  LETHE_CHECK(target_pruned >= pruned && target_pruned <= total, "magnitude pruning to ",
              target_pruned, " pruned weights is impossible: ", pruned, " of ", total,
              " are already pruned");
  prune_smallest(flat_abs_weights(model), keep, target_pruned - pruned);
  return unflatten_masks(model, keep);
}

MaskSet omp_masks(nn::Module& model, double rate) {
  return magnitude_prune(model, {}, prune_count(rate, prunable_count(model)));
}

MaskSet random_masks(nn::Module& model, double rate, uint64_t seed) {
  const int64_t total = prunable_count(model);
  const int64_t n = prune_count(rate, total);
  std::vector<double> keys(static_cast<size_t>(total));
  Generator gen(seed, kPruneStream);
  gen.fill_uniform(keys.data(), total);
  std::vector<uint8_t> keep(static_cast<size_t>(total), 1);
  prune_smallest(keys, keep, n);
  return unflatten_masks(model, keep);
}

std::vector<int64_t> imp_schedule(double rate, int64_t total, double per_round) {
  const int64_t final_pruned = prune_count(rate, total);
  LETHE_CHECK(per_round > 0.0 && per_round < 1.0, "the IMP per-round rate must lie in (0, 1), ",
              "got ", per_round);
  std::vector<int64_t> out;
  if (final_pruned == 0) return out;
  const double keep_final = 1.0 - rate;
  for (int s = 1;; ++s) {
    const double keep = std::pow(1.0 - per_round, s);
    const int64_t pruned = total - std::llround(keep * static_cast<double>(total));
    // The last round: the keep fraction reaches the target (a relative tolerance absorbs
    // 0.8^2 = 0.6400000000000001 vs 1 - 0.36), or the rounded count does (rate 1.0 ends when
    // fewer than half a weight would be kept).
    if (keep <= keep_final * (1.0 + 1e-12) || pruned >= final_pruned) {
      out.push_back(final_pruned);
      return out;
    }
    out.push_back(pruned);
  }
}

}  // namespace lethe::prune
