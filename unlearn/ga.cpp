// GA: gradient ascent on the forget set.
#include "unlearn/ga.h"

#include "framework/ops.h"

namespace lethe::unlearn {

double ga_default_lr(const ForgetSpec& spec) { return spec.kind == ForgetKind::Class ? 1e-4 : 1e-3; }

Tensor ga_loss(const Tensor& logits, const data::Batch& batch) {
  return ops::neg(ops::cross_entropy(logits, batch.labels));
}

MethodResult gradient_ascent(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                             const prune::MaskSet& masks, const GaOptions& options) {
  const Stopwatch clock;
  MethodResult result;
  result.method = "ga";
  fit_method(model, train, fs.forget, masks, options.sgd, ga_loss, result);
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
