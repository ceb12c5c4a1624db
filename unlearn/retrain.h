// Retrain (SPEC section 6): exact unlearning. The model is re-initialised exactly as the
// original was (same architecture, same init seed), the same pruning mask is installed, and it
// is trained on the retain set only (train mode, augmentation), by default with the paper's
// recipe: 160 epochs, lr 0.1, x0.1 after epochs 91 and 136. The forget images are never read.
#pragma once

#include "models/model.h"
#include "unlearn/method.h"

namespace lethe::unlearn {

struct RetrainOptions {
  TrainRecipe sgd{.epochs = 160, .lr = 0.1, .lr_schedule = "multistep:91,136"};
};

/// Replaces `model`'s parameters and buffers by those of `fresh()` (a newly initialised model
/// of the same architecture and init seed), installs `masks`, then trains on fs.retain.
MethodResult retrain(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                     const prune::MaskSet& masks, const RetrainOptions& options,
                     const ModelFactory& fresh);

/// A factory for models::make_model(spec) initialised from Generator(init_seed, stream 0),
/// the way `lethe train` initialises its model.
ModelFactory model_factory(const models::ModelSpec& spec, uint64_t init_seed);

}  // namespace lethe::unlearn
