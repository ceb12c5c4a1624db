// Fuzz target: checkpoint reading, the way `lethe eval/prune/unlearn` read a file: the
// safetensors container (read_safetensors), its conversion to tensors (read_checkpoint), the
// model identity in its metadata (spec_from_metadata), loading it into a model of a fixed
// architecture (load_checkpoint: names, shapes, dtypes, NaN/Inf) and its pruning masks
// (masks_from_checkpoint). Rejection with lethe::Error is expected; anything else is a finding.
#include <cstdint>
#include <memory>
#include <string>

#include "framework/checkpoint.h"
#include "framework/rng.h"
#include "kernels/check.h"
#include "models/model.h"
#include "prune/mask.h"
#include "fuzz_input.h"

namespace {

lethe::nn::Module& tiny_model() {
  static std::shared_ptr<lethe::nn::Module> m = [] {
    lethe::Generator g(1, 0);
    return lethe::models::make_model(lethe::models::ModelSpec{"resnet18", 0.0625, 10, "cifar10"},
                                     g);
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lethe;
  const std::string path = fuzz::write_input(data, size, "checkpoint.safetensors");
  try {
    io::read_safetensors(path);
  } catch (const Error&) {
    return 0;  // the container is bad: nothing after it can succeed
  }
  try {
    const Checkpoint ck = read_checkpoint(path);
    try {
      models::spec_from_metadata(ck.metadata);
    } catch (const Error&) {
    }
    nn::Module& m = tiny_model();
    try {
      prune::masks_from_checkpoint(ck, m, path);
    } catch (const Error&) {
    }
    load_checkpoint(path, m, models::model_metadata(models::ModelSpec{"resnet18", 0.0625, 10,
                                                                      "cifar10"}));
  } catch (const Error&) {
  }
  return 0;
}
