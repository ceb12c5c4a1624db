// RL: random labels for the forget images each epoch, trained together with the retain set.
#include "unlearn/rl.h"

#include <algorithm>

#include "framework/ops.h"
#include "framework/rng.h"

namespace lethe::unlearn {

namespace {
constexpr uint64_t kRelabelStream = 4;
}

std::vector<int32_t> rl_epoch_labels(int64_t n_forget, int64_t num_classes, uint64_t seed,
                                     int64_t epoch) {
  LETHE_CHECK(num_classes > 0 && epoch >= 0, "rl_epoch_labels: bad classes or epoch");
  Generator gen(seed, kRelabelStream);
  gen.set_state({seed, kRelabelStream, static_cast<uint64_t>(epoch + 1) << 32});
  std::vector<int32_t> out(static_cast<size_t>(n_forget));
  for (int32_t& y : out) y = static_cast<int32_t>(gen.randint(num_classes));
  return out;
}

Relabeller::Relabeller(const ForgetSet& fs, int64_t dataset_size, uint64_t seed)
    : forget_(fs.forget), num_classes_(fs.num_classes), seed_(seed),
      table_(static_cast<size_t>(dataset_size), -1) {
  for (int64_t i : forget_)
    LETHE_CHECK(i >= 0 && i < dataset_size, "RL: forget index ", i, " outside the data set");
}

const std::vector<int32_t>& Relabeller::table(int64_t epoch) {
  if (epoch != epoch_) {
    const std::vector<int32_t> y =
        rl_epoch_labels(static_cast<int64_t>(forget_.size()), num_classes_, seed_, epoch);
    for (size_t k = 0; k < forget_.size(); ++k) table_[static_cast<size_t>(forget_[k])] = y[k];
    epoch_ = epoch;
  }
  return table_;
}

Tensor Relabeller::labels(const data::Batch& b) {
  const std::vector<int32_t>& t = table(b.epoch);
  std::vector<int32_t> y = b.labels.to_vector<int32_t>();
  for (size_t i = 0; i < y.size(); ++i) {
    const int32_t r = t[static_cast<size_t>(b.indices[i])];
    if (r >= 0) y[i] = r;
  }
  return Tensor::from_vector(y, {static_cast<int64_t>(y.size())}).to(b.labels.device());
}

MethodResult random_label(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                          const prune::MaskSet& masks, const RlOptions& options) {
  const Stopwatch clock;
  MethodResult result;
  result.method = "rl";
  std::vector<int64_t> indices = fs.forget;
  indices.insert(indices.end(), fs.retain.begin(), fs.retain.end());
  auto relabel = std::make_shared<Relabeller>(fs, train.size(), options.sgd.seed);
  auto loss = [relabel](const Tensor& logits, const data::Batch& b) {
    return ops::cross_entropy(logits, relabel->labels(b));
  };
  fit_method(model, train, indices, masks, options.sgd, loss, result);
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
