// l1-sparse: fine-tuning with an l1 penalty on all parameters and a per-epoch gamma schedule.
#include "unlearn/l1_sparse.h"

#include "framework/ops.h"

namespace lethe::unlearn {

L1Schedule parse_l1_schedule(const std::string& name) {
  if (name == "decay") return L1Schedule::Decay;
  if (name == "growth") return L1Schedule::Growth;
  if (name == "constant") return L1Schedule::Constant;
  LETHE_CHECK(false, "unknown l1 schedule '", name, "' (valid: decay, growth, constant)");
  return L1Schedule::Decay;
}

std::string to_string(L1Schedule s) {
  switch (s) {
    case L1Schedule::Decay: return "decay";
    case L1Schedule::Growth: return "growth";
    case L1Schedule::Constant: return "constant";
  }
  return "?";
}

double l1_gamma(L1Schedule schedule, double gamma, int64_t t, int64_t epochs) {
  LETHE_CHECK(epochs > 0 && t >= 0 && t < epochs, "l1_gamma: epoch ", t, " outside 0..",
              epochs - 1);
  const double e = static_cast<double>(epochs), td = static_cast<double>(t);
  switch (schedule) {
    case L1Schedule::Decay: return gamma * (1.0 - td / e);
    case L1Schedule::Growth: return gamma * (td + 1.0) / e;
    case L1Schedule::Constant: return gamma;
  }
  return gamma;
}

MethodResult l1_sparse(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                       const prune::MaskSet& masks, const L1Options& options) {
  LETHE_CHECK(options.gamma >= 0, "l1-sparse needs gamma >= 0, got ", options.gamma);
  const Stopwatch clock;
  MethodResult result;
  result.method = "l1";
  const std::vector<Tensor> params = model.parameters();
  const int64_t epochs = options.sgd.epochs;
  // Records the gamma the loss applied per epoch (shared with the loss closure).
  auto applied = std::make_shared<std::vector<double>>(static_cast<size_t>(epochs), -1.0);
  auto loss = [&options, params, epochs, applied](const Tensor& logits, const data::Batch& b) {
    const double g = l1_gamma(options.schedule, options.gamma, b.epoch, epochs);
    (*applied)[static_cast<size_t>(b.epoch)] = g;
    const Tensor ce = ops::cross_entropy(logits, b.labels);
    if (g == 0) return ce;
    return ops::add(ce, ops::scale(ops::l1_norm(params), g));
  };
  fit_method(model, train, fs.retain, masks, options.sgd, loss, result);
  result.schedule = *applied;
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
