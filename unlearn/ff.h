// FF, Fisher forgetting (SPEC section 6), exactly as the reference computes it: a
// batch-gradient approximation of the Fisher diagonal, not an exact Fisher.
//
//   1. Eval mode, no augmentation, the retain set in batches of 32 (in order). For each batch X
//      and each class y in 0..C-1: backpropagate CE(f(X), y for every row) (mean over the
//      batch) and accumulate F += mean_b(softmax(f(X))_{b,y}) * grad^2. Then F /= batches.
//   2. Per parameter: var = min(1/(F + 1e-8), 1e3) (1e2 for tensors whose first dimension is
//      C, i.e. the classifier); var *= alpha; for tensors with ndim > 1, var is replaced by its
//      mean over dimension 1 (broadcast back). mean = theta0.
//   3. Class-wise forgetting: in tensors whose first dimension is C, the forgotten class's row
//      (the classifier row and bias entry) gets mean 0 and var 1e-4.
//   4. var *= 10, once, for tensors whose first dimension is C and otherwise for 1-D tensors.
//   5. theta = mean + sqrt(var) * N(0, 1); re-apply the mask.
// The noise is drawn from Generator(seed, stream 4) at offset 0 (design.md: stream 4 is
// unlearning noise), one fill_normal per parameter in named_parameters order.
#pragma once

#include <vector>

#include "unlearn/method.h"

namespace lethe::unlearn {

struct FfOptions {
  double alpha = 1e-8;      ///< the reference runs used 3e-8; its authors later advised ~1e-9
  int64_t batch_size = 32;
  uint64_t seed = 1;        ///< the noise
  bool quiet = true;
};

/// Step 1: F per parameter (named_parameters order), as doubles.
std::vector<std::vector<double>> ff_fisher(nn::Module& model, const data::Dataset& train,
                                           const std::vector<int64_t>& retain,
                                           int64_t num_classes, int64_t batch_size,
                                           bool quiet = true);

/// The distribution FF samples one parameter from (steps 2-4).
struct FfDistribution {
  std::vector<float> mean;
  std::vector<double> var;
};

/// Steps 2-4 for one parameter `theta0` (its current values) with Fisher `fisher`.
/// `forgotten_class` < 0: not class-wise.
FfDistribution ff_distribution(const Tensor& theta0, const std::vector<double>& fisher,
                               int64_t num_classes, double alpha, int64_t forgotten_class);

/// Fisher forgetting of fs.forget using fs.retain (masks fixed).
MethodResult fisher_forgetting(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                               const prune::MaskSet& masks, const FfOptions& options);

}  // namespace lethe::unlearn
