// One entry point for every unlearning method, so `lethe unlearn` and the pipeline run any of
// them by name with SPEC section 6's defaults and the same flags:
//
//   TrainedModel tm = load_trained_model("runs/prune/best.safetensors");  // masks installed
//   ForgetSet fs = make_forget_set("class:0", bundle.train, bundle.train_idx, seed);
//   MethodOptions opts = default_method_options(fs.spec);     // SPEC defaults (GA's lr!)
//   apply_method_config(opts, "ft", cfg);                     // --epochs, --lr, ... overrides
//   set_seed(opts, seed);
//   MethodResult r = run_method("ft", *tm.model, bundle.train, fs, tm.masks, opts, tm.factory());
//   Metrics m = evaluate_unlearning(*tm.model, bundle.train, bundle.test, fs);  // r.seconds = RTE
//
// Each method also has its own header (retrain.h ... l1_sparse.h) for direct calls.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "framework/config.h"
#include "unlearn/ff.h"
#include "unlearn/forget_set.h"
#include "unlearn/ft.h"
#include "unlearn/ga.h"
#include "unlearn/iu.h"
#include "unlearn/l1_sparse.h"
#include "unlearn/method.h"
#include "unlearn/metrics.h"
#include "unlearn/retrain.h"
#include "unlearn/rl.h"

namespace lethe::unlearn {

/// The methods in the paper's table order: retrain, ft, ga, rl, ff, iu, l1.
const std::vector<std::string>& method_names();
/// The canonical name of `name` ("l1-sparse" -> "l1"); throws lethe::Error listing the valid
/// names for an unknown one.
std::string canonical_method(const std::string& name);
/// True for the methods that train with SGD (retrain, ft, ga, rl, l1).
bool is_training_method(const std::string& method);

/// Every method's options.
struct MethodOptions {
  RetrainOptions retrain;
  FtOptions ft;
  GaOptions ga;
  RlOptions rl;
  FfOptions ff;
  IuOptions iu;
  L1Options l1;
};

/// SPEC section 6's defaults for a scenario (GA: lr 1e-4 class-wise, 1e-3 otherwise).
MethodOptions default_method_options(const ForgetSpec& scenario);
/// Sets the seed (data order, augmentation, RL labels, FF noise) of every method.
void set_seed(MethodOptions& o, uint64_t seed);
/// Turns progress lines on or off for every method.
void set_quiet(MethodOptions& o, bool quiet);

/// The method flags (key, help): epochs, lr, lr-schedule, batch-size, momentum, weight-decay,
/// augment, alpha, gamma, l1-schedule, woodfisher-n. An empty value means the method's default.
const std::vector<std::pair<std::string, std::string>>& method_option_help();

/// Overrides `method`'s options with the non-empty values of `prefix` + key in `cfg` (keys of
/// method_option_help()). A key that does not apply to the method (e.g. --alpha for ft) throws
/// lethe::Error, so a flag is never silently ignored.
void apply_method_config(MethodOptions& o, const std::string& method, const Config& cfg,
                         const std::string& prefix = "");

/// The effective hyper-parameters of `method` (for results JSON and summaries).
nlohmann::json method_options_json(const std::string& method, const MethodOptions& o);

/// A trained checkpoint ready to unlearn: the model with its masks installed, what is needed to
/// retrain it from scratch, and the file's metadata (split_seed, train_limit, ...).
struct TrainedModel {
  std::shared_ptr<nn::Module> model;
  models::ModelSpec spec;
  prune::MaskSet masks;     ///< empty for a dense checkpoint
  uint64_t init_seed = 1;   ///< the checkpoint's "seed" (1 if absent): retrain's init seed
  io::StMetadata metadata;
  /// model_factory(spec, init_seed)
  ModelFactory factory() const { return model_factory(spec, init_seed); }
};

/// Loads `path` (architecture from its metadata, weights, masks validated and installed) onto
/// `device` (model and masks). `init_seed_override` >= 0 replaces the checkpoint's seed.
TrainedModel load_trained_model(const std::string& path, int64_t init_seed_override = -1,
                                Device device = Device::cpu());

/// Runs `method` on `model` in place (method.h's convention). `fresh` is needed by retrain
/// only (model_factory(spec, init_seed) for lethe models).
MethodResult run_method(const std::string& method, nn::Module& model, const data::Dataset& train,
                        const ForgetSet& fs, const prune::MaskSet& masks, const MethodOptions& o,
                        const ModelFactory& fresh = {});

}  // namespace lethe::unlearn
