// The defining property of each training-based method (SPEC section 6): Retrain never sees the
// forget set (class-wise UA 100% with RA >= 95% on a separable toy problem), GA raises the
// forget loss, l1-sparse applies SPEC's gamma schedules, RL relabels only forget images
// (uniformly, seeded); and for every method the pruning mask stays fixed.
#include <gtest/gtest.h>

#include <map>

#include "framework/ops.h"
#include "models/trainer.h"
#include "unlearn/unlearn.h"
#include "unlearn_test_util.h"

namespace lethe::unlearn {
namespace {

using testing::LogReg;
using testing::ToyData;

TEST(Retrain, NeverSeesTheForgetClass) {
  // A separable toy problem: logistic regression on normalised synthetic images.
  const ToyData d(600, 200, 10);
  const ForgetSet fs = make_forget_set("class:4", d.train, d.split, 1);
  for (uint64_t seed : {1, 2}) {
    SCOPED_TRACE(seed);
    // Start from a model that has learned the class, as a real trained model has.
    testing::NormLogReg model(10, seed);
    testing::pretrain(model, d.train, d.split, 8, 0.003);
    ASSERT_LT(100.0 - train::evaluate(model, d.train, fs.forget).accuracy, 10.0);
    RetrainOptions o;
    o.sgd.epochs = 12;
    o.sgd.lr = 0.003;
    o.sgd.lr_schedule = "constant";
    o.sgd.batch_size = 64;
    o.sgd.seed = seed;
    const MethodResult r = retrain(model, d.train, fs, {}, o, [seed] {
      return std::make_shared<testing::NormLogReg>(10, seed);
    });
    EXPECT_EQ(r.method, "retrain");
    EXPECT_EQ(r.history.size(), 12u);
    EXPECT_EQ(r.samples, 12 * static_cast<int64_t>(fs.retain.size()));
    const Metrics m = evaluate_unlearning(model, d.train, d.test, fs, testing::no_variants());
    EXPECT_DOUBLE_EQ(m.UA, 100.0);
    EXPECT_GE(m.RA, 95.0);
    EXPECT_GE(m.TA, 90.0);
  }
}

TEST(Retrain, StartsFromTheFreshInitialisation) {
  const ToyData d(60, 10, 10);
  const ForgetSet fs = make_forget_set("random:6", d.train, d.split, 1);
  LogReg model(10, 99);
  RetrainOptions o;
  o.sgd.epochs = 1;
  o.sgd.lr = 0.0;  // no learning: the result is exactly the fresh weights
  o.sgd.weight_decay = 0.0;
  retrain(model, d.train, fs, {}, o, [] { return std::make_shared<LogReg>(10, 1); });
  EXPECT_EQ(testing::flat_params(model), testing::flat_params(LogReg(10, 1)));
}

TEST(GradientAscent, RaisesTheForgetLoss) {
  const ToyData d(400, 10, 10);
  const ForgetSet fs = make_forget_set("random:60", d.train, d.split, 2);
  LogReg model(10, 2);
  testing::pretrain(model, d.train, d.split, 3, 0.01);
  const double before = train::evaluate(model, d.train, fs.forget).loss;
  const double retain_before = train::evaluate(model, d.train, fs.retain).loss;
  GaOptions o;
  o.sgd.epochs = 2;
  o.sgd.lr = 1e-3;
  o.sgd.batch_size = 32;
  const MethodResult r = gradient_ascent(model, d.train, fs, {}, o);
  EXPECT_EQ(r.samples, 2 * 60);
  const double after = train::evaluate(model, d.train, fs.forget).loss;
  EXPECT_GT(after, before + 0.05) << "forget loss " << before << " -> " << after;
  // It is the forget set's loss that GA pushes up, more than the retain set's.
  const double retain_after = train::evaluate(model, d.train, fs.retain).loss;
  EXPECT_GT(after - before, retain_after - retain_before);
  // SPEC's default learning rates per scenario.
  EXPECT_DOUBLE_EQ(ga_default_lr(parse_forget_spec("class:0")), 1e-4);
  EXPECT_DOUBLE_EQ(ga_default_lr(parse_forget_spec("random:10")), 1e-3);
  EXPECT_DOUBLE_EQ(default_method_options(parse_forget_spec("class:1")).ga.sgd.lr, 1e-4);
  EXPECT_DOUBLE_EQ(default_method_options(parse_forget_spec("random:1")).ga.sgd.lr, 1e-3);
}

TEST(L1Sparse, SchedulesGiveSpecsGammaSequence) {
  const double g = 1e-4;
  const std::map<L1Schedule, std::vector<double>> want = {
      {L1Schedule::Decay, {g, 0.75 * g, 0.5 * g, 0.25 * g}},
      {L1Schedule::Growth, {0.25 * g, 0.5 * g, 0.75 * g, g}},
      {L1Schedule::Constant, {g, g, g, g}}};
  for (const auto& [s, seq] : want)
    for (int64_t t = 0; t < 4; ++t)
      EXPECT_DOUBLE_EQ(l1_gamma(s, g, t, 4), seq[static_cast<size_t>(t)]) << to_string(s) << t;
  EXPECT_EQ(parse_l1_schedule("growth"), L1Schedule::Growth);
  EXPECT_THROW(parse_l1_schedule("linear"), Error);
  EXPECT_EQ(L1Options{}.schedule, L1Schedule::Decay);
  EXPECT_DOUBLE_EQ(L1Options{}.gamma, 1e-4);
}

TEST(L1Sparse, TheLossAppliesTheScheduleAndShrinksTheWeights) {
  const ToyData d(200, 10, 10);
  const ForgetSet fs = make_forget_set("random:20", d.train, d.split, 2);
  auto l1_of = [](const nn::Module& m) {
    double s = 0;
    for (double v : testing::flat_params(m)) s += std::fabs(v);
    return s;
  };
  for (L1Schedule s : {L1Schedule::Decay, L1Schedule::Growth, L1Schedule::Constant}) {
    LogReg model(10, 3);
    L1Options o;
    o.sgd.epochs = 3;
    o.sgd.batch_size = 64;
    o.gamma = 1e-3;
    o.schedule = s;
    const MethodResult r = l1_sparse(model, d.train, fs, {}, o);
    ASSERT_EQ(r.schedule.size(), 3u);
    for (int64_t t = 0; t < 3; ++t)
      EXPECT_DOUBLE_EQ(r.schedule[static_cast<size_t>(t)], l1_gamma(s, 1e-3, t, 3));
  }
  // gamma > 0 gives a smaller l1 norm than plain FT with the same data order.
  LogReg a(10, 3), b(10, 3);
  L1Options lo;
  lo.sgd.epochs = 2;
  lo.sgd.batch_size = 64;
  lo.gamma = 1e-2;
  lo.schedule = L1Schedule::Constant;
  l1_sparse(a, d.train, fs, {}, lo);
  FtOptions fo;
  fo.sgd = lo.sgd;
  finetune(b, d.train, fs, {}, fo);
  EXPECT_LT(l1_of(a), l1_of(b));
}

TEST(RandomLabel, RelabelsOnlyForgetImagesUniformlyAndSeeded) {
  const ToyData d(300, 10, 10);
  const ForgetSet fs = make_forget_set("random:100", d.train, d.split, 4);
  Relabeller rl(fs, d.train.size(), 7);
  data::Batch b;
  b.epoch = 2;
  std::vector<int32_t> y;
  for (int64_t i = 0; i < 300; ++i) {
    b.indices.push_back(i);
    y.push_back(d.train.labels[static_cast<size_t>(i)]);
  }
  b.labels = Tensor::from_vector(y, {300});
  const std::vector<int32_t> out = rl.labels(b).to_vector<int32_t>();
  const std::vector<int32_t> table = rl_epoch_labels(100, 10, 7, 2);
  size_t k = 0, changed = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const bool forget = k < fs.forget.size() && fs.forget[k] == i;
    if (forget) {
      EXPECT_EQ(out[static_cast<size_t>(i)], table[k]);
      changed += out[static_cast<size_t>(i)] != y[static_cast<size_t>(i)];
      ++k;
    } else {
      EXPECT_EQ(out[static_cast<size_t>(i)], y[static_cast<size_t>(i)]) << "retain image " << i;
    }
  }
  EXPECT_GT(changed, 70u);  // ~90% of forget labels differ from the true one
  // Seeded by (seed, epoch); uniform over all classes.
  EXPECT_EQ(rl_epoch_labels(100, 10, 7, 2), table);
  EXPECT_NE(rl_epoch_labels(100, 10, 7, 3), table);
  EXPECT_NE(rl_epoch_labels(100, 10, 8, 2), table);
  const std::vector<int32_t> many = rl_epoch_labels(50000, 10, 1, 0);
  std::vector<int64_t> count(10, 0);
  for (int32_t v : many) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, 10);
    ++count[static_cast<size_t>(v)];
  }
  for (int64_t c : count) EXPECT_NEAR(static_cast<double>(c), 5000.0, 300.0);  // ~4.5 sigma
}

TEST(RandomLabel, TrainsOnForgetPlusRetain) {
  const ToyData d(120, 10, 10);
  const ForgetSet fs = make_forget_set("random:20", d.train, d.split, 4);
  LogReg model(10, 3);
  RlOptions o;
  o.sgd.epochs = 2;
  o.sgd.batch_size = 32;
  const MethodResult r = random_label(model, d.train, fs, {}, o);
  EXPECT_EQ(r.samples, 2 * 120);
  EXPECT_EQ(r.history.size(), 2u);
}

/// A tiny pruned ResNet-18: every method must leave the pruned weights exactly 0.
TEST(AllMethods, KeepTheMaskFixed) {
  const ToyData d(160, 10, 10);
  const models::ModelSpec spec{"resnet18", 0.0625, 10, "synthetic"};
  const ForgetSet fs = make_forget_set("class:1", d.train, d.split, 3);
  MethodOptions o = default_method_options(fs.spec);
  for (TrainRecipe* r : {&o.retrain.sgd, &o.ft.sgd, &o.ga.sgd, &o.rl.sgd, &o.l1.sgd}) {
    r->epochs = 1;
    r->batch_size = 64;
  }
  o.retrain.sgd.lr = 0.05;
  o.retrain.sgd.lr_schedule = "constant";
  o.iu.woodfisher_n = 10;
  o.ff.alpha = 1e-6;
  for (const std::string& method : method_names()) {
    SCOPED_TRACE(method);
    auto model = model_factory(spec, 5)();
    // A seeded random mask keeping about half of every conv weight.
    prune::MaskSet masks;
    Generator g(9, 5);
    for (const auto& [name, conv] : prune::prunable_layers(*model)) {
      Tensor m = Tensor::empty(conv->weight.shape(), DType::U8);
      g.fill_bernoulli(m.data<uint8_t>(), m.numel(), 0.5);
      masks[name] = m;
    }
    install_masks(*model, masks);
    const MethodResult r = run_method(method, *model, d.train, fs, masks, o, model_factory(spec, 5));
    EXPECT_EQ(r.method, method);
    EXPECT_GT(r.seconds, 0.0);
    int64_t kept_nonzero = 0;
    for (const auto& [name, conv] : prune::prunable_layers(*model)) {
      const std::vector<float> w = conv->weight.to_vector<float>();
      const std::vector<uint8_t> m = masks.at(name).to_vector<uint8_t>();
      ASSERT_EQ(conv->mask().to_vector<uint8_t>(), m) << name;
      for (size_t j = 0; j < w.size(); ++j) {
        if (!m[j]) {
          ASSERT_EQ(w[j], 0.0f) << name << "[" << j << "]";
        }
        kept_nonzero += m[j] && w[j] != 0.0f;
      }
    }
    EXPECT_GT(kept_nonzero, 0);
  }
}

TEST(MethodRegistry, NamesDefaultsAndFlags) {
  EXPECT_EQ(method_names().size(), 7u);
  EXPECT_EQ(canonical_method("l1-sparse"), "l1");
  EXPECT_THROW(canonical_method("scrub"), Error);
  const MethodOptions d = default_method_options(parse_forget_spec("class:0"));
  EXPECT_EQ(d.retrain.sgd.epochs, 160);
  EXPECT_DOUBLE_EQ(d.retrain.sgd.lr, 0.1);
  EXPECT_EQ(d.retrain.sgd.lr_schedule, "multistep:91,136");
  EXPECT_EQ(d.ft.sgd.epochs, 10);
  EXPECT_DOUBLE_EQ(d.ft.sgd.lr, 0.01);
  EXPECT_EQ(d.ga.sgd.epochs, 5);
  EXPECT_EQ(d.rl.sgd.epochs, 10);
  EXPECT_DOUBLE_EQ(d.ff.alpha, 1e-8);
  EXPECT_EQ(d.ff.batch_size, 32);
  EXPECT_DOUBLE_EQ(d.iu.alpha, 1.0);
  EXPECT_EQ(d.iu.woodfisher_n, 1000);
  for (const TrainRecipe* r : {&d.ft.sgd, &d.ga.sgd, &d.rl.sgd, &d.l1.sgd}) {
    EXPECT_EQ(r->batch_size, 256);
    EXPECT_DOUBLE_EQ(r->momentum, 0.9);
    EXPECT_DOUBLE_EQ(r->weight_decay, 5e-4);
    EXPECT_EQ(r->lr_schedule, "constant");
    EXPECT_TRUE(r->augment);
  }
  MethodOptions o = d;
  Config cfg = Config::from_string("epochs = 3\nlr = 0.5\ngamma = 0.1\nl1-schedule = growth\n"
                                   "alpha =\n");
  apply_method_config(o, "l1", cfg);
  EXPECT_EQ(o.l1.sgd.epochs, 3);
  EXPECT_DOUBLE_EQ(o.l1.sgd.lr, 0.5);
  EXPECT_DOUBLE_EQ(o.l1.gamma, 0.1);
  EXPECT_EQ(o.l1.schedule, L1Schedule::Growth);
  EXPECT_EQ(o.ft.sgd.epochs, 10);  // other methods untouched
  EXPECT_THROW(apply_method_config(o, "ft", Config::from_string("alpha = 1\n")), Error);
  EXPECT_THROW(apply_method_config(o, "ff", Config::from_string("epochs = 1\n")), Error);
  apply_method_config(o, "ff", Config::from_string("ff.alpha = 3e-8\nff.batch-size = 16\n"), "ff.");
  EXPECT_DOUBLE_EQ(o.ff.alpha, 3e-8);
  EXPECT_EQ(o.ff.batch_size, 16);
}

}  // namespace
}  // namespace lethe::unlearn
