// Helpers for the unlearn/ tests: a self-deleting temp folder, tiny hand-checkable models
// (logistic regression and a 2-layer MLP as nn::Modules), synthetic data sets with a
// train split, and raw image access for hand computations.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "framework/checkpoint.h"
#include "framework/init.h"
#include "framework/nn.h"
#include "framework/rng.h"
#include "models/model.h"
#include "unlearn/unlearn.h"

namespace lethe::testing {

/// The pruned weights of a checkpoint (those whose "<param>.mask" entry is 0): how many, and
/// how many of them are not exactly 0 (a pruned weight must stay 0 through any training).
struct PrunedWeights {
  int64_t pruned = 0, nonzero = 0;
};
inline PrunedWeights pruned_weights(const std::string& path) {
  const Checkpoint ck = read_checkpoint(path);
  PrunedWeights out;
  for (const auto& [name, t] : ck.tensors) {
    if (name.size() < 5 || name.substr(name.size() - 5) != ".mask") continue;
    const std::vector<uint8_t> m = t.to_vector<uint8_t>();
    const std::vector<float> w = ck.tensors.at(name.substr(0, name.size() - 5)).to_vector<float>();
    for (size_t j = 0; j < m.size(); ++j)
      if (!m[j]) {
        ++out.pruned;
        out.nonzero += w[j] != 0.0f;
      }
  }
  return out;
}

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class UnlearnTempDir {
 public:
  UnlearnTempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("lethe-unlearn-test-" + std::to_string(::getpid()) + "-" +
              std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~UnlearnTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  UnlearnTempDir(const UnlearnTempDir&) = delete;
  UnlearnTempDir& operator=(const UnlearnTempDir&) = delete;
  std::string operator/(const std::string& name) const {
    return (std::filesystem::path(path_) / name).string();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Logistic regression on raw pixels: logits = W flatten(x) + b, parameters "fc.weight"
/// [C, 3072] and "fc.bias" [C]. Small enough for hand-computed gradients.
class LogReg : public nn::Module {
 public:
  LogReg(int64_t classes, uint64_t seed) {
    fc = register_module("fc", std::make_shared<nn::Linear>(3072, classes));
    Generator g(seed, 0);
    fc->reset_parameters(g);
  }
  Tensor forward(const Tensor& x) override { return (*fc)((*flat)(x)); }
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::Flatten> flat = std::make_shared<nn::Flatten>();
};

/// Logistic regression on normalised pixels (the synthetic set's mean and std, as a lethe
/// model's first step): a well-conditioned, linearly separable toy problem for SGD.
class NormLogReg : public nn::Module {
 public:
  NormLogReg(int64_t classes, uint64_t seed) {
    norm = register_module("normalize", std::make_shared<models::Normalize>(
                                            data::synthetic_normalization()));
    fc = register_module("fc", std::make_shared<nn::Linear>(3072, classes));
    Generator g(seed, 0);
    fc->reset_parameters(g);
  }
  Tensor forward(const Tensor& x) override { return (*fc)(flat((*norm)(x))); }
  std::shared_ptr<models::Normalize> norm;
  std::shared_ptr<nn::Linear> fc;
  nn::Flatten flat;
};

/// flatten -> Linear(3072, hidden) -> ReLU -> Linear(hidden, C): tensors of several kinds for
/// FF (a big non-classifier matrix, a 1-D bias, the classifier row and bias).
class Mlp : public nn::Module {
 public:
  Mlp(int64_t hidden, int64_t classes, uint64_t seed) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3072, hidden));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, classes));
    Generator g(seed, 0);
    fc1->reset_parameters(g);
    fc2->reset_parameters(g);
  }
  Tensor forward(const Tensor& x) override {
    return (*fc2)(relu((*fc1)(flat(x))));
  }
  std::shared_ptr<nn::Linear> fc1, fc2;
  nn::Flatten flat;
  nn::ReLU relu;
};

/// A synthetic data set whose training split is every image (indices 0..n-1).
struct ToyData {
  data::Dataset train, test;
  std::vector<int64_t> split;
  ToyData(int64_t n_train, int64_t n_test, int64_t classes, uint64_t seed = 7)
      : train(data::make_synthetic(n_train, classes, seed)),
        test(data::make_synthetic(n_test, classes, seed + 1000)) {
    for (int64_t i = 0; i < n_train; ++i) split.push_back(i);
  }
};

/// Evaluation options with the confidence attack only (faster).
inline unlearn::EvalOptions no_variants() {
  unlearn::EvalOptions o;
  o.mia_variants = false;
  return o;
}

/// Image i of `d` as 3072 doubles in [0, 1] (v / 255, as the loader converts it).
inline std::vector<double> pixels(const data::Dataset& d, int64_t i) {
  std::vector<double> x(3072);
  const uint8_t* p = d.image(i);
  for (size_t j = 0; j < x.size(); ++j) x[j] = static_cast<double>(static_cast<float>(p[j]) / 255.0f);
  return x;
}

/// Every parameter of `m` flattened in named_parameters order, as doubles.
inline std::vector<double> flat_params(const nn::Module& m) {
  std::vector<double> out;
  for (const Tensor& p : m.parameters()) {
    const std::vector<float> v = p.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

/// Trains `m` briefly on `idx` with plain SGD (no augmentation) so tests start from a
/// sensible model.
inline void pretrain(nn::Module& m, const data::Dataset& d, const std::vector<int64_t>& idx,
                     int64_t epochs, double lr, int64_t batch = 64) {
  train::TrainOptions o;
  o.epochs = epochs;
  o.batch_size = batch;
  o.sgd.lr = lr;
  o.sgd.momentum = 0.9;
  o.lr_schedule = "constant";
  o.augment = false;
  o.seed = 3;
  o.quiet = true;
  train::fit(m, d, idx, d, {}, o);
}

}  // namespace lethe::testing
