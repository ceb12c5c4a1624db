// SGD update kernel (kernels/cpu/optim.cpp): two steps computed by hand in the order of
// ../shared/docs/SPEC.md section 3 (plain, Nesterov, no momentum), fast vs oracle over sizes
// and flag combinations, and the pruning invariant: a masked weight stays exactly 0 through
// many steps with momentum, weight decay and non-zero gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/optim.h"
#include "testing/compare.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

template <typename T>
class SgdTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SgdTest, Types);

template <typename T>
Tolerance hand_tol() {
  return sizeof(T) == 4 ? Tolerance{1e-6, 1e-6} : Tolerance{1e-14, 1e-14};
}

// One weight w0 = 1, gradients 0.5 then -0.25, lr 0.1, momentum 0.9, wd 5e-4:
//   step 1: g = 0.5 + 5e-4*1 = 0.5005; buf = 0.5005; w = 1 - 0.1*0.5005 = 0.94995
//   step 2: g = -0.25 + 5e-4*0.94995 = -0.249525025
//           buf = 0.9*0.5005 - 0.249525025 = 0.200924975
//           w = 0.94995 - 0.1*0.200924975 = 0.9298575025
TYPED_TEST(SgdTest, TwoStepsByHand) {
  using T = TypeParam;
  const SgdParams p{0.1, 0.9, 5e-4, false};
  for (bool ref : {false, true}) {
    std::vector<T> w = {1}, buf = {0};
    const auto step = ref ? sgd_update_ref<T> : sgd_update_cpu<T>;
    const T g1 = T(0.5), g2 = T(-0.25);
    step(1, p, w.data(), &g1, buf.data(), nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.5005}, buf, hand_tol<T>(), "buf after step 1"));
    EXPECT_TRUE(all_close(std::vector<T>{0.94995}, w, hand_tol<T>(), "w after step 1"));
    step(1, p, w.data(), &g2, buf.data(), nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.200924975}, buf, hand_tol<T>(), "buf after step 2"));
    EXPECT_TRUE(all_close(std::vector<T>{0.9298575025}, w, hand_tol<T>(), "w after step 2"));
  }
}

// Nesterov, same inputs: w -= lr*(g + momentum*buf)
//   step 1: g = 0.5005, buf = 0.5005, w = 1 - 0.1*(0.5005 + 0.9*0.5005) = 0.904905
//   step 2: g = -0.25 + 5e-4*0.904905 = -0.2495475475
//           buf = 0.45045 - 0.2495475475 = 0.2009024525
//           w = 0.904905 - 0.1*(-0.2495475475 + 0.9*0.2009024525) = 0.911778534025
TYPED_TEST(SgdTest, TwoNesterovStepsByHand) {
  using T = TypeParam;
  const SgdParams p{0.1, 0.9, 5e-4, true};
  for (bool ref : {false, true}) {
    std::vector<T> w = {1}, buf = {0};
    const auto step = ref ? sgd_update_ref<T> : sgd_update_cpu<T>;
    const T g1 = T(0.5), g2 = T(-0.25);
    step(1, p, w.data(), &g1, buf.data(), nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.904905}, w, hand_tol<T>(), "nesterov w step 1"));
    step(1, p, w.data(), &g2, buf.data(), nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.2009024525}, buf, hand_tol<T>(), "nesterov buf 2"));
    EXPECT_TRUE(all_close(std::vector<T>{0.911778534025}, w, hand_tol<T>(), "nesterov w 2"));
  }
}

// momentum == 0: no buffer (nullptr), w -= lr*(g + wd*w):
//   step 1: w = 1 - 0.1*0.5005 = 0.94995; step 2: w = 0.94995 + 0.1*0.249525025 = 0.9749025025
TYPED_TEST(SgdTest, NoMomentumNeedsNoBuffer) {
  using T = TypeParam;
  const SgdParams p{0.1, 0.0, 5e-4, false};
  for (bool ref : {false, true}) {
    std::vector<T> w = {1};
    const auto step = ref ? sgd_update_ref<T> : sgd_update_cpu<T>;
    const T g1 = T(0.5), g2 = T(-0.25);
    step(1, p, w.data(), &g1, nullptr, nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.94995}, w, hand_tol<T>(), "plain w step 1"));
    step(1, p, w.data(), &g2, nullptr, nullptr);
    EXPECT_TRUE(all_close(std::vector<T>{0.9749025025}, w, hand_tol<T>(), "plain w step 2"));
  }
}

TYPED_TEST(SgdTest, MatchesRefOverSizesAndFlags) {
  using T = TypeParam;
  const Tolerance tol = sizeof(T) == 4 ? Tolerance{1e-6, 1e-5} : Tolerance{1e-14, 1e-12};
  const SgdParams cases[] = {{0.1, 0.9, 5e-4, false},
                             {0.1, 0.9, 5e-4, true},
                             {0.05, 0.0, 5e-4, false},
                             {0.01, 0.5, 0.0, false}};
  for (int64_t n : {int64_t{1}, int64_t{13}, (int64_t{1} << 15) + 5}) {
    for (const SgdParams& p : cases) {
      for (bool masked : {false, true}) {
        auto w = random_vector<T>(n, 21), w_ref = w;
        std::vector<T> buf(w.size(), T(0)), buf_ref(w.size(), T(0));
        std::vector<uint8_t> mask(w.size());
        for (size_t i = 0; i < mask.size(); ++i) mask[i] = static_cast<uint8_t>(i % 4 != 1);
        T* bp = p.momentum != 0.0 ? buf.data() : nullptr;
        T* bp_ref = p.momentum != 0.0 ? buf_ref.data() : nullptr;
        const uint8_t* mp = masked ? mask.data() : nullptr;
        for (uint32_t step = 0; step < 3; ++step) {
          const auto g = random_vector<T>(n, 100 + step);
          sgd_update_cpu(n, p, w.data(), g.data(), bp, mp);
          sgd_update_ref(n, p, w_ref.data(), g.data(), bp_ref, mp);
        }
        const std::string tag = " n=" + std::to_string(n) + " momentum=" +
                                std::to_string(p.momentum) + (p.nesterov ? " nesterov" : "") +
                                (masked ? " masked" : "");
        EXPECT_TRUE(all_close(w_ref, w, tol, "sgd w" + tag));
        EXPECT_TRUE(all_close(buf_ref, buf, tol, "sgd buf" + tag));
      }
    }
  }
}

// The pruning invariant of STYLE.md: weight decay and momentum never revive a pruned weight.
// The worst case: pruned weights start non-zero, their gradients are non-zero every step
// (as if the chain-rule masking upstream were missing), and the buffer keeps momentum.
TYPED_TEST(SgdTest, MaskKeepsPrunedWeightsExactlyZero) {
  using T = TypeParam;
  const int64_t n = 257;
  for (bool nesterov : {false, true}) {
    const SgdParams p{0.1, 0.9, 5e-4, nesterov};
    auto w = random_vector<T>(n, 31), w_ref = w;
    std::vector<T> buf(w.size(), T(0)), buf_ref(w.size(), T(0));
    std::vector<uint8_t> mask(w.size());
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = static_cast<uint8_t>(i % 3 == 0);
    for (uint32_t step = 0; step < 200; ++step) {
      const auto g = random_vector<T>(n, 1000 + step, 0.5, 1.5);  // never zero
      sgd_update_cpu(n, p, w.data(), g.data(), buf.data(), mask.data());
      sgd_update_ref(n, p, w_ref.data(), g.data(), buf_ref.data(), mask.data());
      for (size_t i = 0; i < mask.size(); ++i)
        if (!mask[i]) {
          ASSERT_EQ(w[i], T(0)) << "fast, step " << step << " index " << i;
          ASSERT_EQ(w_ref[i], T(0)) << "ref, step " << step << " index " << i;
        }
    }
    // The kept weights moved (the test is not vacuous).
    EXPECT_NE(w[0], random_vector<T>(n, 31)[0]);
  }
}

}  // namespace
}  // namespace lethe::kernels
