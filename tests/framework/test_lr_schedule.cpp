// Tests of framework/lr_schedule.h: each schedule against its PyTorch formula at hand-picked
// steps (epoch boundaries, phase ends, last step), the warmup's SequentialLR semantics, and the
// spec-string factory including its error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include "framework/lr_schedule.h"
#include "kernels/check.h"

namespace lethe {
namespace {

constexpr double kTol = 1e-15;

// SPEC §3: lr 0.1, x0.1 after epochs 91 and 136, 182 epochs of 196 batches (50000 / 256).
TEST(LrSchedule, MultiStepPaperRecipe) {
  const int64_t spe = 196;
  MultiStepLr s(0.1, {91, 136}, 0.1, spe);
  const struct {
    int64_t epoch;
    double lr;
  } cases[] = {{0, 0.1}, {90, 0.1}, {91, 0.01}, {135, 0.01}, {136, 0.001}, {181, 0.001}};
  for (const auto& c : cases) {
    EXPECT_NEAR(s.lr(c.epoch * spe), c.lr, kTol) << "epoch " << c.epoch;
    EXPECT_NEAR(s.lr(c.epoch * spe + spe - 1), c.lr, kTol) << "end of epoch " << c.epoch;
  }
  // The drop happens exactly at the epoch boundary, not mid-epoch.
  EXPECT_NEAR(s.lr(91 * spe - 1), 0.1, kTol);
  EXPECT_NEAR(s.lr(91 * spe), 0.01, kTol);
}

TEST(LrSchedule, MultiStepRepeatedMilestoneAppliesGammaTwice) {
  MultiStepLr s(1.0, {2, 2, 4}, 0.5, 1);
  EXPECT_DOUBLE_EQ(s.lr(1), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(2), 0.25);
  EXPECT_DOUBLE_EQ(s.lr(4), 0.125);
  EXPECT_THROW(MultiStepLr(1.0, {3, 2}, 0.1, 1), Error);
  EXPECT_THROW(MultiStepLr(1.0, {1}, 0.1, 0), Error);
}

TEST(LrSchedule, CosineClosedForm) {
  CosineLr s(0.1, 100, 0.001);
  EXPECT_NEAR(s.lr(0), 0.1, kTol);
  EXPECT_NEAR(s.lr(25), 0.001 + 0.099 * (1 + std::cos(std::numbers::pi / 4)) / 2, kTol);
  EXPECT_NEAR(s.lr(25), 0.0855017856687341, kTol);
  EXPECT_NEAR(s.lr(50), 0.0505, kTol);
  EXPECT_NEAR(s.lr(100), 0.001, kTol);
  EXPECT_NEAR(s.lr(150), 0.001, kTol);  // held at eta_min after T
  for (int64_t t = 1; t <= 100; ++t) EXPECT_LE(s.lr(t), s.lr(t - 1)) << t;
}

TEST(LrSchedule, ConstantIsConstant) {
  ConstantLr s(0.05);
  EXPECT_EQ(s.lr(0), 0.05);
  EXPECT_EQ(s.lr(123456), 0.05);
  EXPECT_THROW(s.lr(-1), Error);
}

TEST(LrSchedule, LinearWarmupFollowsSequentialLr) {
  LinearWarmupLr s(std::make_unique<CosineLr>(0.1, 100), 10, 0.1);
  EXPECT_NEAR(s.lr(0), 0.01, kTol);                     // start_factor * lr
  EXPECT_NEAR(s.lr(5), 0.1 * (0.1 + 0.9 * 0.5), kTol);  // halfway up the ramp
  EXPECT_NEAR(s.lr(9), 0.1 * (0.1 + 0.9 * 0.9), kTol);
  EXPECT_NEAR(s.lr(10), 0.1, kTol);   // inner step 0
  EXPECT_NEAR(s.lr(60), 0.05, kTol);  // inner step 50 of 100
  EXPECT_NEAR(s.lr(110), 0.0, kTol);  // inner step 100
  // Zero warmup is the inner schedule itself.
  LinearWarmupLr none(std::make_unique<CosineLr>(0.1, 100), 0, 0.5);
  EXPECT_NEAR(none.lr(50), 0.05, kTol);
  EXPECT_THROW(LinearWarmupLr(std::make_unique<ConstantLr>(0.1), 5, 0.0), Error);
}

// Values from torch.optim.lr_scheduler.OneCycleLR's definition, max_lr 0.1, 100 steps:
// initial = 0.1 / 25 = 0.004, min = 0.004 / 1e4 = 4e-7, phase 1 ends at 0.3 * 100 - 1 = 29,
// phase 2 at 99. lr = end + (start - end) / 2 * (cos(pi * pct) + 1).
TEST(LrSchedule, OneCycleMatchesTorch) {
  OneCycleLr s(0.1, 100);
  EXPECT_NEAR(s.lr(0), 0.004, kTol);
  // pct = 10/29: 0.1 + (0.004 - 0.1) / 2 * (cos(10 pi / 29) + 1)
  EXPECT_NEAR(s.lr(10), 0.1 - 0.048 * (std::cos(std::numbers::pi * 10 / 29) + 1), 1e-14);
  EXPECT_NEAR(s.lr(10), 0.029516394846410082, 1e-14);
  EXPECT_NEAR(s.lr(29), 0.1, kTol);  // end of warmup: the peak
  EXPECT_NEAR(s.lr(30), 0.09994965352845243, 1e-14);
  EXPECT_NEAR(s.lr(64), 4e-7 + (0.1 - 4e-7) / 2, 1e-14);  // pct = 35 / 70 = 0.5
  EXPECT_NEAR(s.lr(99), 4e-7, 1e-18);                       // last step: min_lr
  EXPECT_NEAR(s.lr(500), 4e-7, 1e-18);                      // held past the end
}

TEST(LrSchedule, OneCycleThreePhase) {
  OneCycleLr s(0.1, 100, 0.3, 25.0, 1e4, true);
  EXPECT_NEAR(s.lr(0), 0.004, kTol);
  EXPECT_NEAR(s.lr(29), 0.1, kTol);
  EXPECT_NEAR(s.lr(44), 0.04940133238789997, 1e-14);
  EXPECT_NEAR(s.lr(58), 0.004, kTol);  // back to initial at 2 * 0.3 * 100 - 2
  EXPECT_NEAR(s.lr(70), 0.0032125295768510825, 1e-14);
  EXPECT_NEAR(s.lr(99), 4e-7, 1e-18);
}

TEST(LrSchedule, FactoryBuildsEachSchedule) {
  const int64_t spe = 10, epochs = 100;
  auto c = make_lr_schedule("constant", 0.1, spe, epochs);
  EXPECT_EQ(c->lr(777), 0.1);

  auto m = make_lr_schedule("multistep:91,136", 0.1, spe, epochs);
  EXPECT_NEAR(m->lr(90 * spe), 0.1, kTol);
  EXPECT_NEAR(m->lr(91 * spe), 0.01, kTol);
  EXPECT_NEAR(m->lr(136 * spe), 0.001, kTol);

  auto cos = make_lr_schedule("cosine", 0.1, spe, epochs);
  EXPECT_NEAR(cos->lr(500), 0.05, kTol);
  EXPECT_NEAR(cos->lr(1000), 0.0, kTol);

  auto one = make_lr_schedule("onecycle", 0.1, spe, epochs);
  EXPECT_NEAR(one->lr(0), 0.004, kTol);
  EXPECT_NEAR(one->lr(299), 0.1, kTol);
  EXPECT_NEAR(one->lr(999), 4e-7, 1e-18);
  EXPECT_NE(one->describe().find("onecycle"), std::string::npos);
}

TEST(LrSchedule, FactoryWarmup) {
  // 5 warmup epochs of 10 steps from lr/3, then cosine over the remaining 95 epochs.
  auto w = make_lr_schedule("warmup:5+cosine", 0.1, 10, 100);
  EXPECT_NEAR(w->lr(0), 0.1 / 3, kTol);
  EXPECT_NEAR(w->lr(25), 0.1 * (1.0 / 3 + (2.0 / 3) * 25 / 50), kTol);
  EXPECT_NEAR(w->lr(50), 0.1, kTol);
  EXPECT_NEAR(w->lr(50 + 475), 0.05, kTol);
  EXPECT_NEAR(w->lr(1000), 0.0, kTol);
  // Explicit start factor; a multistep inner schedule counts epochs after the warmup.
  auto wm = make_lr_schedule("warmup:2@0.1+multistep:3", 0.1, 10, 10);
  EXPECT_NEAR(wm->lr(0), 0.01, kTol);
  EXPECT_NEAR(wm->lr(20), 0.1, kTol);
  EXPECT_NEAR(wm->lr(49), 0.1, kTol);
  EXPECT_NEAR(wm->lr(50), 0.01, kTol);
  EXPECT_NE(wm->describe().find("warmup"), std::string::npos);
}

TEST(LrSchedule, FactoryRejectsUnknownAndMalformedSpecs) {
  for (const char* bad : {"", "step", "cosine:3", "multistep", "multistep:", "multistep:a,3",
                          "multistep:5,3", "warmup:5", "warmup:x+cosine", "warmup:100+cosine",
                          "warmup:2@2+cosine", "warmup:2+bogus", "constant:1"}) {
    try {
      make_lr_schedule(bad, 0.1, 10, 100);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("valid forms are constant, multistep"), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(make_lr_schedule("cosine", 0.1, 0, 100), Error);
}

}  // namespace
}  // namespace lethe
