// Softmax family CPU kernels (kernels/cpu/softmax.cpp): hand-computed softmax / log_softmax
// and cross-entropy with label smoothing 0.1 on 3 classes (forward and backward), stability on
// huge logits, fast vs oracle over awkward M x C, and finite-difference gradient checks in
// double for every backward (softmax, log_softmax, cross-entropy with and without smoothing).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/softmax.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

template <typename T>
class SoftmaxTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SoftmaxTest, Types);

template <typename T>
Tolerance tol() {
  return sizeof(T) == 4 ? Tolerance{2e-6, 1e-5} : Tolerance{1e-14, 1e-12};
}

// Row {0, ln 2, ln 3}: exp gives {1, 2, 3}, so softmax = {1/6, 1/3, 1/2}.
TYPED_TEST(SoftmaxTest, HandComputedSoftmax) {
  using T = TypeParam;
  const std::vector<T> x = {0, static_cast<T>(std::log(2.0)), static_cast<T>(std::log(3.0))};
  std::vector<T> y(3), lp(3);
  softmax_forward_cpu<T>(1, 3, x.data(), y.data());
  log_softmax_forward_cpu<T>(1, 3, x.data(), lp.data());
  EXPECT_TRUE(all_close(std::vector<T>{1.0 / 6, 1.0 / 3, 0.5}, y, tol<T>(), "softmax"));
  EXPECT_TRUE(all_close(std::vector<T>{-1.791759469228055, -1.0986122886681098,
                                       -0.6931471805599453},
                        lp, tol<T>(), "log_softmax"));
}

// Logits of 1000 would overflow exp without the max subtraction.
TYPED_TEST(SoftmaxTest, HugeLogitsAreStable) {
  using T = TypeParam;
  const std::vector<T> x = {1000, 1000, -1000};
  std::vector<T> y(3), lp(3), loss(1), logp(3);
  softmax_forward_cpu<T>(1, 3, x.data(), y.data());
  log_softmax_forward_cpu<T>(1, 3, x.data(), lp.data());
  const int32_t label = 2;
  cross_entropy_forward_cpu<T>(1, 3, x.data(), &label, T(0), loss.data(), logp.data());
  EXPECT_TRUE(all_close(std::vector<T>{0.5, 0.5, 0}, y, tol<T>(), "softmax huge"));
  EXPECT_TRUE(all_close(std::vector<T>{-0.6931471805599453, -0.6931471805599453,
                                       -2000.6931471805599},
                        lp, tol<T>(), "log_softmax huge"));
  EXPECT_TRUE(all_close(std::vector<T>{2000.6931471805599}, loss, tol<T>(), "ce huge"));
}

// Logits {1, 2, 3}, 3 classes, smoothing 0.1 (targets 0.9 + 0.1/3 on the label, 0.1/3 else):
//   lse = 3 + log(1 + e^-1 + e^-2) = 3.4076059644443806, logp = logits - lse
//   label 0: loss = -0.9*logp[0] - 0.1/3*(logp[0]+logp[1]+logp[2]) = 2.3076059644443805
//   label 2: loss = -0.9*logp[2] - 0.1/3*sum = 0.5076059644443807
//   backward: g = gloss * (softmax - 0.9*[j == label] - 0.1/3), softmax = exp(logp);
//   gloss 1 for the first row, 0.5 for the second.
TYPED_TEST(SoftmaxTest, HandComputedCrossEntropyWithSmoothing) {
  using T = TypeParam;
  const std::vector<T> logits = {1, 2, 3, 1, 2, 3};
  const std::vector<int32_t> labels = {0, 2};
  const std::vector<T> gloss = {1, 0.5};
  for (bool ref : {false, true}) {
    std::vector<T> loss(2), logp(6), g(6);
    (ref ? cross_entropy_forward_ref<T> : cross_entropy_forward_cpu<T>)(
        2, 3, logits.data(), labels.data(), T(0.1), loss.data(), logp.data());
    const std::string who = ref ? " (ref)" : " (cpu)";
    EXPECT_TRUE(all_close(std::vector<T>{2.3076059644443805, 0.5076059644443807}, loss, tol<T>(),
                          "ce loss" + who));
    EXPECT_TRUE(all_close(std::vector<T>{-2.4076059644443806, -1.4076059644443806,
                                         -0.4076059644443806, -2.4076059644443806,
                                         -1.4076059644443806, -0.4076059644443806},
                          logp, tol<T>(), "ce logp" + who));
    cross_entropy_backward_cpu<T>(2, 3, logp.data(), labels.data(), T(0.1), gloss.data(),
                                  g.data());
    EXPECT_TRUE(all_close(std::vector<T>{-0.8433027601629529, 0.21139513772146426,
                                         0.6319076224414883, 0.02834861991852355,
                                         0.10569756886073213, -0.13404618877925584},
                          g, tol<T>(), "ce grad" + who));
  }
}

// One class: log_softmax is 0 and every loss is 0, whatever the smoothing.
TYPED_TEST(SoftmaxTest, SingleClass) {
  using T = TypeParam;
  const std::vector<T> logits = {3.5, -2};
  const std::vector<int32_t> labels = {0, 0};
  std::vector<T> loss(2), logp(2);
  cross_entropy_forward_cpu<T>(2, 1, logits.data(), labels.data(), T(0.1), loss.data(),
                               logp.data());
  EXPECT_EQ(logp, (std::vector<T>{0, 0}));
  EXPECT_EQ(loss, (std::vector<T>{0, 0}));
}

// M x C: one sample, a binary problem, odd sizes, a CIFAR-10 and a CIFAR-100 batch, and one
// above the OpenMP threshold.
const std::pair<int64_t, int64_t> kShapes[] = {{1, 1},   {1, 10}, {7, 3},    {5, 2},
                                               {256, 10}, {5, 100}, {300, 100}};

TYPED_TEST(SoftmaxTest, FastMatchesRef) {
  using T = TypeParam;
  for (const auto& [M, C] : kShapes) {
    const std::string tag = " M" + std::to_string(M) + "_C" + std::to_string(C);
    const auto x = random_vector<T>(M * C, 101, -8.0, 8.0);
    std::vector<int32_t> labels(M);
    for (int64_t i = 0; i < M; ++i) labels[i] = static_cast<int32_t>((i * 7 + 3) % C);
    std::vector<T> y(M * C), y_ref(M * C);
    softmax_forward_cpu(M, C, x.data(), y.data());
    softmax_forward_ref(M, C, x.data(), y_ref.data());
    EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "softmax" + tag));
    log_softmax_forward_cpu(M, C, x.data(), y.data());
    log_softmax_forward_ref(M, C, x.data(), y_ref.data());
    EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "log_softmax" + tag));
    for (T eps : {T(0), T(0.1)}) {
      std::vector<T> loss(M), loss_ref(M);
      cross_entropy_forward_cpu(M, C, x.data(), labels.data(), eps, loss.data(), y.data());
      cross_entropy_forward_ref(M, C, x.data(), labels.data(), eps, loss_ref.data(),
                                y_ref.data());
      const std::string e = " eps=" + std::to_string(eps);
      EXPECT_TRUE(all_close(loss_ref, loss, tol<T>(), "ce loss" + tag + e));
      EXPECT_TRUE(all_close(y_ref, y, tol<T>(), "ce logp" + tag + e));
    }
  }
}

// The backward kernels have no oracle; in float they are checked against the formulas of
// kernels/softmax.h evaluated in double on the same inputs.
TYPED_TEST(SoftmaxTest, BackwardMatchesDoubleFormulas) {
  using T = TypeParam;
  for (const auto& [M, C] : kShapes) {
    const std::string tag = " M" + std::to_string(M) + "_C" + std::to_string(C);
    const auto x = random_vector<T>(M * C, 111, -4.0, 4.0), gy = random_vector<T>(M * C, 112);
    std::vector<T> y(M * C), lp(M * C), gx(M * C), glp(M * C);
    softmax_forward_ref(M, C, x.data(), y.data());
    log_softmax_forward_ref(M, C, x.data(), lp.data());
    softmax_backward_cpu(M, C, y.data(), gy.data(), gx.data());
    log_softmax_backward_cpu(M, C, lp.data(), gy.data(), glp.data());
    std::vector<double> e_gx(M * C), e_glp(M * C);
    for (int64_t i = 0; i < M; ++i) {
      double dot = 0, sum = 0;
      for (int64_t j = 0; j < C; ++j) {
        dot += double(gy[i * C + j]) * y[i * C + j];
        sum += gy[i * C + j];
      }
      for (int64_t j = 0; j < C; ++j) {
        e_gx[i * C + j] = y[i * C + j] * (gy[i * C + j] - dot);
        e_glp[i * C + j] = gy[i * C + j] - std::exp(double(lp[i * C + j])) * sum;
      }
    }
    EXPECT_TRUE(all_close(e_gx, gx, tol<T>(), "softmax backward" + tag));
    EXPECT_TRUE(all_close(e_glp, glp, tol<T>(), "log_softmax backward" + tag));
  }
}

// Central differences of L = sum(w .* f(x)) against the backward kernel, in double.
void expect_fd_match(int64_t n, const std::vector<double>& x0,
                     const std::function<double(const std::vector<double>&)>& loss,
                     const std::vector<double>& analytic, const std::string& what) {
  std::vector<double> fd(n);
  for (int64_t i = 0; i < n; ++i) {
    auto xp = x0, xm = x0;
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    fd[i] = (loss(xp) - loss(xm)) / 2e-6;
  }
  EXPECT_TRUE(all_close(fd, analytic, Tolerance{1e-8, 1e-6}, what));
}

TEST(SoftmaxGradCheck, SoftmaxAndLogSoftmaxMatchFiniteDifferences) {
  const int64_t M = 3, C = 5, n = M * C;
  const auto x0 = random_vector<double>(n, 121, -2.0, 2.0), w = random_vector<double>(n, 122);
  auto weighted = [&](auto forward) {
    return [&, forward](const std::vector<double>& x) {
      std::vector<double> y(n);
      forward(M, C, x.data(), y.data());
      double l = 0;
      for (int64_t i = 0; i < n; ++i) l += w[i] * y[i];
      return l;
    };
  };
  std::vector<double> y(n), gx(n);
  softmax_forward_cpu(M, C, x0.data(), y.data());
  softmax_backward_cpu(M, C, y.data(), w.data(), gx.data());
  expect_fd_match(n, x0, weighted(softmax_forward_cpu<double>), gx, "fd softmax");
  log_softmax_forward_cpu(M, C, x0.data(), y.data());
  log_softmax_backward_cpu(M, C, y.data(), w.data(), gx.data());
  expect_fd_match(n, x0, weighted(log_softmax_forward_cpu<double>), gx, "fd log_softmax");
}

TEST(SoftmaxGradCheck, CrossEntropyMatchesFiniteDifferences) {
  const int64_t M = 4, C = 6, n = M * C;
  const auto x0 = random_vector<double>(n, 131, -3.0, 3.0);
  const auto gloss = random_vector<double>(M, 132, 0.1, 1.0);
  const std::vector<int32_t> labels = {0, 5, 2, 2};
  for (double eps : {0.0, 0.1}) {
    auto loss = [&](const std::vector<double>& x) {
      std::vector<double> l(M), logp(n);
      cross_entropy_forward_cpu(M, C, x.data(), labels.data(), eps, l.data(), logp.data());
      double total = 0;
      for (int64_t i = 0; i < M; ++i) total += gloss[i] * l[i];
      return total;
    };
    std::vector<double> l(M), logp(n), g(n);
    cross_entropy_forward_cpu(M, C, x0.data(), labels.data(), eps, l.data(), logp.data());
    cross_entropy_backward_cpu(M, C, logp.data(), labels.data(), eps, gloss.data(), g.data());
    expect_fd_match(n, x0, loss, g, "fd cross_entropy eps=" + std::to_string(eps));
  }
}

}  // namespace
}  // namespace lethe::kernels
