// PyTorch compatibility: narrow ResNet-18 and VGG-16-BN state_dicts written by PyTorch (with
// trained-looking BN statistics) load into lethe's models by name, and give PyTorch's logits.
//
// The golden files are committed under tests/models/golden/ and were written by
// scripts/make_golden_models.py (see its header to regenerate); torch is never needed here.
// They are found next to this source file (__FILE__ is the absolute path CMake compiles),
// falling back to models/golden/ under the working directory (ctest runs in tests/).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "framework/checkpoint.h"
#include "models/model.h"
#include "testing/compare.h"

namespace lethe::models {
namespace {

std::string golden_path(const std::string& file) {
  namespace fs = std::filesystem;
  const fs::path beside = fs::path(__FILE__).parent_path() / "golden" / file;
  if (fs::exists(beside)) return beside.string();
  return (fs::path("models") / "golden" / file).string();
}

void check_golden(const std::string& file, const std::string& arch) {
  const std::string path = golden_path(file);
  const Checkpoint golden = read_checkpoint(path);  // fails with the path if it is missing
  const ModelSpec spec = spec_from_metadata(golden.metadata);
  EXPECT_EQ(spec.arch, arch);
  Generator gen(123, 0);
  auto model = make_model(spec, gen);
  load_checkpoint(path, *model, model_metadata(spec));

  // The names match PyTorch's state_dict both ways (nothing extra on either side).
  std::set<std::string> ours, theirs;
  for (const auto& [name, t] : model->state_dict()) ours.insert(name);
  for (const auto& [name, t] : golden.tensors)
    if (name.rfind("golden.", 0) != 0) theirs.insert(name);
  EXPECT_EQ(ours, theirs);

  const Tensor& x = golden.tensors.at("golden.input");
  // Observed differences are below 1e-6 (float32 against a float64 reference); atol 1e-5 keeps
  // the check meaningful for VGG's small logits (~0.03).
  const testing::Tolerance tol{1e-5, 1e-4};
  model->eval();
  const Tensor logits = model->forward(x);
  const Tensor& want = golden.tensors.at("golden.logits");
  ASSERT_EQ(logits.shape(), want.shape());
  EXPECT_TRUE(testing::all_close(want.to_vector<float>(), logits.to_vector<float>(), tol,
                                 arch + " eval logits"));
  // Train mode: BN on the batch's own statistics (2 images).
  model->train();
  EXPECT_TRUE(testing::all_close(golden.tensors.at("golden.logits_train").to_vector<float>(),
                                 model->forward(x).to_vector<float>(), tol,
                                 arch + " train-mode logits"));
}

TEST(Golden, ResNet18MatchesPyTorch) { check_golden("resnet18_w0.1.safetensors", "resnet18"); }

TEST(Golden, VGG16BNMatchesPyTorch) {
  check_golden("vgg16_bn_w0.0625.safetensors", "vgg16_bn");
}

}  // namespace
}  // namespace lethe::models
