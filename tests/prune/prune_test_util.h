// Helpers for the prune/ tests: a self-deleting temporary folder, tiny hand-made networks with
// known weights, and a tiny ResNet-18 on the built-in synthetic data.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "framework/nn.h"
#include "models/model.h"
#include "models/trainer.h"

namespace lethe::testing {

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class PruneTempDir {
 public:
  PruneTempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("lethe-prune-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~PruneTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  PruneTempDir(const PruneTempDir&) = delete;
  PruneTempDir& operator=(const PruneTempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return (std::filesystem::path(path_) / name).string();
  }

 private:
  std::string path_;
};

/// Overwrites a float32 tensor's values.
inline void set_values(Tensor& t, const std::vector<float>& v) {
  LETHE_CHECK(static_cast<int64_t>(v.size()) == t.numel(), "set_values: size mismatch");
  std::copy(v.begin(), v.end(), t.data<float>());
}

/// A tiny ResNet-18 (width 0.0625: 43,692 conv weights) and 320 synthetic images
/// (256 training, 64 validation), as in tests/apps/test_train.cpp.
struct TinyResNet {
  data::Dataset data = data::make_synthetic(320, 10, 3);
  std::vector<int64_t> idx, val;
  models::ModelSpec spec{"resnet18", 0.0625, 10, "cifar10"};
  TinyResNet() {
    for (int64_t i = 0; i < 256; ++i) idx.push_back(i);
    for (int64_t i = 256; i < 320; ++i) val.push_back(i);
  }
  std::shared_ptr<nn::Module> model(uint64_t seed = 5) const {
    Generator g(seed, 0);
    return models::make_model(spec, g);
  }
  train::TrainOptions options(const std::string& out, int64_t epochs = 2) const {
    train::TrainOptions o;
    o.epochs = epochs;
    o.batch_size = 64;  // 4 steps per epoch
    o.sgd.lr = 0.05;
    o.lr_schedule = "onecycle";
    o.seed = 11;
    o.out_dir = out;
    o.quiet = true;
    o.metadata = models::model_metadata(spec);
    return o;
  }
};

}  // namespace lethe::testing
