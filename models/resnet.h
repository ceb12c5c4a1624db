// ResNet-18, CIFAR variant (SPEC section 2): a 3x3 stride-1 stem without max-pool, four stages
// of two BasicBlocks (widths 64/128/256/512 times the width multiplier, strides 1/2/2/2),
// global average pooling and one Linear layer. Parameter names are torchvision's:
// conv1, bn1, layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2}, layer{2,3,4}.0.downsample.{0,1}, fc.
#pragma once

#include <memory>

#include "models/model.h"

namespace lethe::models {

/// conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or a 1x1 conv + BN named
/// `downsample.0` / `downsample.1` where stride or width changes), then ReLU of the sum.
class BasicBlock : public nn::Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  ///< null for an identity shortcut
};

/// ResNet-18 for 32x32 inputs (any size >= 8x8 works thanks to the global pool).
class ResNet18 : public Model {
 public:
  /// Builds spec.width / spec.num_classes / spec.dataset and initialises from `gen`.
  ResNet18(const ModelSpec& spec, Generator& gen);
  Tensor forward(const Tensor& x) override;
  nn::Linear& head() override { return *fc; }
  void init_head(Generator& gen) override { init_linear_default(*fc, gen); }

  std::shared_ptr<Normalize> normalize;
  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<nn::Linear> fc;
};

}  // namespace lethe::models
