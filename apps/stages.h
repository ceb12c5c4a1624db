// The on-disk stage cache behind every experiment command (`lethe pipeline`, `lethe backdoor`,
// `lethe transfer`): each stage lives in <out>/stages/<name>-<hash>/, the hash (FNV-1a, 64 bit)
// of the stage's own settings plus the hashes of its inputs, so a changed setting recomputes
// that stage and what depends on it and nothing else. A stage is finished when its done.json
// exists; that file is written atomically and last, so an interrupted stage is never mistaken
// for a finished one.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "apps/cli.h"
#include "data/dataset.h"
#include "framework/config.h"
#include "framework/safetensors.h"
#include "models/model.h"
#include "models/trainer.h"
#include "unlearn/method.h"

namespace lethe::cli {

/// 64-bit FNV-1a of `text` as 16 hex digits: the stage-folder hash (stable across builds).
std::string stable_hash(const std::string& text);

/// A stage's folder, named by what it is and the hash of everything that defines it.
struct Stage {
  std::string name, hash, dir;
  std::string file(const std::string& f) const;
  bool done() const;
  /// done.json's contents ({"key", "result"}).
  nlohmann::json result() const;
  /// Records the stage as finished: its key and result, atomically and last.
  void finish(const nlohmann::json& key, const nlohmann::json& result) const;
};

/// The stage `name` keyed by `key` under `out`/stages (the folder is not created).
Stage make_stage(const std::string& out, const std::string& name, const nlohmann::json& key);

/// "[<tag>] stage k/N: ..." on stderr with elapsed time and an ETA from the computed stages'
/// mean.
class Progress {
 public:
  Progress(int64_t total, bool quiet, std::string tag = "pipeline")
      : total_(total), quiet_(quiet), tag_(std::move(tag)) {}
  /// Announces the next stage (`cached`: found finished on disk).
  void begin(const std::string& what, bool cached);
  /// Records that the stage just begun was computed in `seconds`.
  void computed(double seconds);
  int64_t n_computed() const { return computed_; }
  int64_t n_seen() const { return index_; }

 private:
  int64_t total_, index_ = 0, computed_ = 0;
  double computed_s_ = 0;
  bool quiet_;
  std::string tag_;
  unlearn::Stopwatch clock_;
};

/// The concatenation of strings and string literals. Appending sidesteps GCC 12's false
/// -Wrestrict alarms on chains of "literal" + std::string.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s += ... += parts);
  return s;
}

/// A pruning rate as the percentage in stage names and tables: 0 -> "0", 0.995 -> "99.5".
std::string rate_percent(double rate);
/// The pruning rates listed under `key` (default `def`), each checked to lie in [0, 1).
std::vector<double> parse_rates(const Config& cfg, const std::string& key,
                                const std::vector<std::string>& def);

/// Every option of an experiment command (pipeline, backdoor, transfer): its `own` ones, then
/// the shared rewind-epoch (default `rewind`), prune-epochs, val-limit and "<method>.<flag>"
/// for every unlearning method and flag (ft.epochs, ga.lr, ...), then the training, data and
/// execution options, with --out defaulting to `out` and --resume ignored (stages resume).
std::vector<Option> experiment_options(std::vector<Option> own, const std::string& rewind,
                                       const std::string& out);
/// The model of an experiment: --model and --width with `num_classes` outputs for `dataset`.
models::ModelSpec experiment_spec(const Config& cfg, int64_t num_classes,
                                  const std::string& dataset);
/// What every experiment's results.json starts with: lethe_version, command, config,
/// settings, machine, started.
nlohmann::json results_header(const std::string& command, const Config& cfg,
                              const nlohmann::json& settings, const std::string& started);
/// Cuts `val_idx` to the config's val-limit (0: keep all).
void limit_validation(const Config& cfg, std::vector<int64_t>& val_idx);
/// models::model_metadata(spec) plus the run's split_seed, train_limit and init seed.
io::StMetadata experiment_metadata(const Config& cfg, const models::ModelSpec& spec,
                                   uint64_t seed);
/// The stage-key part that identifies the training data: {"dataset", "split_seed",
/// "train_limit", "n_train", "n_val"}.
nlohmann::json data_key(const Config& cfg, const std::string& dataset, size_t n_train,
                        size_t n_val);

/// The training recipe of `cfg` (options.h training_recipe) over `epochs`.
train::TrainOptions recipe(const Config& cfg, int64_t epochs);
/// The OMP retraining's recipe: `prune-epochs` (default: the dense run's epochs) of the dense
/// run's LR schedule rewound to `rewind_epoch` (prune::rewound_schedule_epochs: SPEC section 4
/// rewinds the schedule rather than restarting it).
train::TrainOptions prune_recipe(const Config& cfg, const train::TrainOptions& dense,
                                 int64_t rewind_epoch);
/// The recipe's settings that define a trained model (part of a stage key).
nlohmann::json recipe_json(const train::TrainOptions& o);

/// Where a model is trained and evaluated: the training images (validation comes from the
/// same data set) and the test images, each with its index list.
struct StageData {
  const data::Dataset& train;
  const std::vector<int64_t>& train_idx;
  const std::vector<int64_t>& val_idx;
  const data::Dataset& test;
  const std::vector<int64_t>& test_idx;
  /// Where the stages' models train and evaluate (initialised on the host, then moved).
  Device device = Device::cpu();
};

/// Test accuracy (percent) of a checkpoint, masks installed, computed on `device`.
double checkpoint_test_accuracy(const std::string& path, const data::Dataset& test,
                                const std::vector<int64_t>& test_idx,
                                Device device = Device::cpu());

/// The dense-training stage `name`: a fresh `spec` model (init Generator(model_seed, 0))
/// trained with `o` (snapshot_epoch = `snapshot`, metadata = `meta`), resumed from its
/// last.safetensors after an interruption. Key: {"stage": "dense", data_key, model_key,
/// recipe, snapshot_epoch}. Result: test_acc_best, test_acc_last, best_val_acc, seconds.
Stage dense_stage(const std::string& out, const std::string& name, const nlohmann::json& data_key,
                  const nlohmann::json& model_key, const models::ModelSpec& spec,
                  uint64_t model_seed, const io::StMetadata& meta, train::TrainOptions o,
                  int64_t snapshot, const StageData& d, Progress& progress);

/// The OMP stage `name`: the dense stage's last weights pruned globally to `rate`, rewound to
/// its epoch<rewind> snapshot and retrained with `o` (prune/pipeline.h). Key: {"stage":
/// "prune", dense hash, method, rate, rewind_epoch, recipe}. Result: test_acc_last, sparsity,
/// seconds.
Stage omp_stage(const std::string& out, const std::string& name, const Stage& dense,
                const models::ModelSpec& spec, uint64_t model_seed, const io::StMetadata& meta,
                double rate, int64_t rewind, train::TrainOptions o, const StageData& d,
                Progress& progress);

}  // namespace lethe::cli
