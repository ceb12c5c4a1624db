// The model factory and what ResNet-18 and VGG-16-BN share: the ModelSpec that names a model,
// the Normalize module that starts every forward, the width rule, the initialisation of
// SPEC section 2, checkpoint metadata, and the walks that pruning and transfer learning use.
//
// A model is an nn::Module whose state_dict names are PyTorch's (SPEC section 2) plus the two
// buffers `normalize.mean` / `normalize.std`, so a lethe checkpoint loads into the PyTorch
// classes of scripts/make_golden_models.py and back. Inputs are [N,3,H,W] float32 images in
// [0,1] (before normalisation); outputs are [N,num_classes] logits.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "framework/nn.h"
#include "framework/rng.h"
#include "framework/safetensors.h"

namespace lethe::models {

/// What to build: everything a checkpoint's metadata must record to rebuild the model.
struct ModelSpec {
  std::string arch;  ///< "resnet18" or "vgg16_bn"
  double width = 1.0;
  int64_t num_classes = 10;
  std::string dataset = "cifar10";  ///< picks the normalisation constants
  bool operator==(const ModelSpec&) const = default;
};

/// The architectures make_model knows, in the order error messages list them.
const std::vector<std::string>& known_archs();
/// Per-channel mean and std of a data set's training images: data::normalization_for
/// (SPEC section 1) is the one table of them.
using NormStats = data::Normalization;
using data::normalization_for;

/// Channels of a layer of nominal width `c` at multiplier `width`: max(1, round(c*width)) with
/// Python's round (ties to even), as the PyTorch reference classes compute it.
int64_t scaled_channels(int64_t c, double width);

/// (x - mean[c]) / std[c] over the channels of a [N,3,H,W] input; mean and std are
/// non-trainable buffers so checkpoints carry them.
///
/// It is batch norm in eval mode with running mean = mean, running variance = std^2, eps 0 and
/// no affine: the same formula, on every device batch_norm2d runs on, and differentiable with
/// respect to the input when the input requires gradients (the buffers never get any).
class Normalize : public nn::Module {
 public:
  explicit Normalize(const NormStats& stats);
  Tensor forward(const Tensor& x) override;
  Tensor mean, std;  ///< float32 [3]
};

/// The common base of lethe's models: remembers its spec and exposes its last Linear layer.
class Model : public nn::Module {
 public:
  explicit Model(ModelSpec spec) : spec_(std::move(spec)) {}
  const ModelSpec& spec() const { return spec_; }
  /// The classifier's last Linear layer (ResNet's `fc`, VGG's `classifier.4`).
  virtual nn::Linear& head() = 0;
  /// Draws the head's weights with this architecture's initialiser.
  virtual void init_head(Generator& gen) = 0;

 protected:
  friend void reset_classifier(nn::Module& model, int64_t num_classes, Generator& gen);
  ModelSpec spec_;
};

/// Builds and initialises `spec.arch` (SPEC section 2), drawing every weight from `gen` in
/// named_parameters order, so one seed gives one model. The model starts in train mode on the
/// CPU. Throws lethe::Error naming the valid choices for an unknown arch or data set, a width
/// <= 0 or fewer than 1 class.
std::shared_ptr<nn::Module> make_model(const ModelSpec& spec, Generator& gen);

/// Checkpoint metadata for a model (docs/design.md, "Checkpoints"): `arch`, `width` (the
/// shortest decimal that reads back as the same double, e.g. "0.25", "1"), `num_classes`,
/// `dataset`.
io::StMetadata model_metadata(const ModelSpec& spec);
/// Reads those keys back; throws lethe::Error naming the first missing or malformed key.
ModelSpec spec_from_metadata(const io::StMetadata& metadata);
/// Formats a width as model_metadata does.
std::string format_width(double width);

/// Every Conv2d of `model` with its weight's parameter name ("layer1.0.conv1.weight"), in
/// named_parameters order: the layers pruning masks and sparsity reports cover. The pointers
/// are owned by `model`.
std::vector<std::pair<std::string, nn::Conv2d*>> conv_layers(nn::Module& model);

/// Replaces the classifier head of a model from make_model by a freshly initialised one with
/// `num_classes` outputs (transfer learning). Parameter names stay the same; the head's
/// weight and bias tensors are re-shaped in place, so every handle to them (named_parameters,
/// Linear::weight) sees the new ones, and any optimizer state for them must be rebuilt.
/// Updates the model's spec(). Throws lethe::Error for a module that is not a lethe model.
void reset_classifier(nn::Module& model, int64_t num_classes, Generator& gen);

/// Applies SPEC section 2's initialisation to every layer under `module`, in named_parameters
/// order: Conv2d Kaiming-normal (fan_out, ReLU gain; a bias, if any, 0), BatchNorm2d weight 1
/// and bias 0 with fresh running statistics, Linear by `init_linear`.
void init_layers(nn::Module& module, Generator& gen,
                 void (*init_linear)(nn::Linear&, Generator&));

/// PyTorch's default Linear init (ResNet's fc): Kaiming-uniform a = sqrt(5), bias
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void init_linear_default(nn::Linear& layer, Generator& gen);
/// VGG's Linear init: weight N(0, 0.01^2), bias 0.
void init_linear_normal(nn::Linear& layer, Generator& gen);

}  // namespace lethe::models
