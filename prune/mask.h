// Pruning masks: one uint8 0/1 tensor per conv weight, keyed by parameter name, plus the
// sparsity report (SPEC section 4: "sparsity = the fraction of zero conv weights").
//
// Which weights are prunable: every Conv2d weight of the model (models::conv_layers: the first
// conv and the 1x1 shortcuts included). BN, biases and every Linear stay dense. The names are
// named_parameters() names, so a MaskSet is exactly the `masks` argument of train::fit and is
// stored in checkpoints as "<param>.mask" (docs/design.md, "Checkpoints").
//
// A mask acts in two places, both needed (docs/design.md, "Autograd"): Conv2d::set_mask makes
// the forward see w * mask (so the gradient of a pruned weight is 0), and SGD::set_mask (done by
// train::fit for the MaskSet it is given) re-applies it after every step so momentum and weight
// decay cannot revive a pruned weight. apply_masks() does the first and zeroes the pruned
// weights in place; the caller passes the same MaskSet to train::fit for the second.
//
// Flat order: methods that rank weights globally (prune/select.h) see all conv weights as one
// vector, the layers in named_parameters order and each layer row-major. "Ties broken by index"
// means by this global flattened index.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "framework/checkpoint.h"
#include "framework/nn.h"

namespace lethe::prune {

/// Parameter name ("layer1.0.conv1.weight") -> uint8 0/1 mask of that weight's shape, on the
/// weight's device. 1 keeps the weight, 0 prunes it.
using MaskSet = std::map<std::string, Tensor>;

/// The prunable weights of a model: (parameter name, Conv2d) in named_parameters order.
using ConvList = std::vector<std::pair<std::string, nn::Conv2d*>>;
/// Every Conv2d of `model` (models::conv_layers); throws if the model has none.
ConvList prunable_layers(nn::Module& model);

/// Checkpoint tensor name of a parameter's mask: "<param>.mask".
std::string mask_tensor_name(const std::string& param);

/// An all-ones (nothing pruned) mask for every conv weight of `model`.
MaskSet all_ones_masks(nn::Module& model);

/// The same masks on `device` (copies only those elsewhere).
MaskSet masks_to(const MaskSet& masks, Device device);

/// Installs exactly `masks` on `model`: Conv2d::set_mask for every conv weight named in it
/// (convs not named get no mask) and zeroes the pruned weights in place, so the stored weights,
/// the forward and any checkpoint agree. Validates names, dtype, shape and 0/1 values first
/// (nothing is changed on an error).
void apply_masks(nn::Module& model, const MaskSet& masks);

/// Validates `masks` against `model`: every name is a conv weight of it, every mask is uint8 of
/// the weight's shape holding only 0 and 1. `origin` (a file name, "synflow", ...) starts the
/// error sentence.
void validate_masks(nn::Module& model, const MaskSet& masks, const std::string& origin);

/// The masks stored in a checkpoint (tensors named "<param>.mask"), validated against `model`
/// (validate_masks). Empty for a dense checkpoint with no masks. Conv weights without a mask
/// tensor stay dense. The masks are on the device of their weights in `model`. `path` is only
/// used in error messages.
MaskSet masks_from_checkpoint(const Checkpoint& ck, nn::Module& model, const std::string& path);
/// read_checkpoint(path) then masks_from_checkpoint.
MaskSet read_masks(const std::string& path, nn::Module& model);

/// Writes `masks` alone (as "<param>.mask" tensors) with `metadata` to `path`, atomically.
void save_masks(const std::string& path, const MaskSet& masks, const io::StMetadata& metadata);

/// Number of conv weights of `model` (the denominator of the sparsity).
int64_t prunable_count(nn::Module& model);

// ---- flat views (global ranking) -------------------------------------------------------------

/// The masks of every conv weight concatenated in flat order (layers without a mask count as
/// all ones).
std::vector<uint8_t> flatten_masks(nn::Module& model, const MaskSet& masks);
/// Splits a flat 0/1 vector into one mask per conv weight (on each weight's device).
MaskSet unflatten_masks(nn::Module& model, const std::vector<uint8_t>& flat);
/// |w| of every conv weight concatenated in flat order, as double (float32 values are exact).
std::vector<double> flat_abs_weights(nn::Module& model);

// ---- sparsity report -----------------------------------------------------------------------

/// zeros / total, 0 for an empty count.
inline double fraction(int64_t zeros, int64_t total) {
  return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
}

struct LayerSparsity {
  std::string name;  ///< parameter name
  Shape shape;
  int64_t total = 0, zeros = 0;
  /// The conv path its last forward took: "dense", "sparse" (the sparse kernels) or "-"
  /// (not run since the model was built).
  std::string path = "-";
  double sparsity() const { return fraction(zeros, total); }
};

struct SparsityReport {
  std::vector<LayerSparsity> layers;  ///< named_parameters order
  int64_t total = 0, zeros = 0;
  double sparsity() const { return fraction(zeros, total); }
};

/// Counts the zero conv weights of `model` (stored values; with masks applied a pruned weight
/// is stored as 0), overall and per layer.
SparsityReport sparsity_report(nn::Module& model);
/// A printable table: one line per layer (name, shape, zeros/total, %, path), then the total.
std::string format_sparsity(const SparsityReport& report);
/// {"overall": {"total", "zeros", "sparsity"}, "layers": [{"name", "shape", "total", "zeros",
/// "sparsity", "path"}, ...]}, sparsity as a fraction in [0, 1].
nlohmann::json sparsity_json(const SparsityReport& report);

}  // namespace lethe::prune
