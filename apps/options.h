// Options several subcommands share, so one config file drives `lethe train`, `lethe prune`
// and the pipeline alike: the data, execution settings and training recipe, and the
// presets of the training recipe (SPEC section 3 and the CPU-scale one).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "framework/config.h"
#include "models/trainer.h"

namespace lethe::cli {

/// dataset, data-dir, split-seed, train-limit
const std::vector<Option>& data_options();
/// device, threads, math-mode, conv-backend, sparse
const std::vector<Option>& setting_options();
/// model, width, epochs, batch size, SGD, schedule, seed, out, resume, checkpoints, quiet
const std::vector<Option>& training_options();
/// cpu (ResNet-18 width 0.25, 20 epochs one-cycle), fast (width 1, 30 epochs), paper (182
/// epochs, multi-step at 91 and 136).
const std::map<std::string, std::string>& training_presets();

/// The training recipe of training_options() read from `cfg` (epochs, batch size, SGD, LR
/// schedule, label smoothing, augmentation, seed, save-every, stop-at-step, quiet); callers
/// set out_dir, resume and the rest. One reader, so train, prune and the pipeline agree.
train::TrainOptions training_recipe(const Config& cfg);

/// `a` followed by `b`.
std::vector<Option> concat(std::vector<Option> a, const std::vector<Option>& b);
/// Changes the default and help text of option `key` (which must exist).
void set_option(std::vector<Option>& opts, const std::string& key, const std::string& def,
                const std::string& help);

}  // namespace lethe::cli
