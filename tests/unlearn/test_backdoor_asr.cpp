// unlearn::backdoor_asr on hand-made models whose answers are known: one that reads the class
// from a pixel the trigger never touches (ASR exactly 0), one that always answers the target
// (100), and a "backdoored" one that answers the target exactly when the 4x4 trigger square is
// black (100 on triggered images, yet correct on clean ones).
#include <gtest/gtest.h>

#include <cmath>

#include "data/backdoor.h"
#include "framework/nn.h"
#include "models/trainer.h"
#include "unlearn/metrics.h"

namespace lethe::unlearn {
namespace {

constexpr int64_t kClasses = 10;

/// Class k is written as red value 20*k into pixel (0, 0); the rest of the image is grey.
data::Dataset coded_images(int64_t n) {
  data::Dataset d;
  d.name = "cifar10";
  d.num_classes = kClasses;
  d.images.assign(static_cast<size_t>(n * data::kImageBytes), 128);
  for (int64_t i = 0; i < n; ++i) {
    const auto label = static_cast<int32_t>((i * 7) % kClasses);
    d.labels.push_back(label);
    d.images[static_cast<size_t>(i * data::kImageBytes)] = static_cast<uint8_t>(20 * label);
  }
  return d;
}

std::vector<int64_t> every_index(const data::Dataset& d) {
  std::vector<int64_t> all(static_cast<size_t>(d.size()));
  for (int64_t i = 0; i < d.size(); ++i) all[static_cast<size_t>(i)] = i;
  return all;
}

class HandModel : public nn::Module {
 public:
  enum Kind { ReadsPixel, AlwaysTarget, Backdoored };
  HandModel(Kind kind, int64_t target) : kind_(kind), target_(target) {}
  Tensor forward(const Tensor& x) override {
    const std::vector<float> v = x.to_vector<float>();
    const int64_t n = x.size(0);
    std::vector<float> logits(static_cast<size_t>(n * kClasses), 0.f);
    for (int64_t i = 0; i < n; ++i) {
      const float* img = v.data() + i * data::kImageBytes;
      int64_t cls = std::lround(img[0] * 255.f / 20.f);
      bool trigger = true;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 26; y < 30; ++y)
          for (int64_t xx = 26; xx < 30; ++xx) trigger &= img[(c * 32 + y) * 32 + xx] == 0.f;
      if (kind_ == AlwaysTarget || (kind_ == Backdoored && trigger)) cls = target_;
      logits[static_cast<size_t>(i * kClasses + cls)] = 10.f;
    }
    return Tensor::from_vector(logits, {n, kClasses});
  }

 private:
  Kind kind_;
  int64_t target_;
};

TEST(BackdoorAsr, ModelIgnoringTheTriggerScoresZero) {
  const data::Dataset test = coded_images(60);
  HandModel m(HandModel::ReadsPixel, 3);
  EXPECT_DOUBLE_EQ(train::evaluate(m, test, every_index(test), 16).accuracy, 100.0);
  EXPECT_DOUBLE_EQ(backdoor_asr(m, test, 3, 16), 0.0);
}

TEST(BackdoorAsr, ModelAlwaysAnsweringTheTargetScoresHundred) {
  const data::Dataset test = coded_images(60);
  HandModel m(HandModel::AlwaysTarget, 3);
  EXPECT_DOUBLE_EQ(backdoor_asr(m, test, 3, 16), 100.0);
}

TEST(BackdoorAsr, BackdooredModelIsCleanOnCleanImagesAndFooledByTheTrigger) {
  const data::Dataset test = coded_images(60);
  HandModel m(HandModel::Backdoored, 5);
  EXPECT_DOUBLE_EQ(train::evaluate(m, test, every_index(test), 16).accuracy, 100.0);
  EXPECT_DOUBLE_EQ(backdoor_asr(m, test, 5, 16), 100.0);
  // Only the images of other classes count: 54 of the 60 (6 are of class 5).
  EXPECT_EQ(data::indices_not_of_class(test, 5).size(), 54u);
}

}  // namespace
}  // namespace lethe::unlearn
