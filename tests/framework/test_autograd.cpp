#include <gtest/gtest.h>

#include "framework/autograd.h"
#include "framework/ops.h"

namespace lethe {
namespace {

Tensor param(std::vector<float> v) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, HandComputedChain) {
  // L = sum((a*b + a) * 2): dL/da = 2(b + 1), dL/db = 2a
  Tensor a = param({1, -2, 3}), b = param({4, 5, -6});
  ops::sum(ops::scale(ops::add(ops::mul(a, b), a), 2.0)).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{10, 12, -10}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{2, -4, 6}));
}

TEST(Autograd, GradientsAccumulateUntilZeroGrad) {
  Tensor a = param({1, 2});
  ops::sum(ops::scale(a, 3.0)).backward();
  ops::sum(ops::scale(a, 3.0)).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{6, 6}));
  a.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  ops::sum(a).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor a = param({1, 2});
  Tensor y;
  {
    autograd::NoGradGuard guard;
    EXPECT_FALSE(autograd::grad_enabled());
    y = ops::sum(ops::mul(a, a));
  }
  EXPECT_TRUE(autograd::grad_enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, DiamondSumsBothPaths) {
  // y = relu(x) used by two branches that join: dL/dx counts both.
  Tensor x = param({-1, 2});
  Tensor r = ops::relu(x);
  ops::sum(ops::add(ops::scale(r, 2.0), ops::scale(r, 3.0))).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 5}));
}

TEST(Autograd, InputsWithoutGradGetNone) {
  Tensor a = param({1, 2});
  Tensor c = Tensor::from_vector<float>({3, 4}, {2});  // a constant
  ops::sum(ops::mul(a, c)).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3, 4}));
  EXPECT_FALSE(c.grad().defined());
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor a = param({2});
  Tensor d = ops::mul(a, a).detach();
  EXPECT_FALSE(d.requires_grad());
  ops::sum(ops::mul(ops::mul(a, a), d)).backward();  // d acts as the constant 4
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{16}));  // 2a * 4
}

TEST(Autograd, ExplicitUpstreamGradient) {
  Tensor a = param({1, 2, 3});
  Tensor y = ops::scale(a, 2.0);
  y.backward(Tensor::from_vector<float>({1, 0, -1}, {3}));
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{2, 0, -2}));
  Tensor z = ops::scale(a, 2.0);
  EXPECT_THROW(z.backward(), Error);  // non-scalar without a gradient
}

TEST(Autograd, DeepChainDoesNotOverflow) {
  Tensor a = param({1});
  Tensor h = a;
  for (int i = 0; i < 20000; ++i) h = ops::scale(h, 1.0);
  ops::sum(h).backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{1}));
}

}  // namespace
}  // namespace lethe
