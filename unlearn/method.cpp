// Shared helpers of the unlearning methods (method.h).
#include "unlearn/method.h"

#include <cstring>

#include "framework/autograd.h"

namespace lethe::unlearn {

void install_masks(nn::Module& model, const prune::MaskSet& masks) {
  if (!masks.empty()) prune::apply_masks(model, masks);
}

train::TrainOptions train_options(const TrainRecipe& r, train::LossFn loss) {
  LETHE_CHECK(r.epochs > 0, "an unlearning method needs epochs > 0, got ", r.epochs);
  LETHE_CHECK(r.batch_size > 0, "an unlearning method needs a batch size > 0, got ", r.batch_size);
  LETHE_CHECK(r.lr >= 0, "the learning rate must be >= 0, got ", r.lr);
  train::TrainOptions o;
  o.epochs = r.epochs;
  o.batch_size = r.batch_size;
  o.sgd.lr = r.lr;
  o.sgd.momentum = r.momentum;
  o.sgd.weight_decay = r.weight_decay;
  o.sgd.nesterov = false;
  o.lr_schedule = r.lr_schedule;
  o.seed = r.seed;
  o.augment = r.augment;
  o.loss = std::move(loss);
  o.quiet = r.quiet;
  return o;
}

void fit_method(nn::Module& model, const data::Dataset& train, const std::vector<int64_t>& indices,
                const prune::MaskSet& masks, const TrainRecipe& recipe, train::LossFn loss,
                MethodResult& result) {
  install_masks(model, masks);
  const train::TrainOptions o = train_options(recipe, std::move(loss));
  // No validation set: evaluation is not part of a method's time (RTE).
  const train::TrainResult r = train::fit(model, train, indices, train, {}, o, masks);
  result.history = r.history;
  result.samples += static_cast<int64_t>(indices.size()) * recipe.epochs;
}

std::vector<float> host_values(const Tensor& t) {
  LETHE_CHECK(t.dtype() == DType::F32, "host_values: float32 tensor expected, got ", t.str());
  if (t.device().is_cpu() && t.is_contiguous()) {
    const float* p = t.data<float>();
    return std::vector<float>(p, p + t.numel());
  }
  return t.to_vector<float>();
}

const float* host_ptr(const Tensor& t, std::vector<float>& scratch) {
  LETHE_CHECK(t.dtype() == DType::F32, "host_ptr: float32 tensor expected, got ", t.str());
  if (t.device().is_cpu() && t.is_contiguous()) return t.data<float>();
  scratch = t.to_vector<float>();
  return scratch.data();
}

void set_host_values(Tensor& t, const std::vector<float>& values) {
  LETHE_CHECK(t.dtype() == DType::F32 && static_cast<int64_t>(values.size()) == t.numel(),
              "set_host_values: ", values.size(), " values for ", t.str());
  if (t.device().is_cpu() && t.is_contiguous()) {
    std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    return;
  }
  t.copy_(Tensor::from_vector(values, t.shape()));
}

}  // namespace lethe::unlearn
