// The metrics of SPEC section 7, in percent:
//   UA  = 100 - accuracy on the forget set      RA = accuracy on the retain set
//   TA  = accuracy on the test set T (forget_set.h: the forgotten class removed class-wise)
//   MIA-Efficacy = the share of forget images the attacker (mia.h) predicts as non-members,
//        the attacker trained on members = the first |T| retain images (all of them if the
//        retain set is smaller) and non-members = T, with the confidence feature; the
//        entropy, correctness and probability features are reported beside it.
//   RTE = the method's own wall time (MethodResult::seconds) in minutes, and as a fraction of
//        Retrain's on the same machine; Gap to Retrain = |method - Retrain| per metric and
//        their mean ("disparity average").
// Every model output here comes from eval mode without augmentation and without gradients.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "data/dataset.h"
#include "framework/nn.h"
#include "unlearn/forget_set.h"
#include "unlearn/method.h"
#include "unlearn/mia.h"

namespace lethe::unlearn {

/// Softmax outputs of `model` on `indices` of `data`: eval mode, no augmentation, no
/// gradients, in the order of `indices`. Restores the model's train/eval mode.
Predictions predict(nn::Module& model, const data::Dataset& data,
                    const std::vector<int64_t>& indices, int64_t batch_size = 500);

/// MIA-Efficacy (percent) per attack feature; -1 where not computed.
struct MiaScores {
  double confidence = -1, entropy = -1, correctness = -1, probability = -1;
  double get(MiaFeature f) const;
  void set(MiaFeature f, double v);
};

struct Metrics {
  double UA = 0, RA = 0, TA = 0, MIA_efficacy = 0;  ///< percent (MIA: confidence feature)
  MiaScores mia;                                    ///< every feature's MIA-Efficacy
  int64_t n_forget = 0, n_retain = 0, n_test = 0;   ///< images behind UA, RA, TA
  int64_t n_members = 0;                            ///< retain images the attacker trained on
  double seconds = 0;                               ///< evaluation wall time (not RTE)
};

struct EvalOptions {
  int64_t batch_size = 500;
  bool mia_variants = true;  ///< also entropy, correctness and probability attacks
  SvmParams svm;
};

/// The metrics from precomputed outputs (forget set, retain set in fs.retain's order, test
/// set T).
Metrics metrics_from_predictions(const Predictions& forget, const Predictions& retain,
                                 const Predictions& test, const EvalOptions& options = {});

/// Evaluates an unlearned model: outputs on fs.forget, fs.retain and T = test_set_indices(test,
/// fs), then metrics_from_predictions.
Metrics evaluate_unlearning(nn::Module& model, const data::Dataset& train,
                            const data::Dataset& test, const ForgetSet& fs,
                            const EvalOptions& options = {});

/// The backdoor attack success rate (SPEC section 9), percent: `test` with the trigger stamped
/// on every image (data/backdoor.h), then the share of the images whose true class is not
/// `target` that `model` classifies as `target`.
double backdoor_asr(nn::Module& model, const data::Dataset& test, int64_t target,
                    int64_t batch_size = 500);

/// |method - Retrain| per metric and their mean.
struct Gap {
  double UA = 0, MIA_efficacy = 0, RA = 0, TA = 0;
  double average = 0;  ///< mean of the four ("disparity average")
};
Gap gap_to_retrain(const Metrics& method, const Metrics& retrain);

/// A method's RTE as a fraction of Retrain's (0 if Retrain took no time).
double rte_fraction(double method_seconds, double retrain_seconds);

/// {"UA", "MIA_efficacy", "RA", "TA", "MIA": {"confidence", ...}, "n_forget", ...,
/// "eval_s"}.
nlohmann::json to_json(const Metrics& m);
/// {"gap_UA", "gap_MIA_efficacy", "gap_RA", "gap_TA", "gap_average"}.
nlohmann::json to_json(const Gap& g);
/// {"method", "RTE_s", "RTE_min", "samples", "schedule", "per_epoch": [...]}.
nlohmann::json to_json(const MethodResult& r);

}  // namespace lethe::unlearn
