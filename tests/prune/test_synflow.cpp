// SynFlow: scores equal a hand computation on a small conv-BN-ReLU-conv-Linear chain (every
// parameter and buffer taken by absolute value, eval mode), masked weights score 0, the model
// comes back bit for bit, and the iterative loop prunes exactly the rate.
#include <gtest/gtest.h>

#include <cmath>

#include "prune/select.h"
#include "prune/synflow.h"
#include "prune_test_util.h"

namespace lethe {
namespace {

/// Converts a module's float32 tensors to float64 in place (exact), so the hand computation is
/// checked in double.
void to_float64(nn::Module& m) {
  for (auto& [name, t] : m.state_dict()) {
    if (t.dtype() != DType::F32) continue;
    const bool grad = t.requires_grad();
    Tensor c = t.to(DType::F64);
    *t.impl() = *c.impl();
    t.set_requires_grad(grad);
  }
}

void set64(Tensor& t, const std::vector<double>& v) {
  ASSERT_EQ(static_cast<int64_t>(v.size()), t.numel());
  std::copy(v.begin(), v.end(), t.data<double>());
}

/// input ones [1,1,2,2] -> conv "0" (1->2, 1x1, bias) -> BN "1" -> ReLU "2" -> conv "3"
/// (2->1, 1x1) -> Flatten "4" -> Linear "5" (4->1). Signs chosen so that taking the absolute
/// value of every weight, bias and BN buffer changes the result.
struct Chain {
  std::shared_ptr<nn::Sequential> net = std::make_shared<nn::Sequential>();
  std::shared_ptr<nn::Conv2d> c0 = std::make_shared<nn::Conv2d>(1, 2, 1, 1, 0, true);
  std::shared_ptr<nn::BatchNorm2d> bn = std::make_shared<nn::BatchNorm2d>(2);
  std::shared_ptr<nn::Conv2d> c3 = std::make_shared<nn::Conv2d>(2, 1, 1);
  std::shared_ptr<nn::Linear> fc = std::make_shared<nn::Linear>(4, 1);
  Chain() {
    net->push_back(c0);
    net->push_back(bn);
    net->push_back(std::make_shared<nn::ReLU>());
    net->push_back(c3);
    net->push_back(std::make_shared<nn::Flatten>());
    net->push_back(fc);
    to_float64(*net);
    set64(c0->weight, {-0.5, 2.0});
    set64(c0->bias, {0.25, -0.75});
    set64(bn->weight, {-1.5, 0.5});
    set64(bn->bias, {0.1, -0.2});
    set64(bn->running_mean, {-0.1, 0.3});
    set64(bn->running_var, {4.0, 0.25});
    set64(c3->weight, {3.0, -0.25});
    set64(fc->weight, {0.5, -1.0, 2.0, -0.25});
    set64(fc->bias, {-0.3});
  }
  Tensor input() const { return Tensor::full({1, 1, 2, 2}, 1.0, DType::F64); }
};

TEST(SynFlow, ScoresEqualTheHandComputation) {
  Chain c;
  const std::vector<double> s = prune::synflow_scores(*c.net, c.input());
  ASSERT_EQ(s.size(), 4u);  // conv "0" (2 weights) then conv "3" (2 weights)
  // With every value made positive: a_k = |w1_k| + |b1_k| per pixel, z_k = (a_k - |mean_k|) /
  // sqrt(|var_k| + eps) * |gamma_k| + |beta_k| (> 0, so the ReLU passes it), y = sum_k |w2_k| z_k
  // per pixel, R = sum_p |l_p| y + |b| with L = sum_p |l_p| = 3.75. Hence
  // dR/dw2_k = L z_k and dR/dw1_k = L |w2_k| |gamma_k| / sqrt(|var_k| + eps).
  const double eps = 1e-5, L = 3.75;
  const double inv0 = 1.0 / std::sqrt(4.0 + eps), inv1 = 1.0 / std::sqrt(0.25 + eps);
  const double z0 = (0.5 + 0.25 - 0.1) * inv0 * 1.5 + 0.1;
  const double z1 = (2.0 + 0.75 - 0.3) * inv1 * 0.5 + 0.2;
  EXPECT_NEAR(s[0], 0.5 * L * 3.0 * 1.5 * inv0, 1e-12);
  EXPECT_NEAR(s[1], 2.0 * L * 0.25 * 0.5 * inv1, 1e-12);
  EXPECT_NEAR(s[2], 3.0 * L * z0, 1e-12);
  EXPECT_NEAR(s[3], 0.25 * L * z1, 1e-12);
}

TEST(SynFlow, ScoringRestoresTheModelAndMaskedWeightsScoreZero) {
  Chain c;
  const auto before = c.net->state_dict();
  std::vector<std::vector<double>> values;
  for (const auto& [n, t] : before)
    if (t.dtype() == DType::F64) values.push_back(t.to_vector<double>());
  ASSERT_TRUE(c.net->is_training());
  const std::vector<double> full = prune::synflow_scores(*c.net, c.input());
  size_t k = 0;
  for (const auto& [n, t] : c.net->state_dict())
    if (t.dtype() == DType::F64) {
      EXPECT_EQ(t.to_vector<double>(), values[k++]) << n;
    }
  EXPECT_TRUE(c.net->is_training());
  EXPECT_FALSE(c.c0->weight.grad().defined());
  EXPECT_EQ(c.bn->num_batches_tracked.item(), 0.0);  // eval mode: no statistics update

  // Pruning w2_1 cuts channel 1's only path: both its weights score 0, channel 0's are unchanged.
  c.c3->set_mask(Tensor::from_vector<uint8_t>({1, 0}, {1, 2, 1, 1}));
  const std::vector<double> masked = prune::synflow_scores(*c.net, c.input());
  EXPECT_EQ(masked[0], full[0]);
  EXPECT_EQ(masked[1], 0.0);
  EXPECT_EQ(masked[2], full[2]);
  EXPECT_EQ(masked[3], 0.0);
}

TEST(SynFlow, OneIterationPrunesTheLowestScore) {
  Chain c;
  const std::vector<double> s = prune::synflow_scores(*c.net, c.input());
  const size_t lowest = static_cast<size_t>(std::min_element(s.begin(), s.end()) - s.begin());
  prune::SynflowOptions o;
  o.iterations = 1;
  const prune::MaskSet m = prune::synflow_masks(*c.net, 0.25, o, c.input());
  const std::vector<uint8_t> keep = prune::flatten_masks(*c.net, m);
  for (size_t i = 0; i < keep.size(); ++i) EXPECT_EQ(keep[i], i == lowest ? 0 : 1) << i;
}

TEST(SynFlow, KeepsTheExponentialScheduleAndEndsExactlyAtTheRate) {
  EXPECT_EQ(prune::synflow_kept_after(1000, 0.99, 1, 100), 955);  // 1000 * 0.01^0.01
  EXPECT_EQ(prune::synflow_kept_after(1000, 0.99, 50, 100), 100);
  EXPECT_EQ(prune::synflow_kept_after(1000, 0.99, 100, 100), 10);
  EXPECT_EQ(prune::synflow_kept_after(43692, 0.95, 100, 100), 43692 - 41507);
  for (int it = 2; it <= 100; ++it)
    EXPECT_LE(prune::synflow_kept_after(43692, 0.95, it, 100),
              prune::synflow_kept_after(43692, 0.95, it - 1, 100));
}

TEST(SynFlow, PrunesExactlyTheRateAndLeavesTheModelBitForBit) {
  testing::TinyResNet s;
  auto model = s.model();
  const auto before = model->state_dict();
  std::vector<std::vector<float>> values;
  for (const auto& [n, t] : before)
    if (t.dtype() == DType::F32) values.push_back(t.to_vector<float>());
  prune::SynflowOptions o;
  o.iterations = 20;  // the default is 100; 20 keeps the test fast and exercises the loop
  const prune::MaskSet a = prune::synflow_masks(*model, 0.95, o);
  const prune::MaskSet b = prune::synflow_masks(*model, 0.95, o);
  const auto fa = prune::flatten_masks(*model, a);
  EXPECT_EQ(fa, prune::flatten_masks(*model, b));  // deterministic
  int64_t zeros = 0;
  for (uint8_t k : fa) zeros += k == 0;
  EXPECT_EQ(zeros, prune::prune_count(0.95, 43692));
  size_t k = 0;
  for (const auto& [n, t] : model->state_dict()) {
    if (t.dtype() == DType::I32) continue;
    ASSERT_EQ(t.dtype(), DType::F32) << n;  // converted back after the float64 scoring
    EXPECT_EQ(t.to_vector<float>(), values[k++]) << n;
  }
  for (const auto& [n, conv] : models::conv_layers(*model)) EXPECT_FALSE(conv->mask().defined());
  // Layer-wise it is not magnitude pruning: SynFlow keeps the first conv far denser.
  const auto m0 = a.at("conv1.weight").to_vector<uint8_t>();
  int64_t kept0 = 0;
  for (uint8_t v : m0) kept0 += v;
  EXPECT_GT(kept0, static_cast<int64_t>(m0.size()) / 2);
  o.float64 = false;
  int64_t zeros32 = 0;
  for (uint8_t v : prune::flatten_masks(*model, prune::synflow_masks(*model, 0.5, o)))
    zeros32 += v == 0;
  EXPECT_EQ(zeros32, prune::prune_count(0.5, 43692));
}

}  // namespace
}  // namespace lethe
