// Masks: which weights they cover, applying them (stored zeros + masked forward and gradient),
// reading them from checkpoints with clear errors, and the sparsity report.
#include <gtest/gtest.h>

#include "framework/ops.h"
#include "prune/mask.h"
#include "prune/select.h"
#include "prune_test_util.h"

namespace lethe {
namespace {

using prune::MaskSet;

/// Expects `fn` to throw lethe::Error whose message contains `needle`.
template <class Fn>
void expect_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Masks, CoverEveryConvWeightAndNothingElse) {
  testing::TinyResNet s;
  auto model = s.model();
  const MaskSet ones = prune::all_ones_masks(*model);
  ASSERT_EQ(ones.size(), 20u);  // 17 3x3 convs + 3 1x1 shortcuts
  EXPECT_TRUE(ones.count("conv1.weight"));
  EXPECT_TRUE(ones.count("layer2.0.downsample.0.weight"));
  EXPECT_FALSE(ones.count("fc.weight"));
  EXPECT_FALSE(ones.count("bn1.weight"));
  for (const auto& [name, conv] : models::conv_layers(*model)) {
    const Tensor& m = ones.at(name);
    EXPECT_EQ(m.dtype(), DType::U8);
    EXPECT_EQ(m.shape(), conv->weight.shape());
  }
  EXPECT_EQ(prune::mask_tensor_name("conv1.weight"), "conv1.weight.mask");
}

TEST(Masks, ApplyZeroesWeightsAndMasksTheForwardAndGradient) {
  testing::TinyResNet s;
  auto model = s.model();
  const MaskSet masks = prune::random_masks(*model, 0.5, 1);
  prune::apply_masks(*model, masks);
  const auto convs = models::conv_layers(*model);
  for (const auto& [name, conv] : convs) {
    ASSERT_TRUE(conv->mask().defined()) << name;
    const auto w = conv->weight.to_vector<float>();
    const auto m = masks.at(name).to_vector<uint8_t>();
    for (size_t i = 0; i < w.size(); ++i)
      if (!m[i]) {
        ASSERT_EQ(w[i], 0.0f) << name << "[" << i << "]";
      }
  }
  // The forward multiplies by the mask: a stored value at a pruned position changes nothing,
  // and its gradient is exactly 0.
  Tensor x = Tensor::full({2, 3, 32, 32}, 0.5);
  model->eval();
  const std::vector<float> before = (*model)(x).to_vector<float>();
  nn::Conv2d* c = convs[5].second;
  const auto m5 = masks.at(convs[5].first).to_vector<uint8_t>();
  size_t pruned_at = 0;
  while (m5[pruned_at]) ++pruned_at;
  c->weight.data<float>()[pruned_at] = 123.0f;
  EXPECT_EQ((*model)(x).to_vector<float>(), before);
  model->zero_grad();
  ops::sum((*model)(x)).backward();
  const auto g = c->weight.grad().to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i)
    if (!m5[i]) {
      ASSERT_EQ(g[i], 0.0f) << i;
    }
}

TEST(Masks, SaveAndReadBackThroughACheckpoint) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  auto model = s.model();
  const MaskSet masks = prune::omp_masks(*model, 0.7);
  prune::save_masks(dir / "m.safetensors", masks, models::model_metadata(s.spec));
  const MaskSet back = prune::read_masks(dir / "m.safetensors", *model);
  EXPECT_EQ(prune::flatten_masks(*model, back), prune::flatten_masks(*model, masks));
  // A dense checkpoint has no masks: an empty set, i.e. nothing pruned.
  save_checkpoint(dir / "dense.safetensors", model->state_dict(), models::model_metadata(s.spec));
  EXPECT_TRUE(prune::read_masks(dir / "dense.safetensors", *model).empty());
}

TEST(Masks, BadMaskFilesAreOneClearError) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  auto model = s.model();
  const Shape w = models::conv_layers(*model)[1].second->weight.shape();
  auto write = [&](const std::string& name, const Tensor& t) {
    const std::string path = dir / (name + ".safetensors");
    save_checkpoint(path, {{name, t}}, {});
    return path;
  };
  const Tensor ones = Tensor::full(w, 1.0, DType::U8);
  const std::string conv = "layer1.0.conv1.weight.mask";
  auto read = [&](const std::string& name, const Tensor& t) {
    return [&, name, t] { prune::read_masks(write(name, t), *model); };
  };
  expect_error(read("fc.weight.mask", Tensor::full({10, 32}, 1, DType::U8)), "not a conv weight");
  expect_error(read("layer9.weight.mask", ones), "not a conv weight");
  expect_error(read(conv, Tensor::full(w, 1.0)), "must be uint8");
  expect_error(read(conv, Tensor::full({4, 4, 1, 1}, 1, DType::U8)), "has shape");
  Tensor two = ones.clone();
  two.data<uint8_t>()[3] = 2;
  expect_error(read(conv, two), "only 0 and 1");
  // apply_masks validates before it changes anything.
  const auto convs = models::conv_layers(*model);
  const std::vector<float> w1 = convs[1].second->weight.to_vector<float>();
  MaskSet bad = {{"conv1.weight", Tensor::zeros(convs[0].second->weight.shape(), DType::U8)},
                 {"layer1.0.conv1.weight", two}};
  EXPECT_THROW(prune::apply_masks(*model, bad), Error);
  EXPECT_EQ(convs[1].second->weight.to_vector<float>(), w1);
  EXPECT_FALSE(convs[0].second->mask().defined());
}

TEST(Sparsity, ReportCountsZeroConvWeightsOverallAndPerLayer) {
  testing::TinyResNet s;
  auto model = s.model();
  EXPECT_EQ(prune::sparsity_report(*model).zeros, 0);
  prune::apply_masks(*model, prune::omp_masks(*model, 0.95));
  const prune::SparsityReport r = prune::sparsity_report(*model);
  EXPECT_EQ(r.total, 43692);
  EXPECT_EQ(r.zeros, prune::prune_count(0.95, 43692));
  ASSERT_EQ(r.layers.size(), 20u);
  int64_t sum = 0;
  for (const auto& l : r.layers) sum += l.zeros;
  EXPECT_EQ(sum, r.zeros);
  EXPECT_EQ(r.layers[0].name, "conv1.weight");
  EXPECT_EQ(r.layers[0].total, 4 * 3 * 3 * 3);
  const nlohmann::json j = prune::sparsity_json(r);
  EXPECT_EQ(j["overall"]["zeros"], r.zeros);
  EXPECT_DOUBLE_EQ(j["overall"]["sparsity"].get<double>(), r.sparsity());
  EXPECT_EQ(j["layers"].size(), 20u);
  EXPECT_EQ(j["layers"][0]["shape"], (std::vector<int64_t>{4, 3, 3, 3}));
  const std::string text = prune::format_sparsity(r);
  EXPECT_NE(text.find("overall"), std::string::npos);
  EXPECT_NE(text.find("95.00%"), std::string::npos);
}

}  // namespace
}  // namespace lethe
