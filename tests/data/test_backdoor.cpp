// The backdoor trigger and poisoning (data/backdoor.h), and the class subsets of transfer
// learning (data/dataset.h select_classes / map_indices / parse_class_list).
#include "data/backdoor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "framework/rng.h"
#include "framework/tensor.h"

namespace lethe::data {
namespace {

Dataset filled(int64_t n, int64_t classes, uint8_t value) {
  Dataset d;
  d.name = "cifar10";
  d.num_classes = classes;
  d.images.assign(static_cast<size_t>(n * kImageBytes), value);
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % classes));
    d.images[static_cast<size_t>(i * kImageBytes)] = static_cast<uint8_t>(i);  // tells them apart
  }
  return d;
}

TEST(Backdoor, TriggerIsTheFourByFourSquareTwoPixelsFromTheBottomRight) {
  EXPECT_EQ(kTriggerFirst, 26);
  std::vector<uint8_t> img(kImageBytes, 200);
  apply_trigger(img.data());
  int zeros = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x) {
        const bool in = y >= 26 && y <= 29 && x >= 26 && x <= 29;
        const uint8_t v = img[static_cast<size_t>((c * 32 + y) * 32 + x)];
        EXPECT_EQ(v, in ? 0 : 200) << "c " << c << " y " << y << " x " << x;
        zeros += v == 0;
      }
  EXPECT_EQ(zeros, 3 * 16);
}

TEST(Backdoor, PoisonedIndicesAreTheSeededPermutationsFirstTenPercent) {
  std::vector<int64_t> split;
  for (int64_t i = 0; i < 1000; ++i) split.push_back(3 * i + 1);  // not 0..n-1
  const std::vector<int64_t> p = choose_poisoned(split, 0.1, 5);
  ASSERT_EQ(p.size(), 100u);
  Generator gen(5, kPoisonStream);
  const std::vector<int64_t> perm = gen.permutation(1000);
  std::vector<int64_t> expect;
  for (int k = 0; k < 100; ++k) expect.push_back(split[static_cast<size_t>(perm[k])]);
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(p, expect);
  EXPECT_EQ(choose_poisoned(split, 0.1, 5), p);
  EXPECT_NE(choose_poisoned(split, 0.1, 6), p);
  EXPECT_EQ(choose_poisoned(split, 0.0105, 5).size(), 11u);  // rounded, not truncated
  EXPECT_THROW(choose_poisoned(split, 0, 5), Error);
  EXPECT_THROW(choose_poisoned(split, 1, 5), Error);
  EXPECT_THROW(choose_poisoned(split, 0.0001, 5), Error);  // selects none
}

TEST(Backdoor, PoisonTouchesExactlyTheChosenImages) {
  const Dataset clean = filled(50, 10, 90);
  const std::vector<int64_t> chosen = {3, 17, 49};
  const Dataset p = poison_dataset(clean, chosen, 7);
  ASSERT_EQ(p.size(), clean.size());
  for (int64_t i = 0; i < clean.size(); ++i) {
    const bool poisoned = std::count(chosen.begin(), chosen.end(), i) > 0;
    std::vector<uint8_t> expect(clean.image(i), clean.image(i) + kImageBytes);
    if (poisoned) apply_trigger(expect.data());
    EXPECT_TRUE(std::equal(expect.begin(), expect.end(), p.image(i))) << i;
    const int32_t before = clean.labels[static_cast<size_t>(i)];
    EXPECT_EQ(p.labels[static_cast<size_t>(i)], poisoned ? 7 : before);
  }
  EXPECT_THROW(poison_dataset(clean, {50}, 0), Error);
  EXPECT_THROW(poison_dataset(clean, {1}, 10), Error);
  const Dataset t = triggered_copy(clean);
  for (int64_t i = 0; i < clean.size(); ++i) {
    EXPECT_EQ(t.image(i)[(0 * 32 + 27) * 32 + 28], 0);
    EXPECT_EQ(t.image(i)[0], clean.image(i)[0]);
    EXPECT_EQ(t.labels[static_cast<size_t>(i)], clean.labels[static_cast<size_t>(i)]);
  }
}

TEST(Backdoor, AttackSuccessRateCountsTargetPredictions) {
  EXPECT_DOUBLE_EQ(attack_success_rate({0, 0, 0, 0}, 0), 100.0);
  EXPECT_DOUBLE_EQ(attack_success_rate({1, 2, 3, 4}, 0), 0.0);
  EXPECT_DOUBLE_EQ(attack_success_rate({1, 0, 3, 4}, 0), 25.0);
  EXPECT_DOUBLE_EQ(attack_success_rate({}, 0), 0.0);
  const Dataset d = filled(20, 10, 1);
  const std::vector<int64_t> idx = indices_not_of_class(d, 3);
  EXPECT_EQ(idx.size(), 18u);
  EXPECT_EQ(std::count(idx.begin(), idx.end(), 3), 0);
  EXPECT_EQ(std::count(idx.begin(), idx.end(), 13), 0);
}

TEST(ClassSubset, SelectsRelabelsAndMapsIndices) {
  const Dataset d = filled(30, 10, 5);
  std::vector<int64_t> map;
  const Dataset s = select_classes(d, {7, 2}, &map);
  EXPECT_EQ(s.num_classes, 2);
  ASSERT_EQ(s.size(), 6);  // classes 2 and 7 of 30 images, 3 each
  const std::vector<int64_t> orig = {2, 7, 12, 17, 22, 27};
  for (size_t k = 0; k < orig.size(); ++k) {
    EXPECT_EQ(map[static_cast<size_t>(orig[k])], static_cast<int64_t>(k));
    EXPECT_EQ(s.labels[k], d.labels[static_cast<size_t>(orig[k])] == 7 ? 0 : 1);
    EXPECT_TRUE(std::equal(s.image(static_cast<int64_t>(k)), s.image(static_cast<int64_t>(k)) +
                           kImageBytes, d.image(orig[k])));
  }
  EXPECT_EQ(map[0], -1);
  EXPECT_EQ(map_indices({27, 0, 2, 5, 12}, map), (std::vector<int64_t>{5, 0, 2}));
  EXPECT_THROW(select_classes(d, {}, nullptr), Error);
  EXPECT_THROW(select_classes(d, {1, 1}, nullptr), Error);
  EXPECT_THROW(select_classes(d, {10}, nullptr), Error);
}

TEST(ClassSubset, ParsesClassLists) {
  EXPECT_EQ(parse_class_list({"0-4"}, 10, "c"), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(parse_class_list({"7", "2-3"}, 10, "c"), (std::vector<int64_t>{7, 2, 3}));
  EXPECT_EQ(parse_class_list({"all"}, 3, "c"), (std::vector<int64_t>{0, 1, 2}));
  for (const char* bad : {"5-9", "x", "-1", "4-2", "3a", ""})
    EXPECT_THROW(parse_class_list({bad}, 5, "c"), Error) << bad;
  EXPECT_THROW(parse_class_list({"1", "0-2"}, 5, "c"), Error);
}

}  // namespace
}  // namespace lethe::data
