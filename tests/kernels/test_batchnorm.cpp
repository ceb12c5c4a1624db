// batch_norm2d CPU kernels (kernels/cpu/batchnorm*.cpp): a hand-computed channel (mean,
// biased / unbiased variance, y, running statistics, backward in training and eval), fast vs
// oracle over awkward shapes with and without affine parameters, finite-difference gradient
// checks in double, and determinism of repeated calls.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/batchnorm.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

template <typename T>
class BatchNormTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(BatchNormTest, Types);

template <typename T>
Tolerance tol() {
  return sizeof(T) == 4 ? Tolerance{2e-5, 1e-4} : Tolerance{1e-12, 1e-10};
}

// One channel, M = N*HW = 4 values x = {1, 2 | 3, 6} (N = 2, HW = 2), gamma 2, beta 0.5,
// eps 1e-5, momentum 0.1, running stats starting at (0, 1):
//   mean = 3, var_b = (4+1+0+9)/4 = 3.5, var_u = 14/3, invstd = 1/sqrt(3.50001)
//   y = 2*(x-3)*invstd + 0.5
//   running_mean = 0.9*0 + 0.1*3 = 0.3, running_var = 0.9*1 + 0.1*14/3 = 1.3666...
TYPED_TEST(BatchNormTest, HandComputedForward) {
  using T = TypeParam;
  const BatchNormShape s{2, 1, 2};
  const std::vector<T> x = {1, 2, 3, 6}, gamma = {2}, beta = {0.5};
  for (bool ref : {false, true}) {
    std::vector<T> rm = {0}, rv = {1}, y(4), mean(1), invstd(1);
    (ref ? batchnorm_forward_train_ref<T> : batchnorm_forward_train_cpu<T>)(
        s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), T(0.1), T(1e-5),
        y.data(), mean.data(), invstd.data());
    const std::string who = ref ? " (ref)" : " (cpu)";
    EXPECT_TRUE(all_close(std::vector<T>{3}, mean, tol<T>(), "mean" + who));
    EXPECT_TRUE(all_close(std::vector<T>{0.5345217202229368}, invstd, tol<T>(), "invstd" + who));
    EXPECT_TRUE(all_close(std::vector<T>{-1.638086880891747, -0.5690434404458735, 0.5,
                                         3.7071303213376208},
                          y, tol<T>(), "y" + who));
    EXPECT_TRUE(all_close(std::vector<T>{0.3}, rm, tol<T>(), "running_mean" + who));
    EXPECT_TRUE(all_close(std::vector<T>{1.3666666666666667}, rv, tol<T>(), "running_var" + who));
  }
}

// Backward of the channel above with gy = {1, -1, 0.5, 2}, xhat = (x-3)*invstd:
//   gbeta = 2.5, ggamma = sum gy*xhat = 5*invstd = 2.672608601114684
//   training: gx = gamma*invstd/4 * (4*gy - 2.5 - xhat*ggamma)
//   eval (mean 3, invstd as above given as running stats): gx = gy*gamma*invstd
TYPED_TEST(BatchNormTest, HandComputedBackward) {
  using T = TypeParam;
  const BatchNormShape s{2, 1, 2};
  const std::vector<T> x = {1, 2, 3, 6}, gy = {1, -1, 0.5, 2}, gamma = {2};
  const std::vector<T> mean = {3}, invstd = {static_cast<T>(1.0 / std::sqrt(3.5 + 1e-5))};
  for (bool ref : {false, true}) {
    const auto bwd = ref ? batchnorm_backward_ref<T> : batchnorm_backward_cpu<T>;
    const std::string who = ref ? " (ref)" : " (cpu)";
    std::vector<T> gx(4), gg(1), gb(1);
    bwd(s, true, x.data(), gy.data(), gamma.data(), mean.data(), invstd.data(), gx.data(),
        gg.data(), gb.data());
    EXPECT_TRUE(all_close(std::vector<T>{2.5}, gb, tol<T>(), "gbeta" + who));
    EXPECT_TRUE(all_close(std::vector<T>{2.672608601114684}, gg, tol<T>(), "ggamma" + who));
    EXPECT_TRUE(all_close(std::vector<T>{1.1644915659134674, -1.355395452851412,
                                         -0.1336304300557342, 0.32453431699367874},
                          gx, tol<T>(), "gx train" + who));
    bwd(s, false, x.data(), gy.data(), gamma.data(), mean.data(), invstd.data(), gx.data(),
        gg.data(), gb.data());
    EXPECT_TRUE(all_close(std::vector<T>{2.5}, gb, tol<T>(), "gbeta eval" + who));
    EXPECT_TRUE(all_close(std::vector<T>{2.672608601114684}, gg, tol<T>(), "ggamma eval" + who));
    EXPECT_TRUE(all_close(std::vector<T>{1.0690434404458735, -1.0690434404458735,
                                         0.5345217202229368, 2.138086880891747},
                          gx, tol<T>(), "gx eval" + who));
  }
}

// M == 1 (N = 1, HW = 1): var_b = 0 and the unbiased correction is skipped, so running_var
// moves towards 0 rather than dividing by zero.
TYPED_TEST(BatchNormTest, SingleValuePerChannel) {
  using T = TypeParam;
  const BatchNormShape s{1, 2, 1};
  const std::vector<T> x = {4, -1};
  std::vector<T> rm = {0, 0}, rv = {1, 1}, y(2), mean(2), invstd(2);
  batchnorm_forward_train_cpu<T>(s, x.data(), nullptr, nullptr, rm.data(), rv.data(), T(0.1),
                                 T(1e-5), y.data(), mean.data(), invstd.data());
  EXPECT_EQ(y, (std::vector<T>{0, 0}));
  EXPECT_TRUE(all_close(std::vector<T>{0.4, -0.1}, rm, tol<T>(), "running_mean M=1"));
  EXPECT_TRUE(all_close(std::vector<T>{0.9, 0.9}, rv, tol<T>(), "running_var M=1"));
}

struct Case {
  int64_t N, C, H, W;
};
// Odd H x W (7x5), batch 1, C not a multiple of 8, HW = 1, and a CIFAR-like 8x8 plane.
const Case kCases[] = {{1, 3, 7, 5}, {4, 13, 1, 1}, {2, 5, 8, 8}, {8, 17, 7, 7}, {3, 1, 5, 3},
                       {1, 1, 1, 2}};

// Built with a stream: GCC 12 at -O3 gives a false -Wrestrict on "literal" + std::string.
std::string name(const Case& c, bool affine) {
  std::ostringstream os;
  os << " N" << c.N << "_C" << c.C << "_H" << c.H << "_W" << c.W << (affine ? "" : "_noaffine");
  return os.str();
}

TYPED_TEST(BatchNormTest, FastMatchesRef) {
  using T = TypeParam;
  for (const Case& c : kCases)
    for (bool affine : {true, false}) {
      const BatchNormShape s{c.N, c.C, c.H * c.W};
      const int64_t n = c.N * c.C * c.H * c.W;
      const std::string tag = name(c, affine);
      // An offset mean (inputs in [2, 6)) exercises the centred variance.
      const auto x = random_vector<T>(n, 41, 2.0, 6.0), gy = random_vector<T>(n, 42);
      const auto gamma = random_vector<T>(c.C, 43, 0.5, 1.5), beta = random_vector<T>(c.C, 44);
      const T* g = affine ? gamma.data() : nullptr;
      const T* b = affine ? beta.data() : nullptr;
      auto rm = random_vector<T>(c.C, 45), rv = random_vector<T>(c.C, 46, 0.5, 2.0);
      auto rm_ref = rm, rv_ref = rv;
      std::vector<T> y(n), y_ref(n), mean(c.C), mean_ref(c.C), is(c.C), is_ref(c.C);
      batchnorm_forward_train_cpu(s, x.data(), g, b, rm.data(), rv.data(), T(0.1), T(1e-5),
                                  y.data(), mean.data(), is.data());
      batchnorm_forward_train_ref(s, x.data(), g, b, rm_ref.data(), rv_ref.data(), T(0.1),
                                  T(1e-5), y_ref.data(), mean_ref.data(), is_ref.data());
      EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "train y" + tag));
      EXPECT_TRUE(all_close(mean_ref, mean, tol<T>(), "save_mean" + tag));
      EXPECT_TRUE(all_close(is_ref, is, tol<T>(), "save_invstd" + tag));
      EXPECT_TRUE(all_close(rm_ref, rm, tol<T>(), "running_mean" + tag));
      EXPECT_TRUE(all_close(rv_ref, rv, tol<T>(), "running_var" + tag));

      batchnorm_forward_eval_cpu(s, x.data(), g, b, rm.data(), rv.data(), T(1e-5), y.data());
      batchnorm_forward_eval_ref(s, x.data(), g, b, rm.data(), rv.data(), T(1e-5), y_ref.data());
      EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "eval y" + tag));

      // Backward in both modes, from the same saved statistics (training) or the running
      // ones (eval). ggamma / gbeta start as a sentinel: without affine they stay untouched.
      std::vector<T> run_is(c.C);
      for (int64_t k = 0; k < c.C; ++k) run_is[k] = T(1) / std::sqrt(rv[k] + T(1e-5));
      for (bool training : {true, false}) {
        const T* mu = training ? mean_ref.data() : rm.data();
        const T* inv = training ? is_ref.data() : run_is.data();
        std::vector<T> gx(n), gx_ref(n), gg(c.C, T(7)), gg_ref(c.C, T(7)), gb(c.C, T(7)),
            gb_ref(c.C, T(7));
        batchnorm_backward_cpu(s, training, x.data(), gy.data(), g, mu, inv, gx.data(),
                               gg.data(), gb.data());
        batchnorm_backward_ref(s, training, x.data(), gy.data(), g, mu, inv, gx_ref.data(),
                               gg_ref.data(), gb_ref.data());
        const std::string mode = training ? " train" : " eval";
        EXPECT_TRUE(all_close(gx_ref, gx, tol<T>(), "gx" + mode + tag));
        EXPECT_TRUE(all_close(gg_ref, gg, tol<T>(), "ggamma" + mode + tag));
        EXPECT_TRUE(all_close(gb_ref, gb, tol<T>(), "gbeta" + mode + tag));
        if (!affine) {
          EXPECT_EQ(gg, std::vector<T>(c.C, T(7))) << "ggamma written without affine" << tag;
        }
      }
    }
}

// Finite differences in double on L = sum(w .* y): d L / d x, d gamma, d beta, for the
// training forward (statistics depend on x) and the eval forward (they do not).
TEST(BatchNormGradCheck, TrainingAndEvalMatchFiniteDifferences) {
  const BatchNormShape s{2, 3, 5};
  const int64_t n = s.N * s.C * s.HW;
  const auto x0 = random_vector<double>(n, 51, -2.0, 2.0), w = random_vector<double>(n, 52);
  const auto gamma0 = random_vector<double>(s.C, 53, 0.5, 1.5);
  const auto beta0 = random_vector<double>(s.C, 54);
  const std::vector<double> rm = {0.1, -0.2, 0.3}, rv = {0.8, 1.2, 2.0};
  for (bool training : {true, false}) {
    auto loss = [&](const std::vector<double>& x, const std::vector<double>& gamma,
                    const std::vector<double>& beta) {
      std::vector<double> y(n), mean(s.C), is(s.C), rm_t(rm), rv_t(rv);
      if (training)
        batchnorm_forward_train_cpu(s, x.data(), gamma.data(), beta.data(), rm_t.data(),
                                    rv_t.data(), 0.1, 1e-5, y.data(), mean.data(), is.data());
      else
        batchnorm_forward_eval_cpu(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(),
                                   1e-5, y.data());
      double l = 0;
      for (int64_t i = 0; i < n; ++i) l += w[i] * y[i];
      return l;
    };
    std::vector<double> y(n), mean(s.C), is(s.C), rm_t(rm), rv_t(rv);
    batchnorm_forward_train_cpu(s, x0.data(), gamma0.data(), beta0.data(), rm_t.data(),
                                rv_t.data(), 0.1, 1e-5, y.data(), mean.data(), is.data());
    if (!training)
      for (int64_t c = 0; c < s.C; ++c) {
        mean[c] = rm[c];
        is[c] = 1.0 / std::sqrt(rv[c] + 1e-5);
      }
    std::vector<double> gx(n), gg(s.C), gb(s.C);
    batchnorm_backward_cpu(s, training, x0.data(), w.data(), gamma0.data(), mean.data(),
                           is.data(), gx.data(), gg.data(), gb.data());
    const double h = 1e-6;
    std::vector<double> fx(n), fg(s.C), fb(s.C);
    for (int64_t i = 0; i < n; ++i) {
      auto xp = x0, xm = x0;
      xp[i] += h;
      xm[i] -= h;
      fx[i] = (loss(xp, gamma0, beta0) - loss(xm, gamma0, beta0)) / (2 * h);
    }
    for (int64_t c = 0; c < s.C; ++c) {
      auto gp = gamma0, gm = gamma0, bp = beta0, bm = beta0;
      gp[c] += h;
      gm[c] -= h;
      bp[c] += h;
      bm[c] -= h;
      fg[c] = (loss(x0, gp, beta0) - loss(x0, gm, beta0)) / (2 * h);
      fb[c] = (loss(x0, gamma0, bp) - loss(x0, gamma0, bm)) / (2 * h);
    }
    const std::string mode = training ? " train" : " eval";
    EXPECT_TRUE(all_close(fx, gx, Tolerance{1e-7, 1e-6}, "fd gx" + mode));
    EXPECT_TRUE(all_close(fg, gg, Tolerance{1e-7, 1e-6}, "fd ggamma" + mode));
    EXPECT_TRUE(all_close(fb, gb, Tolerance{1e-7, 1e-6}, "fd gbeta" + mode));
  }
}

TYPED_TEST(BatchNormTest, RepeatedCallsAreBitIdentical) {
  using T = TypeParam;
  const BatchNormShape s{16, 24, 64};
  const int64_t n = s.N * s.C * s.HW;
  const auto x = random_vector<T>(n, 61, -3.0, 5.0), gy = random_vector<T>(n, 62);
  const auto gamma = random_vector<T>(s.C, 63), beta = random_vector<T>(s.C, 64);
  auto run = [&](std::vector<T>& y, std::vector<T>& stats, std::vector<T>& gx,
                 std::vector<T>& gparams) {
    std::vector<T> rm(s.C, T(0)), rv(s.C, T(1)), mean(s.C), is(s.C);
    batchnorm_forward_train_cpu(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(),
                                T(0.1), T(1e-5), y.data(), mean.data(), is.data());
    stats = mean;
    stats.insert(stats.end(), is.begin(), is.end());
    stats.insert(stats.end(), rm.begin(), rm.end());
    stats.insert(stats.end(), rv.begin(), rv.end());
    std::vector<T> gg(s.C), gb(s.C);
    batchnorm_backward_cpu(s, true, x.data(), gy.data(), gamma.data(), mean.data(), is.data(),
                           gx.data(), gg.data(), gb.data());
    gparams = gg;
    gparams.insert(gparams.end(), gb.begin(), gb.end());
  };
  std::vector<T> y1(n), y2(n), s1, s2, gx1(n), gx2(n), p1, p2;
  run(y1, s1, gx1, p1);
  run(y2, s2, gx2, p2);
  auto same = [](const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
  };
  EXPECT_TRUE(same(y1, y2));
  EXPECT_TRUE(same(s1, s2));
  EXPECT_TRUE(same(gx1, gx2));
  EXPECT_TRUE(same(p1, p2));
}

}  // namespace
}  // namespace lethe::kernels
