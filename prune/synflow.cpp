// SynFlow scoring and its iterative pruning loop (see synflow.h for every choice made).
#include "prune/synflow.h"

#include <cmath>
#include <cstdio>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "prune/select.h"

namespace lethe::prune {

namespace {

bool is_float(const Tensor& t) { return t.dtype() == DType::F32 || t.dtype() == DType::F64; }

/// x <- |x| for a float tensor on any device (through a host copy off the CPU).
void abs_inplace(Tensor& t) {
  Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
  const int64_t n = h.numel();
  if (h.dtype() == DType::F32) {
    float* p = h.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = std::fabs(p[i]);
  } else {
    double* p = h.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = std::fabs(p[i]);
  }
  if (!t.device().is_cpu()) t.copy_(h);
}

std::vector<double> host_values(const Tensor& t) {
  if (t.dtype() == DType::F64) return t.to_vector<double>();
  const std::vector<float> v = t.to_vector<float>();
  return {v.begin(), v.end()};
}

/// Replaces a tensor's storage by a converted copy, in place: every handle to it (the module's
/// registry and the layer's member) sees the new dtype, as models::reset_classifier does.
void convert_inplace(Tensor& t, DType to) {
  const bool grad = t.requires_grad();
  const Tensor c = t.to(to);
  *t.impl() = *c.impl();
  t.set_requires_grad(grad);
}

/// Saves every float tensor of the state dict, takes its absolute value, and puts the saved
/// values back when destroyed (also when scoring throws), with gradients dropped and the
/// train/eval mode restored.
class Linearized {
 public:
  explicit Linearized(nn::Module& model) : model_(model), training_(model.is_training()) {
    autograd::NoGradGuard no_grad;
    for (auto& [name, t] : model.state_dict()) {
      if (!is_float(t)) continue;  // num_batches_tracked: an unread counter in eval mode
      saved_.emplace_back(t, t.clone());
      abs_inplace(saved_.back().first);
    }
    model.eval();
    model.zero_grad();
  }
  ~Linearized() {
    autograd::NoGradGuard no_grad;
    for (auto& [live, copy] : saved_) live.copy_(copy);
    model_.zero_grad();
    model_.train(training_);
  }
  Linearized(const Linearized&) = delete;
  Linearized& operator=(const Linearized&) = delete;

 private:
  nn::Module& model_;
  bool training_;
  std::vector<std::pair<Tensor, Tensor>> saved_;
};

/// Converts the model's float32 tensors to float64 for its lifetime (exact both ways).
class Float64Scope {
 public:
  Float64Scope(nn::Module& model, bool on) {
    if (!on) return;
    for (auto& [name, t] : model.state_dict())
      if (t.dtype() == DType::F32) {
        converted_.push_back(t);
        convert_inplace(converted_.back(), DType::F64);
      }
  }
  ~Float64Scope() {
    for (Tensor& t : converted_) convert_inplace(t, DType::F32);
  }
  Float64Scope(const Float64Scope&) = delete;
  Float64Scope& operator=(const Float64Scope&) = delete;

 private:
  std::vector<Tensor> converted_;
};

/// Puts the convs' own masks back when destroyed (scoring installs the iteration's masks).
class MaskScope {
 public:
  explicit MaskScope(const ConvList& convs) : convs_(convs) {
    for (const auto& [name, conv] : convs) saved_.push_back(conv->mask());
  }
  ~MaskScope() {
    for (size_t i = 0; i < convs_.size(); ++i) convs_[i].second->set_mask(saved_[i]);
  }
  MaskScope(const MaskScope&) = delete;
  MaskScope& operator=(const MaskScope&) = delete;

 private:
  const ConvList& convs_;
  std::vector<Tensor> saved_;
};

}  // namespace

std::vector<double> synflow_scores(nn::Module& model, const Tensor& input) {
  const ConvList convs = prunable_layers(model);
  LETHE_CHECK(input.dtype() == convs.front().second->weight.dtype(), "synflow: the input is ",
              dtype_name(input.dtype()), " but the model's weights are ",
              dtype_name(convs.front().second->weight.dtype()));
  std::vector<double> scores;
  Linearized linear(model);
  const Tensor R = ops::sum(model(input));
  const double r = R.item();
  LETHE_CHECK(std::isfinite(r), "synflow: R = sum of outputs is ", r, " (", dtype_name(R.dtype()),
              " overflow); score in float64 (SynflowOptions::float64)");
  R.backward();
  for (const auto& [name, conv] : convs) {
    const Tensor g = conv->weight.grad();
    const std::vector<double> w = host_values(conv->weight);
    if (!g.defined()) {  // a conv the output does not depend on: every score is 0
      scores.insert(scores.end(), w.size(), 0.0);
      continue;
    }
    const std::vector<double> gv = host_values(g);
    for (size_t i = 0; i < w.size(); ++i) {
      const double s = std::fabs(gv[i] * w[i]);
      LETHE_CHECK(std::isfinite(s), "synflow: the score of ", name, "[", i, "] is ", s);
      scores.push_back(s);
    }
  }
  return scores;
}

int64_t synflow_kept_after(int64_t total, double rate, int it, int iterations) {
  LETHE_CHECK(it >= 1 && it <= iterations, "synflow_kept_after: iteration ", it, " outside 1..",
              iterations);
  if (it == iterations) return total - prune_count(rate, total);
  return std::llround(static_cast<double>(total) *
                      std::pow(1.0 - rate, static_cast<double>(it) / iterations));
}

MaskSet synflow_masks(nn::Module& model, double rate, const SynflowOptions& o,
                      const Tensor& input) {
  LETHE_CHECK(o.iterations >= 1, "synflow needs at least 1 iteration, got ", o.iterations);
  const ConvList convs = prunable_layers(model);
  // The scoring converts the model to float64 and feeds a host input; the GPU kernels are
  // float32 only, so a GPU run scores a host copy of its initialisation (prune/pipeline.cpp).
  LETHE_CHECK(convs.front().second->weight.device().is_cpu(), "synflow scores a model on the ",
              "CPU; this one is on ", convs.front().second->weight.device().str());
  const int64_t total = prunable_count(model);
  const int64_t final_pruned = prune_count(rate, total);
  std::vector<uint8_t> keep(static_cast<size_t>(total), 1);
  if (final_pruned == 0) return unflatten_masks(model, keep);
  {
    MaskScope mask_scope(convs);
    Float64Scope f64(model, o.float64);
    const DType dt = convs.front().second->weight.dtype();
    Tensor x = input.defined() ? input : Tensor::full({1, 3, 32, 32}, 1.0);
    if (x.dtype() != dt) x = x.to(dt);
    int64_t pruned = 0;
    for (int it = 1; it <= o.iterations; ++it) {
      const MaskSet current = unflatten_masks(model, keep);
      for (const auto& [name, conv] : convs) conv->set_mask(current.at(name));
      const std::vector<double> scores = synflow_scores(model, x);
      const int64_t keep_target = synflow_kept_after(total, rate, it, o.iterations);
      const int64_t n = std::max<int64_t>(0, (total - keep_target) - pruned);
      prune_smallest(scores, keep, n);
      pruned += n;
      if (o.verbose && (it % 10 == 0 || it == o.iterations))
        std::fprintf(stderr,
                     "[prune] synflow iteration %d/%d: %.4f%% of %lld conv weights pruned\n", it,
                     o.iterations,
                     100.0 * static_cast<double>(pruned) / static_cast<double>(total),
                     static_cast<long long>(total));
    }
    LETHE_CHECK(pruned == final_pruned, "synflow pruned ", pruned, " weights, not ",
                final_pruned);
  }
  return unflatten_masks(model, keep);
}

}  // namespace lethe::prune
