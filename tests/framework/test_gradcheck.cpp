// Finite-difference gradient checks for every op of framework/ops.h, in float64, with
// awkward shapes: odd H/W, batch 1, stride 2, channel counts that are not multiples of 8.
#include <gtest/gtest.h>

#include "framework/ops.h"
#include "testing/gradcheck.h"

namespace lethe {
namespace {

using testing::gradcheck;
using testing::random_param;

struct ConvCase {
  int64_t N, C, H, W, K, R, stride, pad;
  bool bias;
};

class Conv2dGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGrad, MatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  std::vector<Tensor> in = {random_param({c.N, c.C, c.H, c.W}, 1),
                            random_param({c.K, c.C, c.R, c.R}, 2),
                            c.bias ? random_param({c.K}, 3) : Tensor()};
  EXPECT_TRUE(gradcheck("conv2d", [&](const std::vector<Tensor>& v) {
    return ops::conv2d(v[0], v[1], v[2], c.stride, c.pad);
  }, in));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dGrad, ::testing::Values(
    ConvCase{2, 3, 7, 5, 5, 3, 1, 1, true},    // odd H/W, C=3, K=5, bias
    ConvCase{1, 5, 9, 9, 4, 3, 2, 1, false},   // batch 1, stride 2
    ConvCase{2, 6, 8, 6, 3, 1, 2, 0, false},   // 1x1 stride-2 shortcut
    ConvCase{3, 2, 5, 7, 3, 3, 1, 0, true},    // no padding
    ConvCase{1, 9, 4, 4, 10, 3, 1, 1, false}));  // C not a multiple of 8 at a small plane

TEST(OpsGrad, Linear) {
  EXPECT_TRUE(gradcheck("linear", [](const std::vector<Tensor>& v) {
    return ops::linear(v[0], v[1], v[2]);
  }, {random_param({3, 7}, 1), random_param({5, 7}, 2), random_param({5}, 3)}));
  EXPECT_TRUE(gradcheck("linear without bias", [](const std::vector<Tensor>& v) {
    return ops::linear(v[0], v[1], Tensor());
  }, {random_param({1, 4}, 4), random_param({3, 4}, 5)}));
}

TEST(OpsGrad, BatchNormTraining) {
  // Training mode: the statistics depend on x, so the full BN backward is exercised.
  for (const Shape& s : {Shape{3, 5, 3, 2}, Shape{1, 3, 5, 7}, Shape{4, 2, 1, 1}}) {
    Tensor rm = Tensor::zeros({s[1]}, DType::F64), rv = Tensor::full({s[1]}, 1.0, DType::F64);
    EXPECT_TRUE(gradcheck("batch_norm2d train " + shape_str(s), [&](const std::vector<Tensor>& v) {
      return ops::batch_norm2d(v[0], v[1], v[2], rm, rv, true);
    }, {random_param(s, 1), random_param({s[1]}, 2, 0.5, 1.5), random_param({s[1]}, 3)}));
  }
}

TEST(OpsGrad, BatchNormEval) {
  Tensor rm = Tensor::from_vector<double>({0.1, -0.2, 0.3}, {3});
  Tensor rv = Tensor::from_vector<double>({0.5, 1.5, 2.0}, {3});
  EXPECT_TRUE(gradcheck("batch_norm2d eval", [&](const std::vector<Tensor>& v) {
    return ops::batch_norm2d(v[0], v[1], v[2], rm, rv, false);
  }, {random_param({2, 3, 3, 5}, 1), random_param({3}, 2), random_param({3}, 3)}));
}

TEST(OpsGrad, Relu) {
  EXPECT_TRUE(gradcheck("relu", [](const std::vector<Tensor>& v) { return ops::relu(v[0]); },
                        {random_param({2, 3, 5, 7}, 1)}));
}

TEST(OpsGrad, MaxPool) {
  EXPECT_TRUE(gradcheck("max_pool2d k2 s2", [](const std::vector<Tensor>& v) {
    return ops::max_pool2d(v[0], 2, 2);
  }, {random_param({2, 3, 6, 7}, 1)}));
  EXPECT_TRUE(gradcheck("max_pool2d k3 s2 p1", [](const std::vector<Tensor>& v) {
    return ops::max_pool2d(v[0], 3, 2, 1);
  }, {random_param({1, 2, 7, 5}, 2)}));
}

TEST(OpsGrad, AvgPool) {
  EXPECT_TRUE(gradcheck("avg_pool2d k2 s2", [](const std::vector<Tensor>& v) {
    return ops::avg_pool2d(v[0], 2, 2);
  }, {random_param({2, 3, 5, 7}, 1)}));
  EXPECT_TRUE(gradcheck("avg_pool2d k3 s1 p1", [](const std::vector<Tensor>& v) {
    return ops::avg_pool2d(v[0], 3, 1, 1);
  }, {random_param({1, 2, 4, 5}, 2)}));
  EXPECT_TRUE(gradcheck("global_avg_pool", [](const std::vector<Tensor>& v) {
    return ops::global_avg_pool(v[0]);
  }, {random_param({3, 5, 3, 7}, 3)}));
}

TEST(OpsGrad, Elementwise) {
  EXPECT_TRUE(gradcheck("add", [](const std::vector<Tensor>& v) { return ops::add(v[0], v[1]); },
                        {random_param({2, 3, 5}, 1), random_param({2, 3, 5}, 2)}));
  EXPECT_TRUE(gradcheck("add_relu", [](const std::vector<Tensor>& v) {
    return ops::add_relu(v[0], v[1]);
  }, {random_param({2, 3, 5}, 3), random_param({2, 3, 5}, 4)}));
  EXPECT_TRUE(gradcheck("mul", [](const std::vector<Tensor>& v) { return ops::mul(v[0], v[1]); },
                        {random_param({3, 7}, 5), random_param({3, 7}, 6)}));
  EXPECT_TRUE(gradcheck("scale", [](const std::vector<Tensor>& v) { return ops::scale(v[0], -2.5); },
                        {random_param({11}, 7)}));
  EXPECT_TRUE(gradcheck("neg", [](const std::vector<Tensor>& v) { return ops::neg(v[0]); },
                        {random_param({4, 3}, 8)}));
  // The same tensor used twice: gradients from both uses must add up.
  EXPECT_TRUE(gradcheck("x*x + x", [](const std::vector<Tensor>& v) {
    return ops::add(ops::mul(v[0], v[0]), v[0]);
  }, {random_param({6}, 9)}));
}

TEST(OpsGrad, MulByMask) {
  Tensor mask = Tensor::from_vector<uint8_t>({1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0}, {3, 4});
  Tensor w = random_param({3, 4}, 1);
  EXPECT_TRUE(gradcheck("mul by mask", [&](const std::vector<Tensor>& v) {
    return ops::mul(v[0], mask);
  }, {w}));
  // The gradient is exactly 0 at pruned positions.
  w.zero_grad();
  ops::sum(ops::mul(w, mask)).backward();
  const auto g = w.grad().to_vector<double>();
  const auto m = mask.to_vector<uint8_t>();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i], m[i] ? 1.0 : 0.0) << i;
}

TEST(OpsGrad, Shape) {
  EXPECT_TRUE(gradcheck("reshape", [](const std::vector<Tensor>& v) {
    return ops::mul(ops::reshape(v[0], {3, -1}), ops::reshape(v[1], {3, 10}));
  }, {random_param({2, 3, 5}, 1), random_param({30}, 2)}));
  EXPECT_TRUE(gradcheck("flatten", [](const std::vector<Tensor>& v) {
    return ops::linear(ops::flatten(v[0]), v[1], Tensor());
  }, {random_param({2, 3, 2, 2}, 3), random_param({4, 12}, 4)}));
}

TEST(OpsGrad, Softmax) {
  EXPECT_TRUE(gradcheck("softmax", [](const std::vector<Tensor>& v) { return ops::softmax(v[0]); },
                        {random_param({4, 7}, 1, -3, 3)}));
  EXPECT_TRUE(gradcheck("log_softmax", [](const std::vector<Tensor>& v) {
    return ops::log_softmax(v[0]);
  }, {random_param({1, 5}, 2, -3, 3)}));
}

TEST(OpsGrad, CrossEntropy) {
  Tensor labels = Tensor::from_vector<int32_t>({0, 4, 2, 2, 1}, {5});
  for (auto red : {ops::Reduction::Mean, ops::Reduction::Sum, ops::Reduction::None}) {
    for (double smoothing : {0.0, 0.1}) {
      EXPECT_TRUE(gradcheck("cross_entropy", [&](const std::vector<Tensor>& v) {
        return ops::cross_entropy(v[0], labels, red, smoothing);
      }, {random_param({5, 5}, 1, -2, 2)})) << static_cast<int>(red) << " " << smoothing;
    }
  }
}

TEST(OpsGrad, Reductions) {
  EXPECT_TRUE(gradcheck("sum", [](const std::vector<Tensor>& v) { return ops::sum(v[0]); },
                        {random_param({3, 4, 5}, 1)}));
  EXPECT_TRUE(gradcheck("mean", [](const std::vector<Tensor>& v) { return ops::mean(v[0]); },
                        {random_param({7, 3}, 2)}));
  EXPECT_TRUE(gradcheck("l1_norm", [](const std::vector<Tensor>& v) {
    return ops::l1_norm({v[0], v[1]});
  }, {random_param({3, 4}, 3), random_param({5}, 4)}));
}

TEST(OpsGrad, SmallNetwork) {
  // conv -> BN -> relu -> residual add_relu -> pool -> linear -> CE: the chain ResNet uses.
  Tensor labels = Tensor::from_vector<int32_t>({1, 0}, {2});
  Tensor rm = Tensor::zeros({4}, DType::F64), rv = Tensor::full({4}, 1.0, DType::F64);
  EXPECT_TRUE(gradcheck("small network", [&](const std::vector<Tensor>& v) {
    Tensor h = ops::relu(ops::batch_norm2d(ops::conv2d(v[0], v[1], Tensor(), 1, 1), v[2], v[3],
                                           rm, rv, true));
    h = ops::add_relu(ops::conv2d(h, v[4], Tensor(), 1, 1), h);
    Tensor logits = ops::linear(ops::global_avg_pool(h), v[5], v[6]);
    return ops::cross_entropy(logits, labels);
  }, {random_param({2, 3, 5, 5}, 1), random_param({4, 3, 3, 3}, 2), random_param({4}, 3, 0.5, 1.5),
      random_param({4}, 4), random_param({4, 4, 3, 3}, 5), random_param({3, 4}, 6),
      random_param({3}, 7)}));
}

}  // namespace
}  // namespace lethe
