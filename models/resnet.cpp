// ResNet-18 (CIFAR variant): module tree and forward.
#include "models/resnet.h"

#include "framework/ops.h"

namespace lethe::models {

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(in, out, 3, stride, 1));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out));
  conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(out, out, 3, 1, 1));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out));
  if (stride != 1 || in != out) {
    downsample = register_module(
        "downsample", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                          std::make_shared<nn::Conv2d>(in, out, 1, stride, 0),
                          std::make_shared<nn::BatchNorm2d>(out)}));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor h = ops::relu(bn1->forward(conv1->forward(x)));
  h = bn2->forward(conv2->forward(h));
  // The residual join and its ReLU in one pass (one activation tensor fewer to keep).
  return ops::add_relu(h, downsample ? downsample->forward(x) : x);
}

ResNet18::ResNet18(const ModelSpec& spec, Generator& gen) : Model(spec) {
  // Registration order is named_parameters order, which is torchvision's (conv1, bn1,
  // layer1..4, fc); normalize holds buffers only, so it shifts no parameter.
  normalize = register_module("normalize",
                              std::make_shared<Normalize>(normalization_for(spec.dataset)));
  const int64_t stem = scaled_channels(64, spec.width);
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, stem, 3, 1, 1));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(stem));
  std::shared_ptr<nn::Sequential>* stages[] = {&layer1, &layer2, &layer3, &layer4};
  const int64_t widths[] = {64, 128, 256, 512};
  int64_t in = stem;
  for (int i = 0; i < 4; ++i) {
    const int64_t out = scaled_channels(widths[i], spec.width);
    auto stage = std::make_shared<nn::Sequential>();
    stage->push_back(std::make_shared<BasicBlock>(in, out, i == 0 ? 1 : 2));
    stage->push_back(std::make_shared<BasicBlock>(out, out, 1));
    *stages[i] = register_module("layer" + std::to_string(i + 1), stage);
    in = out;
  }
  fc = register_module("fc", std::make_shared<nn::Linear>(in, spec.num_classes));
  init_layers(*this, gen, init_linear_default);
}

Tensor ResNet18::forward(const Tensor& x) {
  Tensor h = ops::relu(bn1->forward(conv1->forward(normalize->forward(x))));
  h = layer4->forward(layer3->forward(layer2->forward(layer1->forward(h))));
  return fc->forward(ops::global_avg_pool(h));
}

}  // namespace lethe::models
