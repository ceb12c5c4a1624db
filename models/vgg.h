// VGG-16-BN, CIFAR variant (SPEC section 2): 13 conv3x3-BN-ReLU layers in five groups with a
// 2x2 max-pool after the first four, then a 2x2x(512*width) flatten and a three-layer MLP
// (hidden width 256, not scaled). Names are PyTorch Sequential numbering: `features.{i}`
// (conv, BN, ReLU and max-pool each take an index) and `classifier.{0,2,4}`.
#pragma once

#include <memory>

#include "models/model.h"

namespace lethe::models {

/// VGG-16 with batch norm for 32x32 inputs (the classifier expects a 2x2 feature map).
class VGG16BN : public Model {
 public:
  /// Builds spec.width / spec.num_classes / spec.dataset and initialises from `gen`.
  VGG16BN(const ModelSpec& spec, Generator& gen);
  Tensor forward(const Tensor& x) override;
  nn::Linear& head() override;
  void init_head(Generator& gen) override { init_linear_normal(head(), gen); }

  std::shared_ptr<Normalize> normalize;
  std::shared_ptr<nn::Sequential> features;    ///< conv/BN/ReLU/max-pool, 43 entries
  std::shared_ptr<nn::Sequential> classifier;  ///< Linear-ReLU-Linear-ReLU-Linear
};

}  // namespace lethe::models
