// IU, influence unlearning (SPEC section 6), exactly as the reference computes it. Eval mode,
// no augmentation; gradients are of the mean cross-entropy with respect to every parameter,
// flattened in named_parameters order into one vector.
//
//   v = (sum of forget per-sample gradients) / n - (sum of retain per-sample gradients) *
//       n_f / (n * n_r),        n = n_f + n_r (sums taken batch by batch in order);
//   WoodFisher recursion, N = 1000, k = v, the retain samples one at a time in order, for
//   i = 0, 1, ..., N + 1 with g_i the gradient of sample i's cross-entropy:
//       i = 0: o = g_0;  else: t = o.g_i; k -= (k.g_i)/(N + t) * o; o -= t/(N + t) * o;
//   theta += alpha * k, then the mask is re-applied.
// The recursion is only a rank-one correction of v (not a real inverse-Hessian product); it
// is the default because the paper's numbers come from it. It stops early if the retain set
// has fewer than N + 2 images. Dot products are accumulated in double.
#pragma once

#include <vector>

#include "unlearn/method.h"

namespace lethe::unlearn {

struct IuOptions {
  double alpha = 1.0;
  int64_t batch_size = 256;     ///< batches of the gradient sums that make v
  int64_t woodfisher_n = 1000;  ///< N of the recursion (which visits N + 2 retain samples)
  bool quiet = true;
};

/// The gradient of the summed (reduction Sum) cross-entropy of `indices`, batch by batch in
/// eval mode, flattened in named_parameters order (undefined gradients count as 0).
std::vector<double> summed_gradient(nn::Module& model, const data::Dataset& train,
                                    const std::vector<int64_t>& indices, int64_t batch_size);

/// v of the header comment.
std::vector<double> iu_direction(nn::Module& model, const data::Dataset& train,
                                 const ForgetSet& fs, int64_t batch_size);

/// The WoodFisher recursion from k = v over `retain` (one sample at a time, i = 0..n + 1).
std::vector<double> woodfisher(nn::Module& model, const data::Dataset& train,
                               const std::vector<int64_t>& retain, std::vector<double> v,
                               int64_t n, bool quiet = true);

/// Adds alpha * k to the parameters (flattened in named_parameters order).
void apply_perturbation(nn::Module& model, const std::vector<double>& k, double alpha);

/// Influence unlearning of fs.forget (masks fixed).
MethodResult influence_unlearning(nn::Module& model, const data::Dataset& train,
                                  const ForgetSet& fs, const prune::MaskSet& masks,
                                  const IuOptions& options);

}  // namespace lethe::unlearn
