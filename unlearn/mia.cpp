// MIA features and the libsvm RBF attacker.
#include "unlearn/mia.h"

#include <libsvm/svm.h>

#include <cmath>
#include <memory>
#include <mutex>

#include "kernels/check.h"

namespace lethe::unlearn {

namespace {

void silent(const char*) {}

/// libsvm's node lists for `fs`: every feature (zeros included, which leaves the RBF kernel
/// unchanged), 1-based indices, each row ended by index -1.
std::vector<svm_node> to_nodes(const FeatureSet& fs) {
  std::vector<svm_node> nodes(static_cast<size_t>(fs.n * (fs.d + 1)));
  for (int64_t i = 0; i < fs.n; ++i) {
    svm_node* row = nodes.data() + i * (fs.d + 1);
    for (int64_t j = 0; j < fs.d; ++j)
      row[j] = {static_cast<int>(j + 1), fs.x[static_cast<size_t>(i * fs.d + j)]};
    row[fs.d] = {-1, 0.0};
  }
  return nodes;
}

struct ModelDeleter {
  void operator()(svm_model* m) const { svm_free_and_destroy_model(&m); }
};

}  // namespace

std::string to_string(MiaFeature f) {
  switch (f) {
    case MiaFeature::Confidence: return "confidence";
    case MiaFeature::Entropy: return "entropy";
    case MiaFeature::Correctness: return "correctness";
    case MiaFeature::Probability: return "probability";
  }
  return "?";
}

const std::vector<MiaFeature>& all_mia_features() {
  static const std::vector<MiaFeature> all = {MiaFeature::Confidence, MiaFeature::Entropy,
                                              MiaFeature::Correctness, MiaFeature::Probability};
  return all;
}

int64_t Predictions::predicted(int64_t i) const {
  const float* row = probs.data() + i * num_classes;
  int64_t best = 0;
  for (int64_t c = 1; c < num_classes; ++c)
    if (row[c] > row[best]) best = c;
  return best;
}

double Predictions::accuracy() const {
  if (n == 0) return 0.0;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += predicted(i) == labels[static_cast<size_t>(i)];
  return 100.0 * static_cast<double>(correct) / static_cast<double>(n);
}

Predictions Predictions::head(int64_t k) const {
  Predictions p;
  p.n = std::min(k, n);
  p.num_classes = num_classes;
  p.probs.assign(probs.begin(), probs.begin() + p.n * num_classes);
  p.labels.assign(labels.begin(), labels.begin() + p.n);
  return p;
}

FeatureSet mia_features(const Predictions& p, MiaFeature feature) {
  FeatureSet fs;
  fs.n = p.n;
  fs.d = feature == MiaFeature::Probability ? p.num_classes : 1;
  fs.x.resize(static_cast<size_t>(fs.n * fs.d));
  for (int64_t i = 0; i < p.n; ++i) {
    const float* row = p.probs.data() + i * p.num_classes;
    const int32_t y = p.labels[static_cast<size_t>(i)];
    double* out = fs.x.data() + i * fs.d;
    switch (feature) {
      case MiaFeature::Confidence:
        out[0] = row[y];
        break;
      case MiaFeature::Entropy: {
        // In float32 like the reference's torch entropy: -sum where(p > 0, p log p, 0).
        float h = 0.0f;
        for (int64_t c = 0; c < p.num_classes; ++c)
          if (row[c] > 0.0f) h += row[c] * std::log(row[c]);
        out[0] = -h;
        break;
      }
      case MiaFeature::Correctness:
        out[0] = p.predicted(i) == y ? 1.0 : 0.0;
        break;
      case MiaFeature::Probability:
        for (int64_t c = 0; c < p.num_classes; ++c) out[c] = row[c];
        break;
    }
  }
  return fs;
}

std::vector<int> svm_membership(const FeatureSet& members, const FeatureSet& nonmembers,
                                const FeatureSet& targets, const SvmParams& params) {
  LETHE_CHECK(members.n > 0 && nonmembers.n > 0, "the MIA needs members and non-members, got ",
              members.n, " and ", nonmembers.n);
  LETHE_CHECK(members.d == nonmembers.d && (targets.n == 0 || targets.d == members.d),
              "the MIA's feature sets have different widths");
  static std::once_flag quiet_once;
  std::call_once(quiet_once, [] { svm_set_print_string_function(silent); });

  // Non-members first: see the header (same class and row order as scikit-learn).
  std::vector<svm_node> non = to_nodes(nonmembers), mem = to_nodes(members);
  const int64_t l = members.n + nonmembers.n;
  std::vector<svm_node*> rows(static_cast<size_t>(l));
  std::vector<double> y(static_cast<size_t>(l));
  for (int64_t i = 0; i < nonmembers.n; ++i) {
    rows[static_cast<size_t>(i)] = non.data() + i * (nonmembers.d + 1);
    y[static_cast<size_t>(i)] = 0.0;
  }
  for (int64_t i = 0; i < members.n; ++i) {
    rows[static_cast<size_t>(nonmembers.n + i)] = mem.data() + i * (members.d + 1);
    y[static_cast<size_t>(nonmembers.n + i)] = 1.0;
  }
  svm_problem prob{};
  prob.l = static_cast<int>(l);
  prob.y = y.data();
  prob.x = rows.data();
  svm_parameter param{};
  param.svm_type = C_SVC;
  param.kernel_type = RBF;
  param.gamma = params.gamma > 0 ? params.gamma : 1.0 / static_cast<double>(members.d);
  param.C = params.C;
  param.eps = params.tol;
  param.cache_size = params.cache_mb;
  param.shrinking = params.shrinking ? 1 : 0;
  param.probability = 0;
  const char* err = svm_check_parameter(&prob, &param);
  LETHE_CHECK(err == nullptr, "libsvm rejected the MIA's parameters: ", err ? err : "");
  std::unique_ptr<svm_model, ModelDeleter> model(svm_train(&prob, &param));
  LETHE_CHECK(model != nullptr, "libsvm failed to train the MIA's SVM");

  std::vector<svm_node> tn = to_nodes(targets);
  std::vector<int> out(static_cast<size_t>(targets.n));
  for (int64_t i = 0; i < targets.n; ++i)
    out[static_cast<size_t>(i)] =
        svm_predict(model.get(), tn.data() + i * (targets.d + 1)) > 0.5 ? 1 : 0;
  return out;
}

double svm_nonmember_share(const FeatureSet& members, const FeatureSet& nonmembers,
                           const FeatureSet& targets, const SvmParams& params) {
  if (targets.n == 0) return 0.0;
  const std::vector<int> m = svm_membership(members, nonmembers, targets, params);
  int64_t non = 0;
  for (int v : m) non += v == 0;
  return static_cast<double>(non) / static_cast<double>(targets.n);
}

}  // namespace lethe::unlearn
