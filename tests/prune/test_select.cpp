// Global selection: exact counts at every rate, ties broken by index, OMP on a network with
// known weights, random pruning's determinism, IMP's per-round schedule.
#include <gtest/gtest.h>

#include <cmath>

#include "prune/select.h"
#include "prune_test_util.h"

namespace lethe {
namespace {

using prune::MaskSet;

int64_t zeros_of(const std::vector<uint8_t>& keep) {
  int64_t z = 0;
  for (uint8_t k : keep) z += k == 0;
  return z;
}

/// conv "0" [2,1,1,1], ReLU "1", conv "2" [2,2,1,1], Flatten "3", Linear "4" [1,2]: six conv
/// weights with known values, and a Linear whose tiny weights must never be pruned.
std::shared_ptr<nn::Sequential> known_net() {
  auto net = std::make_shared<nn::Sequential>();
  auto c0 = std::make_shared<nn::Conv2d>(1, 2, 1);
  auto c2 = std::make_shared<nn::Conv2d>(2, 2, 1);
  auto fc = std::make_shared<nn::Linear>(2, 1);
  testing::set_values(c0->weight, {0.5f, -0.1f});
  testing::set_values(c2->weight, {-0.3f, 0.1f, 0.7f, -0.05f});
  testing::set_values(fc->weight, {0.001f, -0.002f});
  net->push_back(c0);
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(c2);
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(fc);
  return net;
}

TEST(PruneCount, IsTheRoundedRateWithinHalfAWeight) {
  for (int64_t total : {1, 7, 11, 43692, 1000003, 11164352}) {
    for (double rate : {0.0, 0.2, 0.5, 0.9, 0.95, 0.99, 1.0}) {
      const int64_t n = prune::prune_count(rate, total);
      EXPECT_LE(std::fabs(static_cast<double>(n) - rate * static_cast<double>(total)), 0.5)
          << "rate " << rate << " total " << total;
      EXPECT_GE(n, 0);
      EXPECT_LE(n, total);
    }
  }
  EXPECT_EQ(prune::prune_count(0.5, 7), 4);  // 3.5 rounds away from zero
  EXPECT_EQ(prune::prune_count(1.0, 43692), 43692);
  EXPECT_THROW(prune::prune_count(-0.1, 10), Error);
  EXPECT_THROW(prune::prune_count(1.5, 10), Error);
  EXPECT_THROW(prune::prune_count(std::nan(""), 10), Error);
}

TEST(PruneSmallest, BreaksTiesByIndexAndSkipsPrunedWeights) {
  const std::vector<double> scores = {3, 1, 2, 1, 1, 5};
  std::vector<uint8_t> keep(6, 1);
  prune::prune_smallest(scores, keep, 2);
  EXPECT_EQ(keep, (std::vector<uint8_t>{1, 0, 1, 0, 1, 1}));  // the tie at 1: indices 1, 3
  prune::prune_smallest(scores, keep, 1);
  EXPECT_EQ(keep, (std::vector<uint8_t>{1, 0, 1, 0, 0, 1}));  // pruned ones are not re-counted
  prune::prune_smallest(scores, keep, 2);
  EXPECT_EQ(keep, (std::vector<uint8_t>{0, 0, 0, 0, 0, 1}));
  EXPECT_THROW(prune::prune_smallest(scores, keep, 2), Error);  // only one left

  // All equal: exactly the first n indices, whatever n.
  const std::vector<double> flat(1000, 0.25);
  for (int64_t n : {0, 1, 499, 1000}) {
    std::vector<uint8_t> k(1000, 1);
    prune::prune_smallest(flat, k, n);
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(k[static_cast<size_t>(i)], i < n ? 0 : 1);
  }
  std::vector<uint8_t> k(2, 1);
  EXPECT_THROW(prune::prune_smallest({1.0, std::nan("")}, k, 1), Error);
}

TEST(OMP, RemovesExactlyTheGloballySmallestMagnitudesOfKnownWeights) {
  auto net = known_net();
  // |w| in flat order: 0.5 0.1 | 0.3 0.1 0.7 0.05. Half: 0.05, then the tie at 0.1 (both).
  MaskSet half = prune::omp_masks(*net, 0.5);
  ASSERT_EQ(half.size(), 2u);  // the two convs, never the Linear
  EXPECT_EQ(half.at("0.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(half.at("2.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1, 0}));
  // A third: 0.05, and of the tied 0.1s the lower global index (layer 0's).
  MaskSet third = prune::omp_masks(*net, 1.0 / 3.0);
  EXPECT_EQ(third.at("0.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(third.at("2.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 0}));

  prune::apply_masks(*net, half);
  auto* c2 = dynamic_cast<nn::Conv2d*>(&(*net)[2]);
  EXPECT_EQ(c2->weight.to_vector<float>(), (std::vector<float>{-0.3f, 0.0f, 0.7f, 0.0f}));
  auto* fc = dynamic_cast<nn::Linear*>(&(*net)[4]);
  EXPECT_EQ(fc->weight.to_vector<float>(), (std::vector<float>{0.001f, -0.002f}));

  // Magnitude pruning continues from a mask: what is pruned stays pruned.
  // Kept |w|: 0.5, 0.3, 0.7; two more go: 0.3 and 0.5.
  MaskSet more = prune::magnitude_prune(*net, half, 5);
  EXPECT_EQ(more.at("0.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(more.at("2.weight").to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 1, 0}));
  EXPECT_THROW(prune::magnitude_prune(*net, half, 2), Error);  // cannot un-prune
}

TEST(OMP, PrunesExactlyTheRateWithOneGlobalThreshold) {
  testing::TinyResNet s;
  auto model = s.model();
  const std::vector<double> mag = prune::flat_abs_weights(*model);
  const int64_t total = static_cast<int64_t>(mag.size());
  EXPECT_EQ(total, 43692);
  for (double rate : {0.0, 0.5, 0.95, 0.99, 1.0}) {
    const std::vector<uint8_t> keep = prune::flatten_masks(*model, prune::omp_masks(*model, rate));
    EXPECT_EQ(zeros_of(keep), prune::prune_count(rate, total)) << rate;
    double max_pruned = 0, min_kept = INFINITY;
    for (size_t i = 0; i < keep.size(); ++i) {
      if (keep[i])
        min_kept = std::min(min_kept, mag[i]);
      else
        max_pruned = std::max(max_pruned, mag[i]);
    }
    EXPECT_LE(max_pruned, min_kept) << rate;
  }
}

TEST(RandomPruning, IsSeededExactAndSpreadGlobally) {
  testing::TinyResNet s;
  auto model = s.model();
  const MaskSet a = prune::random_masks(*model, 0.9, 7), b = prune::random_masks(*model, 0.9, 7);
  const MaskSet c = prune::random_masks(*model, 0.9, 8);
  const auto fa = prune::flatten_masks(*model, a);
  EXPECT_EQ(fa, prune::flatten_masks(*model, b));
  EXPECT_NE(fa, prune::flatten_masks(*model, c));
  EXPECT_EQ(zeros_of(fa), prune::prune_count(0.9, 43692));
  for (double rate : {0.0, 0.5, 0.99, 1.0})
    EXPECT_EQ(zeros_of(prune::flatten_masks(*model, prune::random_masks(*model, rate, 3))),
              prune::prune_count(rate, 43692));
  // Uniform over all weights: every large layer lands near the global rate.
  for (const auto& [name, mask] : a) {
    if (mask.numel() < 4000) continue;
    const auto v = mask.to_vector<uint8_t>();
    const double sp = static_cast<double>(zeros_of(v)) / static_cast<double>(v.size());
    EXPECT_NEAR(sp, 0.9, 0.03) << name;
  }
}

TEST(IMP, RoundsKeepPowersOfPointEightAndEndExactlyAtTheRate) {
  const int64_t total = 10000;
  const std::vector<int64_t> s95 = prune::imp_schedule(0.95, total);
  // 0.8^13 = 0.055 > 0.05 >= 0.8^14: 14 rounds, the last pruning to exactly 95%.
  ASSERT_EQ(s95.size(), 14u);
  for (size_t s = 1; s < s95.size(); ++s)
    EXPECT_EQ(s95[s - 1], total - std::llround(total * std::pow(0.8, static_cast<double>(s))))
        << "round " << s;
  EXPECT_EQ(s95[0], 2000);
  EXPECT_EQ(s95[1], 3600);
  EXPECT_EQ(s95.back(), 9500);
  for (size_t s = 1; s < s95.size(); ++s) EXPECT_GT(s95[s], s95[s - 1]);

  EXPECT_EQ(prune::imp_schedule(0.36, total), (std::vector<int64_t>{2000, 3600}));  // 0.8^2
  EXPECT_EQ(prune::imp_schedule(0.2, total), (std::vector<int64_t>{2000}));
  EXPECT_EQ(prune::imp_schedule(0.1, total), (std::vector<int64_t>{1000}));
  EXPECT_TRUE(prune::imp_schedule(0.0, total).empty());
  EXPECT_EQ(prune::imp_schedule(0.9, total).size(), 11u);   // 0.8^10 = 0.107
  EXPECT_EQ(prune::imp_schedule(0.99, total).size(), 21u);  // 0.8^20 = 0.0115
  const std::vector<int64_t> all = prune::imp_schedule(1.0, total);
  EXPECT_EQ(all.back(), total);
}

}  // namespace
}  // namespace lethe
