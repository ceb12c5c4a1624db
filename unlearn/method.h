// What the seven unlearning methods (SPEC section 6) share: the SGD recipe of the
// training-based ones, the result every method returns (its own wall time, the RTE), and the
// helpers that keep a pruning mask fixed and run train::fit with a method's loss.
//
// Calling convention (every method, one file each: retrain.h, ft.h, ga.h, rl.h, ff.h, iu.h,
// l1_sparse.h):
//   MethodResult <method>(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
//                         const prune::MaskSet& masks, const <Method>Options& options);
// `model` starts as the trained (dense or pruned) model and is unlearned in place; `train`
// holds the images fs.forget / fs.retain index; `masks` is the model's pruning mask (empty:
// dense). The mask stays fixed: it is installed on the model's convs, handed to the optimizer
// and re-applied after every non-SGD update, so a pruned weight is exactly 0 afterwards.
// Evaluation is not part of a method (metrics.h), so MethodResult::seconds is the RTE.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "framework/nn.h"
#include "models/trainer.h"
#include "prune/mask.h"
#include "unlearn/forget_set.h"

namespace lethe::unlearn {

/// The SGD recipe of the methods that train (SPEC section 6): momentum 0.9, weight decay 5e-4,
/// batch 256, constant LR, train mode, augmentation. Each method's options start from its own
/// SPEC defaults for epochs and lr.
struct TrainRecipe {
  int64_t epochs = 10;
  double lr = 0.01;
  std::string lr_schedule = "constant";  ///< framework/lr_schedule.h spec
  int64_t batch_size = 256;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool augment = true;
  uint64_t seed = 1;   ///< data order and augmentation (RL: also the random labels)
  bool quiet = true;   ///< no progress lines on stderr
};

/// What a method reports besides the unlearned model.
struct MethodResult {
  std::string method;    ///< "retrain", "ft", "ga", "rl", "ff", "iu" or "l1"
  double seconds = 0;    ///< RTE: wall time of the method alone (no evaluation)
  std::vector<train::EpochRecord> history;  ///< per-epoch records of the training methods
  /// l1-sparse: gamma_t used in epoch t (what the loss actually applied); others: empty.
  std::vector<double> schedule;
  int64_t samples = 0;   ///< images the method touched (sum over epochs/passes)
  double rte_minutes() const { return seconds / 60.0; }
};

/// Builds a freshly initialised model with the original's architecture and init seed
/// (retrain's starting point).
using ModelFactory = std::function<std::shared_ptr<nn::Module>()>;

/// Wall-clock stopwatch for RTE.
class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

/// Installs `masks` on the model's convs and zeroes the pruned weights (prune::apply_masks);
/// a no-op for an empty MaskSet, so models without convs (tests' tiny modules) work too.
void install_masks(nn::Module& model, const prune::MaskSet& masks);

/// train::TrainOptions for `recipe` (no validation, no files, the given loss).
train::TrainOptions train_options(const TrainRecipe& recipe, train::LossFn loss = {});

/// train::fit on `indices` of `train` with `recipe` and `loss`, masks fixed; fills
/// result.history and result.samples.
void fit_method(nn::Module& model, const data::Dataset& train, const std::vector<int64_t>& indices,
                const prune::MaskSet& masks, const TrainRecipe& recipe, train::LossFn loss,
                MethodResult& result);

/// Host copy of a float32 tensor's values (any device).
std::vector<float> host_values(const Tensor& t);
/// A host pointer to a float32 tensor's values: the tensor's own memory on the CPU, else a
/// copy made in `scratch` (valid while `scratch` and `t` live and are unchanged).
const float* host_ptr(const Tensor& t, std::vector<float>& scratch);
/// Writes host values back into a float32 tensor (any device); sizes must match.
void set_host_values(Tensor& t, const std::vector<float>& values);

}  // namespace lethe::unlearn
