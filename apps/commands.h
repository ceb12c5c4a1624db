// The `lethe` subcommands. Each takes the arguments after its name and returns the exit code;
// errors are thrown as lethe::Error and reported by main() as one sentence.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "framework/config.h"

namespace lethe::cli {

int cmd_train(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_download(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_prune(const std::vector<std::string>& args);
int cmd_unlearn(const std::vector<std::string>& args);
int cmd_pipeline(const std::vector<std::string>& args);
int cmd_backdoor(const std::vector<std::string>& args);
int cmd_transfer(const std::vector<std::string>& args);

/// `lethe pipeline`'s presets, name -> config text; each is also configs/pipeline-<name>.cfg.
const std::map<std::string, std::string>& pipeline_presets();

/// The data a command works on: the training images, the test images, and the seeded
/// train/validation split (optionally cut to the first `train-limit` training images).
struct DataBundle {
  data::Dataset train, test;
  std::vector<int64_t> train_idx, val_idx;
  std::vector<int64_t> test_idx;  ///< every test image, 0..test.size()-1
  std::string source;  ///< where the images came from, for the results
};
/// Loads `dataset` (config keys dataset, data-dir, split-seed, train-limit).
DataBundle load_data(const Config& cfg);

}  // namespace lethe::cli
