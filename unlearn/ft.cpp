// FT: fine-tuning on the retain set.
#include "unlearn/ft.h"

namespace lethe::unlearn {

MethodResult finetune(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                      const prune::MaskSet& masks, const FtOptions& options) {
  const Stopwatch clock;
  MethodResult result;
  result.method = "ft";
  fit_method(model, train, fs.retain, masks, options.sgd, {}, result);
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
