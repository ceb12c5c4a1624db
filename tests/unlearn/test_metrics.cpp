// Metrics (SPEC section 7): MIA-Efficacy agrees with scikit-learn's SVC(C=3, gamma='auto') on
// the committed golden feature set (scripts/make_mia_golden.py) to within one forget sample;
// outputs come from un-augmented images in eval mode; class-wise TA excludes the forgotten
// class; the attacker's members are the first |T| retain images; gaps to Retrain.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/trainer.h"
#include "unlearn/metrics.h"
#include "unlearn_test_util.h"

namespace lethe::unlearn {
namespace {

namespace fs = std::filesystem;
using testing::LogReg;
using testing::ToyData;

std::string golden_path() {
  // Beside this file when the source tree is where it was built; else relative to tests/.
  const fs::path beside = fs::path(__FILE__).parent_path() / "golden" / "mia_golden.json";
  if (fs::exists(beside)) return beside.string();
  return (fs::path("unlearn") / "golden" / "mia_golden.json").string();
}

Predictions from_json(const nlohmann::json& j, int64_t C) {
  Predictions p;
  p.num_classes = C;
  for (const auto& row : j.at("probs")) {
    // The golden file holds the shortest decimal of each float32; rounding recovers it.
    for (const auto& v : row) p.probs.push_back(static_cast<float>(v.get<double>()));
  }
  for (const auto& y : j.at("labels")) p.labels.push_back(y.get<int32_t>());
  p.n = static_cast<int64_t>(p.labels.size());
  return p;
}

TEST(Mia, MatchesScikitLearnOnTheGoldenFeatureSet) {
  std::ifstream f(golden_path());
  ASSERT_TRUE(f.good()) << "missing " << golden_path()
                        << " (regenerate with scripts/make_mia_golden.py)";
  const nlohmann::json g = nlohmann::json::parse(f);
  const int64_t C = g.at("num_classes").get<int64_t>();
  const Predictions members = from_json(g.at("members"), C);
  const Predictions nonmembers = from_json(g.at("nonmembers"), C);
  const Predictions forget = from_json(g.at("forget"), C);
  for (MiaFeature feat : all_mia_features()) {
    SCOPED_TRACE(to_string(feat));
    const auto& want = g.at("expected").at(to_string(feat));
    const double share = svm_nonmember_share(mia_features(members, feat),
                                             mia_features(nonmembers, feat),
                                             mia_features(forget, feat));
    const double ours = share * static_cast<double>(forget.n);
    EXPECT_LE(std::fabs(ours - want.at("nonmembers_predicted").get<double>()), 1.0)
        << "lethe " << share << " vs scikit-learn " << want.at("nonmember_share").get<double>();
  }
  // metrics_from_predictions wires the same attack: the test set plays the non-members and the
  // retain set's first |T| images the members (here the members are exactly |T| long).
  Predictions retain = members;
  const Predictions extra = forget.head(10);  // beyond |T|: must not be used as members
  retain.probs.insert(retain.probs.end(), extra.probs.begin(), extra.probs.end());
  retain.labels.insert(retain.labels.end(), extra.labels.begin(), extra.labels.end());
  retain.n += extra.n;
  const Metrics m = metrics_from_predictions(forget, retain, nonmembers);
  EXPECT_EQ(m.n_members, nonmembers.n);
  for (MiaFeature feat : all_mia_features()) {
    const double want = g.at("expected").at(to_string(feat)).at("nonmember_share").get<double>();
    EXPECT_LE(std::fabs(m.mia.get(feat) - 100.0 * want), 100.0 / static_cast<double>(forget.n) + 1e-9)
        << to_string(feat);
  }
  EXPECT_DOUBLE_EQ(m.MIA_efficacy, m.mia.confidence);
  EXPECT_DOUBLE_EQ(m.UA, 100.0 - forget.accuracy());
  EXPECT_DOUBLE_EQ(m.TA, nonmembers.accuracy());
}

TEST(Mia, FeaturesFollowTheReference) {
  Predictions p;
  p.n = 2;
  p.num_classes = 3;
  p.probs = {0.7f, 0.2f, 0.1f, 0.0f, 0.4f, 0.6f};
  p.labels = {0, 1};
  EXPECT_DOUBLE_EQ(mia_features(p, MiaFeature::Confidence).x[1], 0.4f);
  EXPECT_EQ(mia_features(p, MiaFeature::Correctness).x, (std::vector<double>{1.0, 0.0}));
  const FeatureSet e = mia_features(p, MiaFeature::Entropy);
  EXPECT_NEAR(e.x[0], -(0.7 * std::log(0.7) + 0.2 * std::log(0.2) + 0.1 * std::log(0.1)), 1e-6);
  EXPECT_NEAR(e.x[1], -(0.4 * std::log(0.4) + 0.6 * std::log(0.6)), 1e-6);  // 0 log 0 = 0
  const FeatureSet pr = mia_features(p, MiaFeature::Probability);
  EXPECT_EQ(pr.d, 3);
  EXPECT_DOUBLE_EQ(pr.x[5], 0.6f);
}

TEST(Metrics, UseUnaugmentedImagesInEvalModeAndRestoreTheMode) {
  const ToyData d(64, 50, 10);
  LogReg model(10, 6);
  model.train();
  const std::vector<int64_t> idx = {3, 9, 17, 40};
  const Predictions p = predict(model, d.train, idx, 3);
  EXPECT_TRUE(model.is_training());
  // By hand from the raw bytes: softmax(model(x / 255)), no crop, no flip.
  autograd::NoGradGuard ng;
  for (size_t k = 0; k < idx.size(); ++k) {
    const auto x = testing::pixels(d.train, idx[k]);
    std::vector<float> xf(x.begin(), x.end());
    const Tensor probs = ops::softmax(model(Tensor::from_vector(xf, {1, 3, 32, 32})));
    const std::vector<float> want = probs.to_vector<float>();
    for (int64_t c = 0; c < 10; ++c)
      EXPECT_FLOAT_EQ(p.probs[k * 10 + static_cast<size_t>(c)], want[static_cast<size_t>(c)]);
    EXPECT_EQ(p.labels[k], d.train.labels[static_cast<size_t>(idx[k])]);
  }
  // Repeatable (no random augmentation) and equal to the trainer's evaluation.
  EXPECT_EQ(predict(model, d.train, idx, 3).probs, p.probs);
  EXPECT_DOUBLE_EQ(p.accuracy(), train::evaluate(model, d.train, idx).accuracy);
}

TEST(Metrics, ClassWiseTestAccuracyExcludesTheForgottenClass) {
  const ToyData d(300, 200, 10);
  LogReg model(10, 2);
  testing::pretrain(model, d.train, d.split, 2, 0.01);
  const ForgetSet cw = make_forget_set("class:7", d.train, d.split, 1);
  const Metrics m = evaluate_unlearning(model, d.train, d.test, cw, testing::no_variants());
  std::vector<int64_t> others;
  for (int64_t i = 0; i < d.test.size(); ++i)
    if (d.test.labels[static_cast<size_t>(i)] != 7) others.push_back(i);
  EXPECT_EQ(m.n_test, static_cast<int64_t>(others.size()));
  EXPECT_EQ(m.n_test, 180);
  EXPECT_DOUBLE_EQ(m.TA, train::evaluate(model, d.test, others).accuracy);
  EXPECT_DOUBLE_EQ(m.RA, train::evaluate(model, d.train, cw.retain).accuracy);
  EXPECT_DOUBLE_EQ(m.UA, 100.0 - train::evaluate(model, d.train, cw.forget).accuracy);
  EXPECT_EQ(m.n_members, 180);  // the first |T| retain images
  EXPECT_LT(m.mia.entropy, 0.0);  // variants off: not computed
  const ForgetSet rnd = make_forget_set("random:30", d.train, d.split, 1);
  EXPECT_EQ(evaluate_unlearning(model, d.train, d.test, rnd, testing::no_variants()).n_test, 200);
}

TEST(Metrics, GapsToRetrainAndRte) {
  Metrics a, r;
  a.UA = 20;
  a.MIA_efficacy = 70;
  a.RA = 99;
  a.TA = 90;
  r.UA = 100;
  r.MIA_efficacy = 100;
  r.RA = 100;
  r.TA = 94;
  const Gap g = gap_to_retrain(a, r);
  EXPECT_DOUBLE_EQ(g.UA, 80);
  EXPECT_DOUBLE_EQ(g.MIA_efficacy, 30);
  EXPECT_DOUBLE_EQ(g.RA, 1);
  EXPECT_DOUBLE_EQ(g.TA, 4);
  EXPECT_DOUBLE_EQ(g.average, 28.75);
  EXPECT_DOUBLE_EQ(rte_fraction(30, 120), 0.25);
  EXPECT_DOUBLE_EQ(rte_fraction(30, 0), 0.0);
  EXPECT_EQ(to_json(g)["gap_average"], 28.75);
  MethodResult mr;
  mr.method = "ft";
  mr.seconds = 90;
  EXPECT_DOUBLE_EQ(to_json(mr)["RTE_min"].get<double>(), 1.5);
  EXPECT_TRUE(to_json(a)["MIA"]["entropy"].is_null());
}

}  // namespace
}  // namespace lethe::unlearn
