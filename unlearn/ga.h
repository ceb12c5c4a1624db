// GA (SPEC section 6): gradient ascent on the forget set, i.e. SGD minimising -CE of the
// forget images (train mode, augmentation). 5 epochs; lr 1e-4 for class-wise forgetting and
// 1e-3 for random forgetting (ga_default_lr); the retain set is never used.
#pragma once

#include "unlearn/method.h"

namespace lethe::unlearn {

struct GaOptions {
  TrainRecipe sgd{.epochs = 5, .lr = 1e-4};
};

/// SPEC's default GA learning rate: 1e-4 class-wise, 1e-3 otherwise (random, index file).
double ga_default_lr(const ForgetSpec& spec);

/// The GA loss: -mean cross-entropy of the batch.
Tensor ga_loss(const Tensor& logits, const data::Batch& batch);

/// Gradient ascent on fs.forget (masks fixed).
MethodResult gradient_ascent(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                             const prune::MaskSet& masks, const GaOptions& options);

}  // namespace lethe::unlearn
