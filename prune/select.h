// Global selection of the weights to prune, shared by every method (SPEC section 4):
// magnitude (OMP, each IMP round), random (the control) and SynFlow (prune/synflow.h) all
// reduce to "among the weights still kept, prune the n with the smallest score", over all conv
// weights at once (ONE global threshold, first conv and 1x1 shortcuts included).
//
// Exactness and determinism: the count is exact (round(rate * total), so the pruned fraction is
// the requested rate to within half a weight), and ties are broken by the global flattened
// index (mask.h, "Flat order"): of two equal scores the lower index is pruned first. The
// selection is a total order, so the result does not depend on the thread count or the
// partition algorithm.
#pragma once

#include <cstdint>
#include <vector>

#include "prune/mask.h"

namespace lethe::prune {

/// round(rate * total), halves rounded away from zero. rate must lie in [0, 1].
int64_t prune_count(double rate, int64_t total);

/// Among the entries with keep[i] == 1, sets keep[i] = 0 for the `n` with the smallest
/// scores[i] (ties: the lower index first). Scores must be finite (NaN has no order); n must
/// not exceed the number of kept entries.
void prune_smallest(const std::vector<double>& scores, std::vector<uint8_t>& keep, int64_t n);

/// Global magnitude pruning: starts from `current` (whatever it prunes stays pruned) and prunes
/// the kept conv weights of smallest |w| until exactly `target_pruned` conv weights of the whole
/// model are pruned. `current` empty means nothing pruned yet. Reads the model's stored weights;
/// does not change the model.
MaskSet magnitude_prune(nn::Module& model, const MaskSet& current, int64_t target_pruned);

/// OMP's mask: the round(rate * total) conv weights of smallest |w|, one global threshold.
MaskSet omp_masks(nn::Module& model, double rate);

/// Random pruning (the control): exactly round(rate * total) conv weights chosen uniformly at
/// random over all conv weights, from Generator(seed, stream 5) (docs/design.md reserves stream
/// 5 for pruning). Each weight draws a uniform double key (element i of one fill_uniform of
/// `total` values) and the smallest keys are pruned, so the mask is a pure function of
/// (seed, model shape, rate), whatever the thread count.
MaskSet random_masks(nn::Module& model, double rate, uint64_t seed);

/// The Generator stream random pruning draws from.
inline constexpr uint64_t kPruneStream = 5;

/// IMP's schedule: the number of pruned conv weights after each round s = 1..R. Round s < R
/// keeps round(total * (1 - per_round)^s) weights (0.8^s for the default 20%); the last round
/// R is the first whose keep fraction (1 - per_round)^R would reach 1 - rate, and it prunes to
/// exactly prune_count(rate, total). rate 0 gives no round.
std::vector<int64_t> imp_schedule(double rate, int64_t total, double per_round = 0.2);

}  // namespace lethe::prune
