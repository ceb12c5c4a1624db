// The model factory, Normalize, initialisation and metadata shared by ResNet-18 and VGG-16-BN.
#include "models/model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "framework/init.h"
#include "framework/ops.h"
#include "models/resnet.h"
#include "models/vgg.h"

namespace lethe::models {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void check_spec(const ModelSpec& spec) {
  const auto& archs = known_archs();
  LETHE_CHECK(std::find(archs.begin(), archs.end(), spec.arch) != archs.end(), "unknown model '",
              spec.arch, "'; choose one of: ", join(archs));
  LETHE_CHECK(std::isfinite(spec.width) && spec.width > 0, "model width must be a positive ",
              "number, got ", spec.width);
  LETHE_CHECK(spec.num_classes >= 1, "a model needs at least 1 class, got ", spec.num_classes);
  normalization_for(spec.dataset);  // validates the data set name
}

void collect_convs(nn::Module& m, const std::string& prefix,
                   std::vector<std::pair<std::string, nn::Conv2d*>>& out) {
  if (auto* conv = dynamic_cast<nn::Conv2d*>(&m)) out.emplace_back(prefix + "weight", conv);
  for (const auto& [name, child] : m.children()) collect_convs(*child, prefix + name + ".", out);
}

const std::string& require(const io::StMetadata& md, const std::string& key) {
  auto it = md.find(key);
  LETHE_CHECK(it != md.end(), "checkpoint metadata lacks '", key, "', so the model cannot be ",
              "rebuilt; was it written with lethe's model metadata?");
  return it->second;
}

}  // namespace

const std::vector<std::string>& known_archs() {
  static const std::vector<std::string> archs{"resnet18", "vgg16_bn"};
  return archs;
}

int64_t scaled_channels(int64_t c, double width) {
  // nearbyint under the default rounding mode rounds half to even, as Python's round() does
  // (std::round would give 3, not 2, for 64 * 0.0390625 = 2.5).
  const double scaled = std::nearbyint(static_cast<double>(c) * width);
  return std::max<int64_t>(1, static_cast<int64_t>(scaled));
}

// ---- Normalize ------------------------------------------------------------------------------

Normalize::Normalize(const NormStats& stats) {
  mean = register_buffer("mean", Tensor::from_vector<float>(
                                     {stats.mean[0], stats.mean[1], stats.mean[2]}, {3}));
  std = register_buffer("std", Tensor::from_vector<float>(
                                   {stats.std[0], stats.std[1], stats.std[2]}, {3}));
}

Tensor Normalize::forward(const Tensor& x) {
  // float64 only for SynFlow's scoring on a float64-converted model (prune/synflow.h).
  LETHE_CHECK(x.dim() == 4 && x.size(1) == 3 &&
                  (x.dtype() == DType::F32 || x.dtype() == DType::F64),
              "model input must be float32 (or float64) images [N,3,H,W] with values in [0,1], ",
              "got ", x.str());
  // Computed from the buffers at every call, since loading a checkpoint or SynFlow's sign flip
  // may change them in place. The buffers never require gradients, so this records nothing.
  Tensor var = ops::mul(std, std);
  Tensor centre = mean;
  // Eval-mode batch norm never writes its running statistics, so passing the buffers is safe.
  return ops::batch_norm2d(x, Tensor(), Tensor(), centre, var, /*training=*/false,
                           /*momentum=*/0.0, /*eps=*/0.0);
}

// ---- initialisation ---------------------------------------------------------------------------

void init_layers(nn::Module& module, Generator& gen,
                 void (*init_linear)(nn::Linear&, Generator&)) {
  if (auto* conv = dynamic_cast<nn::Conv2d*>(&module)) {
    init::kaiming_normal_(conv->weight, /*use_fan_out=*/true, gen);
    if (conv->bias.defined()) conv->bias.zero_();
  } else if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(&module)) {
    bn->weight.fill_(1.0);
    bn->bias.zero_();
    bn->running_mean.zero_();
    bn->running_var.fill_(1.0);
    bn->num_batches_tracked.zero_();
  } else if (auto* lin = dynamic_cast<nn::Linear*>(&module)) {
    init_linear(*lin, gen);
  }
  for (const auto& [name, child] : module.children()) init_layers(*child, gen, init_linear);
}

void init_linear_default(nn::Linear& layer, Generator& gen) { layer.reset_parameters(gen); }

void init_linear_normal(nn::Linear& layer, Generator& gen) {
  init::normal_(layer.weight, 0.0, 0.01, gen);
  if (layer.bias.defined()) layer.bias.zero_();
}

// ---- factory and metadata -----------------------------------------------------------------------

std::shared_ptr<nn::Module> make_model(const ModelSpec& spec, Generator& gen) {
  check_spec(spec);
  if (spec.arch == "resnet18") return std::make_shared<ResNet18>(spec, gen);
  return std::make_shared<VGG16BN>(spec, gen);
}

std::string format_width(double width) {
  // Shortest round-trip form: "0.25" stays "0.25" and 1.0 becomes "1", so the string a
  // checkpoint records parses back to the very same double.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), width);
  return std::string(buf, res.ptr);
}

io::StMetadata model_metadata(const ModelSpec& spec) {
  return {{"arch", spec.arch},
          {"width", format_width(spec.width)},
          {"num_classes", std::to_string(spec.num_classes)},
          {"dataset", spec.dataset}};
}

ModelSpec spec_from_metadata(const io::StMetadata& metadata) {
  ModelSpec spec;
  spec.arch = require(metadata, "arch");
  spec.dataset = require(metadata, "dataset");
  const std::string& w = require(metadata, "width");
  auto wr = std::from_chars(w.data(), w.data() + w.size(), spec.width);
  LETHE_CHECK(wr.ec == std::errc() && wr.ptr == w.data() + w.size(), "checkpoint metadata ",
              "width '", w, "' is not a number");
  const std::string& c = require(metadata, "num_classes");
  auto cr = std::from_chars(c.data(), c.data() + c.size(), spec.num_classes);
  LETHE_CHECK(cr.ec == std::errc() && cr.ptr == c.data() + c.size(), "checkpoint metadata ",
              "num_classes '", c, "' is not an integer");
  check_spec(spec);
  return spec;
}

std::vector<std::pair<std::string, nn::Conv2d*>> conv_layers(nn::Module& model) {
  std::vector<std::pair<std::string, nn::Conv2d*>> out;
  collect_convs(model, "", out);
  return out;
}

void reset_classifier(nn::Module& model, int64_t num_classes, Generator& gen) {
  auto* m = dynamic_cast<Model*>(&model);
  LETHE_CHECK(m != nullptr, "reset_classifier needs a model built by make_model");
  LETHE_CHECK(num_classes >= 1, "a model needs at least 1 class, got ", num_classes);
  nn::Linear& head = m->head();
  const int64_t in = head.weight.size(1);
  const Device dev = head.weight.device();
  // The module registry and Linear::weight share one TensorImpl; overwriting that impl (rather
  // than the handle) re-shapes the parameter for both, and drops its gradient and history.
  // Initialisers draw on the CPU, so the new tensors move to the old head's device afterwards.
  auto replace = [](Tensor& t, const Tensor& value) {
    *t.impl() = *value.impl();
    t.set_requires_grad(true);
  };
  replace(head.weight, Tensor::zeros({num_classes, in}));
  if (head.bias.defined()) replace(head.bias, Tensor::zeros({num_classes}));
  m->init_head(gen);
  if (!dev.is_cpu()) {
    replace(head.weight, head.weight.to(dev));
    if (head.bias.defined()) replace(head.bias, head.bias.to(dev));
  }
  m->spec_.num_classes = num_classes;
}

}  // namespace lethe::models
