#include <gtest/gtest.h>

#include <cmath>

#include "framework/autograd.h"
#include "framework/nn.h"
#include "framework/ops.h"

namespace lethe {
namespace {

class Block : public nn::Module {
 public:
  Block() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 4, 3, 1, 1));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(4));
    downsample = register_module(
        "downsample", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                          std::make_shared<nn::Conv2d>(3, 4, 1, 2), std::make_shared<nn::BatchNorm2d>(4)}));
    fc = register_module("fc", std::make_shared<nn::Linear>(4, 2));
  }
  Tensor forward(const Tensor& x) override { return fc->forward(ops::flatten(x)); }
  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Sequential> downsample;
  std::shared_ptr<nn::Linear> fc;
};

TEST(Module, StableDottedNames) {
  Block b;
  std::vector<std::string> names;
  for (auto& [n, t] : b.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias",
                                             "downsample.0.weight", "downsample.1.weight",
                                             "downsample.1.bias", "fc.weight", "fc.bias"}));
  names.clear();
  for (auto& [n, t] : b.named_buffers()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                       "downsample.1.running_mean", "downsample.1.running_var",
                       "downsample.1.num_batches_tracked"}));
  EXPECT_EQ(b.state_dict().size(), 14u);
  for (auto& [n, t] : b.named_parameters()) EXPECT_TRUE(t.requires_grad()) << n;
}

TEST(Module, TrainEvalIsRecursive) {
  Block b;
  b.eval();
  EXPECT_FALSE(b.is_training());
  EXPECT_FALSE(b.bn1->is_training());
  EXPECT_FALSE(b.downsample->children()[1].second->is_training());
  b.train();
  EXPECT_TRUE(b.downsample->children()[1].second->is_training());
}

TEST(BatchNorm2d, TrainingUpdatesRunningStatsAndCounter) {
  nn::BatchNorm2d bn(1);
  // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased var 5/3.
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor y = bn(x);
  EXPECT_NEAR(bn.running_mean.item(), 0.25, 1e-7);
  EXPECT_NEAR(bn.running_var.item(), 0.9 + 0.1 * 5.0 / 3.0, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1);
  EXPECT_NEAR(y.to_vector<float>()[0], (1 - 2.5) / std::sqrt(1.25 + 1e-5), 1e-5);
  bn.eval();
  Tensor ye = bn(x);  // eval: running statistics, counter unchanged
  EXPECT_NEAR(ye.to_vector<float>()[0], (1 - 0.25) / std::sqrt(bn.running_var.item() + 1e-5), 1e-5);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1);
}

TEST(Conv2d, MaskZeroesWeightsAndTheirGradients) {
  nn::Conv2d conv(2, 3, 3, 1, 1);
  Generator gen(7);
  conv.reset_parameters(gen);
  std::vector<uint8_t> m(static_cast<size_t>(conv.weight.numel()));
  for (size_t i = 0; i < m.size(); ++i) m[i] = (i % 3) != 0;
  conv.set_mask(Tensor::from_vector(m, conv.weight.shape()));
  Tensor x = Tensor::from_vector(std::vector<float>(2 * 2 * 5 * 5, 0.5f), {2, 2, 5, 5});
  ops::sum(conv(x)).backward();
  const auto g = conv.weight.grad().to_vector<float>();
  for (size_t i = 0; i < m.size(); ++i) {
    if (!m[i]) {
      EXPECT_EQ(g[i], 0.0f) << i;
    }
  }
  EXPECT_THROW(conv.set_mask(Tensor::zeros({3}, DType::U8)), Error);
}

TEST(Init, DefaultInitIsSeededAndBounded) {
  nn::Linear a(50, 10), b(50, 10);
  Generator g1(3), g2(3);
  a.reset_parameters(g1);
  b.reset_parameters(g2);
  EXPECT_EQ(a.weight.to_vector<float>(), b.weight.to_vector<float>());
  const double bound = 1.0 / std::sqrt(50.0);  // kaiming_uniform(a=sqrt(5)) on fan_in 50
  for (float v : a.weight.to_vector<float>()) EXPECT_LE(std::fabs(v), bound + 1e-7);
}

TEST(Sequential, RunsInOrder) {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::MaxPool2d>(2));
  seq->push_back(std::make_shared<nn::Flatten>());
  Tensor x = Tensor::from_vector<float>({1, 5, 2, 3}, {1, 1, 2, 2});
  EXPECT_EQ((*seq)(x).to_vector<float>(), (std::vector<float>{5}));
  EXPECT_EQ((*seq)(x).shape(), (Shape{1, 1}));
}

}  // namespace
}  // namespace lethe
