// SGD at the framework level: PyTorch's update order on hand-computed values, masks that
// keep pruned weights at exactly zero, hooks and skipped parameters.
#include <gtest/gtest.h>

#include "framework/ops.h"
#include "framework/optim.h"

namespace lethe {
namespace {

Tensor param(std::vector<double> v) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  t.set_requires_grad(true);
  return t;
}

TEST(SGD, TwoStepsMatchHandComputation) {
  // L = sum(c * w) so the gradient is c at every step.
  Tensor w = param({1.0, -2.0});
  const Tensor c = Tensor::from_vector<double>({0.5, 0.25}, {2});
  SGD opt({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = false});
  for (int s = 0; s < 2; ++s) {
    opt.zero_grad();
    ops::sum(ops::mul(w, c)).backward();
    opt.step();
  }
  // step 1: g = 0.5 + 0.01*1 = 0.51; buf = 0.51; w = 1 - 0.051 = 0.949
  // step 2: g = 0.5 + 0.00949 = 0.50949; buf = 0.9*0.51 + 0.50949 = 0.96849;
  //         w = 0.949 - 0.096849 = 0.852151
  // element 2: g1 = 0.25 - 0.02 = 0.23, w = -2.023; g2 = 0.25 - 0.02023 = 0.22977,
  //         buf = 0.207 + 0.22977 = 0.43677, w = -2.023 - 0.043677 = -2.066677
  const auto v = w.to_vector<double>();
  EXPECT_NEAR(v[0], 0.852151, 1e-12);
  EXPECT_NEAR(v[1], -2.066677, 1e-12);
  EXPECT_EQ(opt.steps_taken(), 2);
}

TEST(SGD, NesterovStep) {
  Tensor w = param({1.0});
  SGD opt({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.0, .nesterov = true});
  for (int s = 0; s < 2; ++s) {
    opt.zero_grad();
    ops::sum(ops::scale(w, 2.0)).backward();  // g = 2
    opt.step();
  }
  // step 1: buf = 2, w = 1 - 0.1*(2 + 1.8) = 0.62; step 2: buf = 3.8, w = 0.62 - 0.1*(2 + 3.42)
  EXPECT_NEAR(w.item(), 0.62 - 0.542, 1e-12);
}

TEST(SGD, MaskedWeightsStayExactlyZero) {
  Tensor w = param({0.5, -0.7, 0.9, 1.1});
  Tensor mask = Tensor::from_vector<uint8_t>({1, 0, 1, 0}, {4});
  {
    // The pruning step itself: zero the weights, then hand the mask to the optimizer.
    double* d = w.data<double>();
    d[1] = d[3] = 0;
  }
  SGD opt({w}, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.1});
  opt.set_mask(w, mask);
  const Tensor c = Tensor::from_vector<double>({1, 2, 3, 4}, {4});
  for (int s = 0; s < 50; ++s) {
    opt.zero_grad();
    // No mask in the forward here, on purpose: the gradient at pruned positions is non-zero,
    // and momentum accumulates it; the optimizer alone must keep them at 0.
    ops::sum(ops::mul(w, c)).backward();
    opt.step();
    const auto v = w.to_vector<double>();
    ASSERT_EQ(v[1], 0.0) << "step " << s;
    ASSERT_EQ(v[3], 0.0) << "step " << s;
    ASSERT_NE(v[0], 0.0);
  }
}

TEST(SGD, SkipsParametersWithoutGradientAndRunsHooks) {
  Tensor a = param({1.0}), b = param({2.0});
  int calls = 0;
  SGD opt({a, b}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5});
  opt.add_post_step_hook([&] { ++calls; });
  ops::sum(a).backward();
  opt.step();
  EXPECT_EQ(b.item(), 2.0);  // no gradient: no weight decay either (as PyTorch)
  EXPECT_NEAR(a.item(), 1.0 - 0.1 * 1.5, 1e-15);
  EXPECT_EQ(calls, 1);
  EXPECT_THROW(opt.set_mask(Tensor::zeros({1}), Tensor::zeros({1}, DType::U8)), Error);
}

}  // namespace
}  // namespace lethe
