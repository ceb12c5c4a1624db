// SynFlow (Tanaka et al., 2020), data-free pruning at initialisation, as SPEC section 4 fixes it:
// 100 iterations; in each, replace every parameter and buffer by its absolute value, feed an
// all-ones input (1x3x32x32, before normalisation) in eval mode, R = sum of the outputs,
// score = |dR/dw * w| per conv weight, prune the lowest scores globally by
// 1 - (1 - rate)^(1/100) of the remaining weights, then restore the signs.
//
// Choices where SPEC is silent:
// - "Every parameter and buffer" is taken literally: conv/BN/Linear weights and biases, BN
//   running_mean / running_var, and the model's Normalize buffers normalize.mean / .std (all
//   already positive, so their abs is a no-op; the input is normalised with them as usual).
//   Integer buffers (num_batches_tracked) are not read in eval mode and are left alone. This is
//   what the reference does (`for p in model.state_dict().values(): p.abs_()`).
// - Pruned weights: the forward multiplies by the current mask (as the reference's
//   weight_orig * weight_mask), so a pruned weight has dR/dw = 0 and score 0, and the ranking
//   is over the weights still kept.
// - Counts: after iteration i (1-based) exactly round(total * (1 - rate)^(i / 100)) weights are
//   kept, the last iteration keeping exactly total - round(rate * total). That is "prune
//   1 - (1 - rate)^(1/100) of the remaining" with the rounding taken against the cumulative
//   target, so rounding errors cannot compound over 100 iterations and the final rate is exact.
//   Ties are broken by index (select.h).
// - Precision: R is a product over ~20 layers of |w|-weighted sums; in float32 it can reach
//   1e30+ at full width and overflow after a few more layers or a larger input. The scoring
//   therefore runs in float64 by default: the model's float tensors are converted to float64 in
//   place for the scoring and back afterwards (float32 -> float64 -> float32 is exact, so the
//   model comes back bit for bit). A non-finite R or score is an error, never a silent ranking.
// - The iterations compute abs / restore exactly as specified; restoring copies the saved
//   values back (|x| * sign(x) == x, so this equals the reference's sign multiplication).
#pragma once

#include <vector>

#include "prune/mask.h"

namespace lethe::prune {

struct SynflowOptions {
  int iterations = 100;
  /// Score in float64 (default; see the header comment) or in the model's own float32.
  bool float64 = true;
  /// Progress lines on stderr.
  bool verbose = false;
};

/// One SynFlow scoring pass: the |dR/dw * w| of every conv weight of `model` in flat order
/// (mask.h), for `input` (e.g. all ones [1,3,32,32]) with every float parameter and buffer
/// replaced by its absolute value, in eval mode, through the convs' current masks. The model's
/// values, gradients and train/eval mode are restored before returning. `input` must have the
/// dtype of the model's parameters.
std::vector<double> synflow_scores(nn::Module& model, const Tensor& input);

/// Conv weights kept after iteration `it` (1-based) of `iterations` at `rate`:
/// round(total * (1 - rate)^(it / iterations)), and exactly total - round(rate * total) after
/// the last one.
int64_t synflow_kept_after(int64_t total, double rate, int it, int iterations);

/// The SynFlow mask at `rate` for `model`, scoring with `input` (default: all ones
/// [1,3,32,32]); exactly round(rate * total) conv weights pruned. The model is left unchanged
/// (its own masks, values and mode are restored); apply the result with apply_masks. The model
/// must be on the CPU (float64 scoring); a GPU run scores a host copy of the same weights.
MaskSet synflow_masks(nn::Module& model, double rate, const SynflowOptions& options = {},
                      const Tensor& input = Tensor());

}  // namespace lethe::prune
