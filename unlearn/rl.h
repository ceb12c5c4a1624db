// RL, random labelling (SPEC section 6): every epoch each forget image gets a label drawn
// uniformly from all C classes (it may equal the true one), and the model trains with
// cross-entropy on forget + retain (train mode, augmentation); 10 epochs, lr 0.01.
//
// The labels of epoch e are a pure function of (seed, e): Generator(seed, stream 4) at offset
// (e + 1) * 2^32 (design.md: stream 4 is unlearning noise and relabelling; FF's noise uses the
// offsets below 2^32), one randint(C) per forget image in ascending index order. They are
// swapped in by the loss function from the batch's original indices, so the loader, the
// augmentation and the order stay those of plain training.
#pragma once

#include <memory>

#include "unlearn/method.h"

namespace lethe::unlearn {

struct RlOptions {
  TrainRecipe sgd{.epochs = 10, .lr = 0.01};
};

/// The random labels of epoch `epoch`: one per forget image (in fs.forget's order), uniform
/// in [0, num_classes).
std::vector<int32_t> rl_epoch_labels(int64_t n_forget, int64_t num_classes, uint64_t seed,
                                     int64_t epoch);

/// Maps a batch's labels to RL's: forget images get their epoch's random label, every other
/// image keeps its own. Caches the current epoch's table.
class Relabeller {
 public:
  /// @param dataset_size images in the data set the batches come from (index bound)
  Relabeller(const ForgetSet& fs, int64_t dataset_size, uint64_t seed);
  /// The labels batch `b` trains with (int32 [B]).
  Tensor labels(const data::Batch& b);
  /// The label table of `epoch` over original indices (-1: not a forget image).
  const std::vector<int32_t>& table(int64_t epoch);

 private:
  std::vector<int64_t> forget_;
  int64_t num_classes_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int32_t> table_;
};

/// Random labelling on fs.forget + fs.retain (masks fixed).
MethodResult random_label(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                          const prune::MaskSet& masks, const RlOptions& options);

}  // namespace lethe::unlearn
