// VGG-16-BN (CIFAR variant): module tree and forward.
#include "models/vgg.h"

#include "framework/ops.h"

namespace lethe::models {

namespace {

// Output channels of each conv; 0 marks a 2x2 max-pool. No pool after the last group: the
// 32x32 input is down to 2x2 after four pools, and the classifier reads that 2x2 map.
constexpr int64_t kCfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0,
                            512, 512, 512, 0, 512, 512, 512};

}  // namespace

VGG16BN::VGG16BN(const ModelSpec& spec, Generator& gen) : Model(spec) {
  normalize = register_module("normalize",
                              std::make_shared<Normalize>(normalization_for(spec.dataset)));
  features = std::make_shared<nn::Sequential>();
  int64_t in = 3;
  for (int64_t v : kCfg) {
    if (v == 0) {
      features->push_back(std::make_shared<nn::MaxPool2d>(2));
      continue;
    }
    const int64_t out = scaled_channels(v, spec.width);
    features->push_back(std::make_shared<nn::Conv2d>(in, out, 3, 1, 1));
    features->push_back(std::make_shared<nn::BatchNorm2d>(out));
    features->push_back(std::make_shared<nn::ReLU>());
    in = out;
  }
  register_module("features", features);
  classifier = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(in * 4, 256), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(256, 256), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(256, spec.num_classes)});
  register_module("classifier", classifier);
  init_layers(*this, gen, init_linear_normal);
}

Tensor VGG16BN::forward(const Tensor& x) {
  LETHE_CHECK(x.dim() == 4 && x.size(2) == 32 && x.size(3) == 32,
              "vgg16_bn expects 32x32 images [N,3,32,32], got ", x.str());
  return classifier->forward(ops::flatten(features->forward(normalize->forward(x))));
}

nn::Linear& VGG16BN::head() { return dynamic_cast<nn::Linear&>((*classifier)[4]); }

}  // namespace lethe::models
