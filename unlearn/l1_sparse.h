// l1-sparse (SPEC section 6): FT with the loss CE + gamma_t * sum over all parameters of
// |theta| (subgradient sign(theta), 0 at 0), so unlearning itself pushes the model towards
// sparsity. gamma_t is fixed within epoch t = 0..E-1:
//   decay (default)  gamma * (1 - t/E)
//   growth           gamma * (t + 1)/E
//   constant         gamma
// 10 epochs, lr 0.01, gamma 1e-4 by default; retain set, train mode, augmentation.
#pragma once

#include <string>

#include "unlearn/method.h"

namespace lethe::unlearn {

enum class L1Schedule { Decay, Growth, Constant };
/// "decay", "growth" or "constant"; anything else throws lethe::Error listing them.
L1Schedule parse_l1_schedule(const std::string& name);
std::string to_string(L1Schedule s);

/// gamma_t of epoch t (0-based) of E.
double l1_gamma(L1Schedule schedule, double gamma, int64_t t, int64_t epochs);

struct L1Options {
  TrainRecipe sgd{.epochs = 10, .lr = 0.01};
  double gamma = 1e-4;
  L1Schedule schedule = L1Schedule::Decay;
};

/// l1-sparse unlearning on fs.retain (masks fixed). result.schedule holds the gamma_t the loss
/// applied in each epoch.
MethodResult l1_sparse(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                       const prune::MaskSet& masks, const L1Options& options);

}  // namespace lethe::unlearn
