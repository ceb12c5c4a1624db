// The seeded per-class train/validation split (SPEC section 1): counts per class, disjoint,
// complete, sorted, and a pure function of the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/split.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

// CIFAR-10's shape: 50,000 labels, 5,000 per class, in a scrambled order.
std::vector<int32_t> cifar_like_labels(int64_t n, int64_t classes) {
  std::vector<int32_t> l(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) l[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + i / 13) % classes);
  return l;
}

TEST(Split, PerClassCountsDisjointAndComplete) {
  const std::vector<int32_t> labels = cifar_like_labels(50000, 10);
  std::vector<int64_t> per_class(10, 0);
  for (int32_t l : labels) per_class[static_cast<size_t>(l)]++;
  const TrainValSplit s = split_train_val(labels, 10, 1);
  ASSERT_EQ(s.train.size() + s.val.size(), 50000u);
  EXPECT_TRUE(std::is_sorted(s.train.begin(), s.train.end()));
  EXPECT_TRUE(std::is_sorted(s.val.begin(), s.val.end()));
  std::vector<int64_t> tr(10, 0), va(10, 0);
  for (int64_t i : s.train) tr[static_cast<size_t>(labels[static_cast<size_t>(i)])]++;
  for (int64_t i : s.val) va[static_cast<size_t>(labels[static_cast<size_t>(i)])]++;
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(va[c], per_class[c] / 10) << "class " << c;
    EXPECT_EQ(tr[c] + va[c], per_class[c]) << "class " << c;
  }
  std::vector<int64_t> all(s.train);
  all.insert(all.end(), s.val.begin(), s.val.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 50000; ++i) ASSERT_EQ(all[static_cast<size_t>(i)], i);
}

TEST(Split, FullCifar10Counts) {
  std::vector<int32_t> labels(50000);
  for (int64_t i = 0; i < 50000; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i % 10);
  const TrainValSplit s = split_train_val(labels, 10, 3);
  EXPECT_EQ(s.train.size(), 45000u);
  EXPECT_EQ(s.val.size(), 5000u);
  std::vector<int64_t> va(10, 0);
  for (int64_t i : s.val) va[static_cast<size_t>(i % 10)]++;
  for (int c = 0; c < 10; ++c) EXPECT_EQ(va[c], 500);
}

TEST(Split, SeedDeterminesTheSplit) {
  const std::vector<int32_t> labels = cifar_like_labels(5000, 10);
  const TrainValSplit a = split_train_val(labels, 10, 7);
  const TrainValSplit b = split_train_val(labels, 10, 7);
  const TrainValSplit c = split_train_val(labels, 10, 8);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_NE(a.val, c.val);
  // The held-out images are a random subset, not simply the first of each class.
  std::set<int64_t> first_per_class;
  std::vector<int64_t> seen(10, 0);
  for (int64_t i = 0; i < 5000; ++i)
    if (seen[static_cast<size_t>(labels[static_cast<size_t>(i)])]++ < 50) first_per_class.insert(i);
  EXPECT_NE(std::set<int64_t>(a.val.begin(), a.val.end()), first_per_class);
}

TEST(Split, UnevenClassesAndFraction) {
  std::vector<int32_t> labels;
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 9 + 5 * c; ++k) labels.push_back(c);  // 9, 14, 19 images
  const TrainValSplit s = split_train_val(labels, 3, 0, 0.2);
  EXPECT_EQ(s.val.size(), 1u + 2u + 3u);  // floor(1.8), floor(2.8), floor(3.8)
  EXPECT_EQ(s.train.size(), labels.size() - 6u);
  EXPECT_THROW((split_train_val({0, 3}, 3, 0)), Error);
  EXPECT_THROW((split_train_val({0}, 1, 0, 1.5)), Error);
}

}  // namespace
}  // namespace lethe::data
