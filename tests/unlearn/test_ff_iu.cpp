// FF and IU against hand computations of SPEC section 6 on models whose gradients are known in
// closed form (logistic regression: dCE/dW = (p - e_y) x^T, dCE/db = p - e_y), the empirical
// FF noise variance against SPEC's formula, and alpha = 0 leaving the weights unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "unlearn/ff.h"
#include "unlearn/iu.h"
#include "unlearn_test_util.h"

namespace lethe::unlearn {
namespace {

using testing::LogReg;
using testing::Mlp;
using testing::ToyData;

/// Hand-computed per-sample CE gradient of logistic regression (weight then bias).
std::vector<double> logreg_grad(const std::vector<double>& theta, int64_t C,
                                const std::vector<double>& x, int64_t y) {
  const int64_t D = static_cast<int64_t>(x.size());
  std::vector<double> z(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    double s = theta[static_cast<size_t>(C * D + c)];
    for (int64_t j = 0; j < D; ++j) s += theta[static_cast<size_t>(c * D + j)] * x[static_cast<size_t>(j)];
    z[static_cast<size_t>(c)] = s;
  }
  const double m = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double& v : z) sum += (v = std::exp(v - m));
  std::vector<double> g(static_cast<size_t>(C * D + C));
  for (int64_t c = 0; c < C; ++c) {
    const double d = z[static_cast<size_t>(c)] / sum - (c == y ? 1.0 : 0.0);
    for (int64_t j = 0; j < D; ++j) g[static_cast<size_t>(c * D + j)] = d * x[static_cast<size_t>(j)];
    g[static_cast<size_t>(C * D + c)] = d;
  }
  return g;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

TEST(InfluenceUnlearning, EqualsAHandComputationOfTheWoodFisherRecursion) {
  const int64_t C = 3;
  const ToyData d(1100, 10, C);
  const ForgetSet fs = make_forget_set("random:40", d.train, d.split, 3);
  LogReg model(C, 9);
  const std::vector<double> theta0 = testing::flat_params(model);

  // v = sum_f g / n - sum_r g * n_f / (n n_r)
  const double nf = static_cast<double>(fs.forget.size()), nr = static_cast<double>(fs.retain.size());
  const double n = nf + nr;
  std::vector<double> v(theta0.size(), 0.0);
  for (int64_t i : fs.forget) {
    const auto g = logreg_grad(theta0, C, testing::pixels(d.train, i), d.train.labels[static_cast<size_t>(i)]);
    for (size_t j = 0; j < v.size(); ++j) v[j] += g[j] / n;
  }
  for (int64_t i : fs.retain) {
    const auto g = logreg_grad(theta0, C, testing::pixels(d.train, i), d.train.labels[static_cast<size_t>(i)]);
    for (size_t j = 0; j < v.size(); ++j) v[j] -= g[j] * nf / (n * nr);
  }
  // The recursion, N = 1000, i = 0..1001 over the retain samples in order.
  const double N = 1000;
  std::vector<double> k = v, o;
  for (int64_t i = 0; i <= 1001; ++i) {
    const int64_t idx = fs.retain[static_cast<size_t>(i)];
    const auto g = logreg_grad(theta0, C, testing::pixels(d.train, idx), d.train.labels[static_cast<size_t>(idx)]);
    if (i == 0) {
      o = g;
      continue;
    }
    const double t = dot(o, g), kg = dot(k, g);
    for (size_t j = 0; j < k.size(); ++j) k[j] -= kg / (N + t) * o[j];
    for (size_t j = 0; j < o.size(); ++j) o[j] -= t / (N + t) * o[j];
  }
  // The recursion is a real correction here, not the identity.
  std::vector<double> kv(k.size());
  for (size_t j = 0; j < k.size(); ++j) kv[j] = k[j] - v[j];
  ASSERT_GT(max_abs(kv), 0.1 * max_abs(v));

  // The library's pieces, then the whole method with alpha 2.
  const std::vector<double> v_lib = iu_direction(model, d.train, fs, 256);
  const double vtol = 1e-4 * max_abs(v);
  for (size_t j = 0; j < v.size(); ++j) ASSERT_NEAR(v_lib[j], v[j], vtol) << "v[" << j << "]";
  IuOptions o_iu;
  o_iu.alpha = 2.0;
  const MethodResult r = influence_unlearning(model, d.train, fs, {}, o_iu);
  EXPECT_EQ(r.method, "iu");
  EXPECT_GT(r.seconds, 0.0);
  const std::vector<double> theta1 = testing::flat_params(model);
  // float32 parameters and forward passes against double: ~1e-6 relative; skipping or
  // mis-ordering the recursion would be off by about max|k - v| > 0.1 max|v|.
  const double tol = 1e-4 * 2.0 * max_abs(k);
  for (size_t j = 0; j < k.size(); ++j)
    ASSERT_NEAR(theta1[j] - theta0[j], 2.0 * k[j], tol) << "parameter " << j;
}

TEST(InfluenceUnlearning, AlphaZeroLeavesTheWeightsUnchanged) {
  const ToyData d(120, 10, 3);
  const ForgetSet fs = make_forget_set("random:10", d.train, d.split, 3);
  LogReg model(3, 4);
  const std::vector<double> before = testing::flat_params(model);
  IuOptions o;
  o.alpha = 0.0;
  o.woodfisher_n = 50;
  influence_unlearning(model, d.train, fs, {}, o);
  EXPECT_EQ(testing::flat_params(model), before);
}

TEST(FisherForgetting, FisherEqualsTheBatchGradientHandComputation) {
  const int64_t C = 3;
  const ToyData d(100, 10, C);
  const ForgetSet fs = make_forget_set("random:20", d.train, d.split, 1);  // 80 retain: 32+32+16
  LogReg model(C, 5);
  const std::vector<double> theta = testing::flat_params(model);
  const int64_t D = 3072, P = C * D + C;
  std::vector<double> F(static_cast<size_t>(P), 0.0);
  int64_t batches = 0;
  for (size_t s = 0; s < fs.retain.size(); s += 32, ++batches) {
    const size_t e = std::min(fs.retain.size(), s + 32);
    const double B = static_cast<double>(e - s);
    for (int64_t y = 0; y < C; ++y) {
      // Gradient of the batch-mean CE against label y, and the batch mean of p_y.
      std::vector<double> g(static_cast<size_t>(P), 0.0);
      double pmean = 0;
      for (size_t b = s; b < e; ++b) {
        const auto x = testing::pixels(d.train, fs.retain[b]);
        const auto gy = logreg_grad(theta, C, x, y);
        // p_y = gy_bias[y] + 1 (the bias gradient is p - e_y).
        pmean += (gy[static_cast<size_t>(C * D + y)] + 1.0) / B;
        for (size_t j = 0; j < g.size(); ++j) g[j] += gy[j] / B;
      }
      for (size_t j = 0; j < g.size(); ++j) F[j] += pmean * g[j] * g[j];
    }
  }
  for (double& f : F) f /= static_cast<double>(batches);
  const auto lib = ff_fisher(model, d.train, fs.retain, C, 32);
  ASSERT_EQ(lib.size(), 2u);
  std::vector<double> flat = lib[0];
  flat.insert(flat.end(), lib[1].begin(), lib[1].end());
  ASSERT_EQ(flat.size(), F.size());
  for (size_t j = 0; j < F.size(); ++j) ASSERT_NEAR(flat[j], F[j], 1e-4 * F[j] + 1e-12) << j;
}

/// SPEC's FF variance, written out independently of the library.
std::vector<double> spec_var(const Tensor& p, const std::vector<double>& F, int64_t C,
                             double alpha, int64_t cls) {
  const bool classifier = p.size(0) == C;
  std::vector<double> var(F.size());
  for (size_t j = 0; j < F.size(); ++j)
    var[j] = alpha * std::min(1.0 / (F[j] + 1e-8), classifier ? 1e2 : 1e3);
  if (p.dim() == 2) {
    const int64_t rows = p.size(0), cols = p.size(1);
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += var[static_cast<size_t>(r * cols + c)];
      for (int64_t c = 0; c < cols; ++c) var[static_cast<size_t>(r * cols + c)] = s / static_cast<double>(cols);
    }
  }
  if (classifier && cls >= 0) {
    const int64_t row = p.numel() / C;
    for (int64_t j = cls * row; j < (cls + 1) * row; ++j) var[static_cast<size_t>(j)] = 1e-4;
  }
  if (classifier || p.dim() == 1)
    for (double& v : var) v *= 10;
  return var;
}

TEST(FisherForgetting, NoiseVariancePerTensorMatchesTheSpecFormula) {
  const int64_t C = 10;
  const ToyData d(300, 10, C);
  for (const char* scenario : {"random:30", "class:3"}) {
    SCOPED_TRACE(scenario);
    const ForgetSet fs = make_forget_set(scenario, d.train, d.split, 2);
    Mlp model(32, C, 8);
    const nn::NamedTensors params = model.named_parameters();
    std::vector<std::vector<float>> before;
    for (const auto& [name, p] : params) before.push_back(p.to_vector<float>());
    const auto F = ff_fisher(model, d.train, fs.retain, C, 32);
    FfOptions o;
    o.alpha = 1e-6;
    o.seed = 11;
    fisher_forgetting(model, d.train, fs, {}, o);
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& [name, p] = params[i];
      SCOPED_TRACE(name);
      const std::vector<double> var = spec_var(p, F[i], C, o.alpha, fs.forgotten_class);
      // The library's distribution is exactly the formula (mean: theta0 or 0 for the row).
      const FfDistribution dist = ff_distribution(
          Tensor::from_vector(before[i], p.shape()), F[i], C, o.alpha, fs.forgotten_class);
      for (size_t j = 0; j < var.size(); ++j) ASSERT_NEAR(dist.var[j], var[j], 1e-12 * var[j]);
      // The drawn noise, standardised by the formula's sqrt(var), has mean 0 and variance 1.
      const std::vector<float> after = p.to_vector<float>();
      double s = 0, s2 = 0;
      for (size_t j = 0; j < after.size(); ++j) {
        const double z = (after[j] - dist.mean[j]) / std::sqrt(var[j]);
        s += z;
        s2 += z * z;
      }
      const double n = static_cast<double>(after.size());
      const double mean = s / n, variance = s2 / n - mean * mean;
      EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(n));
      EXPECT_NEAR(variance, 1.0, 5.0 * std::sqrt(2.0 / n));
      if (fs.class_wise() && p.size(0) == C) {
        // The forgotten class's classifier row / bias: mean 0, variance 1e-4 * 10.
        const int64_t row = p.numel() / C;
        for (int64_t j = 3 * row; j < 4 * row; ++j) {
          EXPECT_EQ(dist.mean[static_cast<size_t>(j)], 0.0f);
          EXPECT_DOUBLE_EQ(dist.var[static_cast<size_t>(j)], 1e-3);
        }
      }
    }
  }
}

TEST(FisherForgetting, AlphaZeroLeavesTheWeightsUnchanged) {
  const ToyData d(100, 10, 10);
  const ForgetSet fs = make_forget_set("random:10", d.train, d.split, 2);
  Mlp model(16, 10, 3);
  const std::vector<double> before = testing::flat_params(model);
  FfOptions o;
  o.alpha = 0.0;
  fisher_forgetting(model, d.train, fs, {}, o);
  EXPECT_EQ(testing::flat_params(model), before);
}

}  // namespace
}  // namespace lethe::unlearn
