// Retrain: fresh init with the original init seed, same mask, train on retain only.
#include "unlearn/retrain.h"

#include "framework/autograd.h"
#include "models/model.h"

namespace lethe::unlearn {

MethodResult retrain(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                     const prune::MaskSet& masks, const RetrainOptions& options,
                     const ModelFactory& fresh) {
  LETHE_CHECK(fresh != nullptr, "retrain needs a factory for a freshly initialised model");
  const Stopwatch clock;
  MethodResult result;
  result.method = "retrain";
  {
    // Copy the fresh weights into the caller's model, so every handle to it (the optimizer
    // built inside fit, the caller's pointers) sees the retrained model.
    const std::shared_ptr<nn::Module> init = fresh();
    const nn::NamedTensors src = init->state_dict();
    const nn::NamedTensors dst = model.state_dict();
    LETHE_CHECK(src.size() == dst.size(), "retrain: the fresh model has ", src.size(),
                " tensors but the model has ", dst.size());
    autograd::NoGradGuard no_grad;
    for (size_t i = 0; i < src.size(); ++i) {
      LETHE_CHECK(src[i].first == dst[i].first && src[i].second.shape() == dst[i].second.shape(),
                  "retrain: the fresh model's '", src[i].first, "' does not match the model's '",
                  dst[i].first, "'");
      Tensor t = dst[i].second;
      t.copy_(src[i].second);
    }
  }
  fit_method(model, train, fs.retain, masks, options.sgd, {}, result);
  result.seconds = clock.seconds();
  return result;
}

ModelFactory model_factory(const models::ModelSpec& spec, uint64_t init_seed) {
  return [spec, init_seed] {
    Generator gen(init_seed, 0);
    return models::make_model(spec, gen);
  };
}

}  // namespace lethe::unlearn
