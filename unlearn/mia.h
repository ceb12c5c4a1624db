// The membership-inference attack behind MIA-Efficacy (SPEC section 7): an RBF SVM with C = 3,
// gamma = 1/n_features and no feature scaling, as scikit-learn's SVC(C=3, gamma='auto') of the
// reference, trained with libsvm (the library SVC wraps) on members (label 1) vs non-members
// (label 0), then asked about the forget images.
//
// Features per sample, from the model's softmax probabilities p (eval mode, no augmentation):
//   confidence   p[label]                        (the paper's MIA-Efficacy)
//   entropy      -sum_c p_c log p_c  (0 log 0 = 0)
//   correctness  1 if argmax p == label else 0    (the reference's "correctness")
//   probability  all of p (C features)
//
// Agreement with scikit-learn: libsvm orders the two classes by first appearance and groups
// the training rows by class; scikit-learn's bundled libsvm sorts the class labels instead.
// Feeding the non-members (label 0) first gives both the same class order and the same row
// order, so the solver takes the same path (tests/unlearn/golden: same predictions to within
// one sample).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::unlearn {

enum class MiaFeature { Confidence, Entropy, Correctness, Probability };
/// "confidence", "entropy", "correctness", "probability"
std::string to_string(MiaFeature f);
/// Every feature, in the order above.
const std::vector<MiaFeature>& all_mia_features();

/// A model's outputs on a list of images: softmax rows and true labels.
struct Predictions {
  int64_t n = 0, num_classes = 0;
  std::vector<float> probs;     ///< [n, num_classes], row-major
  std::vector<int32_t> labels;  ///< [n]
  /// The predicted class of row i (the first maximum, as argmax).
  int64_t predicted(int64_t i) const;
  /// Percentage of rows whose prediction equals the label (0 for n = 0).
  double accuracy() const;
  /// The first k rows (all if k >= n).
  Predictions head(int64_t k) const;
};

/// n rows of d feature values, row-major.
struct FeatureSet {
  int64_t n = 0, d = 0;
  std::vector<double> x;
};

/// The MIA features of every row of `p`.
FeatureSet mia_features(const Predictions& p, MiaFeature feature);

/// The attacker's hyper-parameters (scikit-learn SVC defaults where SPEC is silent).
struct SvmParams {
  double C = 3.0;
  double gamma = 0.0;       ///< <= 0: 1/n_features (gamma='auto')
  double tol = 1e-3;        ///< stopping tolerance (SVC's tol, libsvm's eps)
  double cache_mb = 200.0;  ///< kernel cache (SVC's cache_size)
  bool shrinking = true;
};

/// Trains the RBF SVM on `members` (label 1) and `nonmembers` (label 0) and returns its
/// prediction (1: member, 0: non-member) for every row of `targets`.
std::vector<int> svm_membership(const FeatureSet& members, const FeatureSet& nonmembers,
                                const FeatureSet& targets, const SvmParams& params = {});

/// The share (0..1) of `targets` the SVM predicts as non-members.
double svm_nonmember_share(const FeatureSet& members, const FeatureSet& nonmembers,
                           const FeatureSet& targets, const SvmParams& params = {});

}  // namespace lethe::unlearn
