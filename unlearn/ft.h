// FT (SPEC section 6): fine-tune the trained model on the retain set with cross-entropy,
// train mode, augmentation; 10 epochs, constant lr 0.01 by default. Forgetting happens only
// through catastrophic forgetting of what the retain set does not reinforce.
#pragma once

#include "unlearn/method.h"

namespace lethe::unlearn {

struct FtOptions {
  TrainRecipe sgd{.epochs = 10, .lr = 0.01};
};

/// Fine-tunes `model` on fs.retain (masks fixed).
MethodResult finetune(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                      const prune::MaskSet& masks, const FtOptions& options);

}  // namespace lethe::unlearn
