// UA / RA / TA / MIA-Efficacy, gaps to Retrain, RTE fractions.
#include "unlearn/metrics.h"

#include <cmath>

#include "data/backdoor.h"
#include "data/loader.h"
#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/trainer.h"

namespace lethe::unlearn {

Predictions predict(nn::Module& model, const data::Dataset& data,
                    const std::vector<int64_t>& indices, int64_t batch_size) {
  LETHE_CHECK(batch_size > 0, "predict: batch size must be > 0");
  Predictions p;
  p.num_classes = data.num_classes;
  p.n = static_cast<int64_t>(indices.size());
  p.probs.reserve(static_cast<size_t>(p.n * p.num_classes));
  p.labels.reserve(static_cast<size_t>(p.n));
  if (indices.empty()) return p;
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  data::LoaderOptions lo;  // no shuffle, no augmentation (SPEC section 1: evaluation)
  lo.batch_size = batch_size;
  data::BatchLoader loader(data, indices, lo);
  loader.start_epoch(0);
  data::Batch b;
  const Device dev = train::model_device(model);
  while (loader.next(&b)) {
    train::to_device(b, dev);  // nothing to do on the CPU
    const Tensor probs = ops::softmax(model(b.images));
    LETHE_CHECK(probs.size(1) == p.num_classes, "the model has ", probs.size(1),
                " outputs but the data set ", p.num_classes, " classes");
    const std::vector<float> v = probs.to_vector<float>();
    p.probs.insert(p.probs.end(), v.begin(), v.end());
    const std::vector<int32_t> y = b.labels.to_vector<int32_t>();
    p.labels.insert(p.labels.end(), y.begin(), y.end());
  }
  model.train(was_training);
  return p;
}

double MiaScores::get(MiaFeature f) const {
  switch (f) {
    case MiaFeature::Confidence: return confidence;
    case MiaFeature::Entropy: return entropy;
    case MiaFeature::Correctness: return correctness;
    case MiaFeature::Probability: return probability;
  }
  return -1;
}

void MiaScores::set(MiaFeature f, double v) {
  switch (f) {
    case MiaFeature::Confidence: confidence = v; break;
    case MiaFeature::Entropy: entropy = v; break;
    case MiaFeature::Correctness: correctness = v; break;
    case MiaFeature::Probability: probability = v; break;
  }
}

Metrics metrics_from_predictions(const Predictions& forget, const Predictions& retain,
                                 const Predictions& test, const EvalOptions& o) {
  LETHE_CHECK(forget.n > 0, "the forget set is empty; an empty forget set is an error");
  LETHE_CHECK(retain.n > 0 && test.n > 0, "the metrics need non-empty retain and test sets");
  Metrics m;
  m.n_forget = forget.n;
  m.n_retain = retain.n;
  m.n_test = test.n;
  m.UA = 100.0 - forget.accuracy();
  m.RA = retain.accuracy();
  m.TA = test.accuracy();
  // Members: the first |T| retain images (SPEC section 7), or all if there are fewer.
  const Predictions members = retain.head(test.n);
  m.n_members = members.n;
  for (MiaFeature f : all_mia_features()) {
    if (f != MiaFeature::Confidence && !o.mia_variants) continue;
    const double share = svm_nonmember_share(mia_features(members, f), mia_features(test, f),
                                             mia_features(forget, f), o.svm);
    m.mia.set(f, 100.0 * share);
  }
  m.MIA_efficacy = m.mia.confidence;
  return m;
}

Metrics evaluate_unlearning(nn::Module& model, const data::Dataset& train,
                            const data::Dataset& test, const ForgetSet& fs,
                            const EvalOptions& o) {
  const Stopwatch clock;
  const Predictions forget = predict(model, train, fs.forget, o.batch_size);
  const Predictions retain = predict(model, train, fs.retain, o.batch_size);
  const Predictions t = predict(model, test, test_set_indices(test, fs), o.batch_size);
  Metrics m = metrics_from_predictions(forget, retain, t, o);
  m.seconds = clock.seconds();
  return m;
}

double backdoor_asr(nn::Module& model, const data::Dataset& test, int64_t target,
                    int64_t batch_size) {
  const data::Dataset triggered = data::triggered_copy(test);
  const Predictions p =
      predict(model, triggered, data::indices_not_of_class(test, target), batch_size);
  std::vector<int64_t> predicted(static_cast<size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) predicted[static_cast<size_t>(i)] = p.predicted(i);
  return data::attack_success_rate(predicted, target);
}

Gap gap_to_retrain(const Metrics& a, const Metrics& r) {
  Gap g;
  g.UA = std::fabs(a.UA - r.UA);
  g.MIA_efficacy = std::fabs(a.MIA_efficacy - r.MIA_efficacy);
  g.RA = std::fabs(a.RA - r.RA);
  g.TA = std::fabs(a.TA - r.TA);
  g.average = (g.UA + g.MIA_efficacy + g.RA + g.TA) / 4.0;
  return g;
}

double rte_fraction(double method_seconds, double retrain_seconds) {
  return retrain_seconds > 0 ? method_seconds / retrain_seconds : 0.0;
}

nlohmann::json to_json(const Metrics& m) {
  nlohmann::json mia = nlohmann::json::object();
  for (MiaFeature f : all_mia_features())
    mia[to_string(f)] = m.mia.get(f) >= 0 ? nlohmann::json(m.mia.get(f)) : nlohmann::json();
  return {{"UA", m.UA},
          {"MIA_efficacy", m.MIA_efficacy},
          {"RA", m.RA},
          {"TA", m.TA},
          {"MIA", mia},
          {"n_forget", m.n_forget},
          {"n_retain", m.n_retain},
          {"n_test", m.n_test},
          {"n_members", m.n_members},
          {"eval_s", m.seconds}};
}

nlohmann::json to_json(const Gap& g) {
  return {{"gap_UA", g.UA},
          {"gap_MIA_efficacy", g.MIA_efficacy},
          {"gap_RA", g.RA},
          {"gap_TA", g.TA},
          {"gap_average", g.average}};
}

nlohmann::json to_json(const MethodResult& r) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.history)
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_acc", e.train_acc},
                      {"lr", e.lr}, {"seconds", e.seconds}, {"images_per_s", e.images_per_s}});
  return {{"method", r.method},
          {"RTE_s", r.seconds},
          {"RTE_min", r.rte_minutes()},
          {"samples", r.samples},
          {"schedule", r.schedule},
          {"per_epoch", epochs}};
}

}  // namespace lethe::unlearn
