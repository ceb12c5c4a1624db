// Forgetting scenarios (SPEC section 5): which training images a method must forget, which it
// may keep (retain = the training split minus the forget set), and the test set T that TA and
// the MIA use (the whole test set, or all but the forgotten class).
//
// A scenario is written as a short spec string (the --forget flag of `lethe unlearn`):
//   class:C      every training-split image of class C; T then excludes class C
//   random:N     N images drawn uniformly from the training split with
//                Generator(seed, stream 3) (docs/design.md: forget-set sampling)
//   file:PATH    original indices, one per line (blank lines and '#' comments allowed)
// Indices always mean original positions in the training files (0..49999 for CIFAR), as
// everywhere in lethe. Forget and retain lists are sorted ascending, so "the first |T| retain
// samples" the MIA trains on (metrics.h) are the lowest-indexed retained images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace lethe::unlearn {

/// The three kinds of forgetting scenario.
enum class ForgetKind { Class, Random, File };

/// A parsed --forget value.
struct ForgetSpec {
  ForgetKind kind = ForgetKind::Random;
  int64_t cls = -1;    ///< class:C
  int64_t count = 0;   ///< random:N
  std::string path;    ///< file:PATH
  /// The spec string it was parsed from ("class:0", "random:4500", "file:forget.txt").
  std::string str() const;
  /// "class", "random" or "file".
  std::string kind_name() const;
};

/// Parses "class:C", "random:N" or "file:PATH"; anything else throws lethe::Error naming the
/// valid forms. Ranges are checked later, against the data (make_forget_set).
ForgetSpec parse_forget_spec(const std::string& text);

/// A concrete scenario: the forget and retain lists and what the test set must leave out.
struct ForgetSet {
  ForgetSpec spec;
  std::vector<int64_t> forget;  ///< original indices, sorted ascending, non-empty
  std::vector<int64_t> retain;  ///< the training split minus forget, sorted ascending
  int64_t forgotten_class = -1; ///< class-wise forgetting: the class; otherwise -1
  int64_t num_classes = 0;      ///< classes of the data set
  bool class_wise() const { return forgotten_class >= 0; }
};

/// Builds the scenario `spec` over the training split `train_split` (original indices into
/// `train`, e.g. DataBundle::train_idx). `seed` draws random:N. Throws lethe::Error with one
/// clear sentence for a class out of range, N out of 1..|split|-1, a bad index file (naming the
/// file and line: not an integer, out of range, not in the training split, a duplicate), an
/// empty forget set or an empty retain set.
ForgetSet make_forget_set(const ForgetSpec& spec, const data::Dataset& train,
                          const std::vector<int64_t>& train_split, uint64_t seed);
/// parse_forget_spec + make_forget_set.
ForgetSet make_forget_set(const std::string& spec, const data::Dataset& train,
                          const std::vector<int64_t>& train_split, uint64_t seed);

/// The test set T of SPEC section 5: every index of `test`, except the forgotten class's
/// images for class-wise forgetting.
std::vector<int64_t> test_set_indices(const data::Dataset& test, const ForgetSet& fs);

/// Writes `indices` one per line (the format file:PATH reads back).
void write_index_file(const std::string& path, const std::vector<int64_t>& indices);

}  // namespace lethe::unlearn
