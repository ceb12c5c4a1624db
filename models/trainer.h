// The training loop every command shares: `lethe train`, pruning's retraining and the
// unlearning methods that train (retrain, FT, RL, l1-sparse) call fit() with their own data,
// loss and options.
//
// Exact resume: a run's state is the model (parameters and BN buffers), the optimizer's
// momentum buffers and the global step. The data loader's batches are a pure function of
// (seed, epoch, batch) and the LR a pure function of the step, so loading `last.safetensors`
// and starting the loader at (step / steps_per_epoch, step % steps_per_epoch) continues the
// run bit for bit (on the CPU, same thread count).
//
// Files in out_dir: last.safetensors (every epoch end, every save_every steps, and when
// stopped), best.safetensors (best validation accuracy), epoch<N>.safetensors (the
// snapshot_epoch snapshot OMP rewinds to), train_log.json (one record per finished epoch).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "framework/nn.h"
#include "framework/optim.h"
#include "framework/safetensors.h"

namespace lethe::train {

/// Computes the loss of a batch from its logits (default: mean cross-entropy).
using LossFn = std::function<Tensor(const Tensor& logits, const data::Batch& batch)>;

struct TrainOptions {
  int64_t epochs = 30;
  int64_t batch_size = 128;
  SgdOptions sgd;                          ///< sgd.lr is the base (or peak) learning rate
  std::string lr_schedule = "onecycle";    ///< framework/lr_schedule.h spec
  /// The LR of global step s is schedule(s + lr_step_offset): OMP/IMP retraining after
  /// rewinding to the epoch-8 snapshot continues the schedule from there (SPEC section 4).
  int64_t lr_step_offset = 0;
  /// Epochs the LR schedule spans (0: `epochs`). A retraining after rewinding continues the
  /// dense run's schedule, which spans the dense run's epochs even when the retraining is
  /// shorter (the pipeline's prune-epochs): a one-cycle built over the retraining's own
  /// epochs would be squeezed, and would reach its floor before the retraining ends.
  int64_t schedule_epochs = 0;
  uint64_t seed = 0;                       ///< data order and augmentation
  double label_smoothing = 0.0;            ///< for the default loss
  bool augment = true;
  bool drop_last = false;
  LossFn loss;                             ///< empty: cross-entropy with label_smoothing
  int64_t stop_at_step = 0;                ///< stop (saving last) when the global step reaches it
  int64_t save_every = 0;                  ///< also save last.safetensors every N steps
  int64_t snapshot_epoch = 0;              ///< save epoch<N>.safetensors after N epochs (0: none)
  std::string out_dir;                     ///< "": write no files
  bool resume = false;                     ///< continue from out_dir/last.safetensors
  bool quiet = false;                      ///< no progress lines
  io::StMetadata metadata;                 ///< model identity (arch, width, ...) for checkpoints
};

/// Epochs o's LR schedule spans: o.schedule_epochs, or o.epochs when that is 0.
inline int64_t lr_schedule_span(const TrainOptions& o) {
  return o.schedule_epochs > 0 ? o.schedule_epochs : o.epochs;
}

struct EpochRecord {
  int64_t epoch = 0;  ///< 1-based: the number of finished epochs
  double loss = 0, train_acc = 0, val_acc = -1, lr = 0, seconds = 0, images_per_s = 0;
};

struct TrainResult {
  std::vector<EpochRecord> history;  ///< every finished epoch (earlier runs' too when resumed)
  int64_t start_step = 0;            ///< the global step this invocation started at
  int64_t steps_run = 0;             ///< optimizer steps taken by this invocation
  int64_t total_steps = 0;           ///< epochs * steps per epoch
  bool finished = false;             ///< false when stopped by stop_at_step
  double seconds = 0;                ///< wall time of this invocation
};

/// Where the model's parameters live (the CPU for a model without any): batches follow them.
Device model_device(const nn::Module& model);

/// The loader builds batches on the host; for a model on the GPU they are copied there
/// (images and labels). A raw batch (LoaderOptions::raw) is converted and augmented on `dev`
/// (the CPU too), which then holds the same float images a non-raw loader would have made.
void to_device(data::Batch& b, Device dev);

struct EvalResult {
  double accuracy = 0;  ///< percent
  double loss = 0;      ///< mean cross-entropy
  int64_t n = 0;
};

/// Accuracy and loss of `model` (eval mode, no augmentation, no gradients) on the images
/// `indices` of `data`. Restores the model's train/eval mode afterwards.
EvalResult evaluate(nn::Module& model, const data::Dataset& data,
                    const std::vector<int64_t>& indices, int64_t batch_size = 500);

/// Trains `model` on `indices` of `train_data` with SGD and the options' schedule;
/// validates on `val_indices` of `val_data` after each epoch when that list is non-empty.
/// `masks` (parameter name -> uint8 mask) are re-applied by the optimizer after every step.
TrainResult fit(nn::Module& model, const data::Dataset& train_data,
                const std::vector<int64_t>& indices, const data::Dataset& val_data,
                const std::vector<int64_t>& val_indices, const TrainOptions& options,
                const std::map<std::string, Tensor>& masks = {});

/// Saves model state, momentum buffers and masks with the run's metadata, atomically.
void save_training_checkpoint(const std::string& path, const nn::Module& model, const SGD* opt,
                              const std::map<std::string, Tensor>& masks,
                              const io::StMetadata& metadata);

}  // namespace lethe::train
