// ResNet-18 and VGG-16-BN as SPEC section 2 fixes them: parameter counts, the exact ordered
// parameter and buffer names, initialisation statistics, determinism for a seed, and a forward
// and backward at batch 2. Width-1 models are built (and initialised) but never run forward,
// which would be slow on a small CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "framework/ops.h"
#include "models/model.h"

namespace lethe::models {
namespace {

std::shared_ptr<nn::Module> build(const std::string& arch, double width, int64_t classes = 10,
                                  uint64_t seed = 0, const std::string& dataset = "cifar10") {
  Generator gen(seed, 0);
  return make_model({arch, width, classes, dataset}, gen);
}

int64_t count_parameters(const nn::Module& m) {
  int64_t n = 0;
  for (const auto& [name, t] : m.named_parameters()) n += t.numel();
  return n;
}

std::vector<std::string> names_of(const nn::NamedTensors& tensors) {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors) out.push_back(name);
  return out;
}

const Tensor& find(const nn::NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error("no tensor " + name);
}

// The counts straight from the layer formulas, independent of the model code.
int64_t resnet18_count(double width, int64_t C) {
  const int64_t w[] = {scaled_channels(64, width), scaled_channels(128, width),
                       scaled_channels(256, width), scaled_channels(512, width)};
  int64_t n = 27 * w[0] + 2 * w[0];
  int64_t in = w[0];
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < 2; ++b) {
      const int64_t out = w[s];
      n += 9 * in * out + 2 * out + 9 * out * out + 2 * out;
      if (in != out || (s > 0 && b == 0)) n += in * out + 2 * out;
      in = out;
    }
  }
  return n + in * C + C;
}

constexpr int64_t kVggCfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0,
                               512, 512, 512, 0, 512, 512, 512};

int64_t vgg16_count(double width, int64_t C) {
  int64_t n = 0, in = 3;
  for (int64_t v : kVggCfg) {
    if (v == 0) continue;
    const int64_t out = scaled_channels(v, width);
    n += 9 * in * out + 2 * out;
    in = out;
  }
  return n + (4 * in * 256 + 256) + (256 * 256 + 256) + (256 * C + C);
}

std::vector<std::string> resnet18_parameter_names() {
  std::vector<std::string> n{"conv1.weight", "bn1.weight", "bn1.bias"};
  for (int l = 1; l <= 4; ++l) {
    for (int b = 0; b < 2; ++b) {
      const std::string p = "layer" + std::to_string(l) + "." + std::to_string(b) + ".";
      for (const char* s : {"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                            "bn2.weight", "bn2.bias"})
        n.push_back(p + s);
      if (l > 1 && b == 0)
        for (const char* s : {"downsample.0.weight", "downsample.1.weight", "downsample.1.bias"})
          n.push_back(p + s);
    }
  }
  n.push_back("fc.weight");
  n.push_back("fc.bias");
  return n;
}

// features.{i}: conv i, BN i+1, ReLU i+2; a max-pool takes one index.
std::vector<int> vgg_conv_indices() {
  std::vector<int> idx;
  int i = 0;
  for (int64_t v : kVggCfg) {
    if (v == 0) {
      ++i;
      continue;
    }
    idx.push_back(i);
    i += 3;
  }
  return idx;
}

TEST(ResNet18, ParameterCountMatchesSpec) {
  EXPECT_EQ(resnet18_count(1.0, 10), 11173962);
  EXPECT_EQ(count_parameters(*build("resnet18", 1.0)), 11173962);
  EXPECT_EQ(count_parameters(*build("resnet18", 0.25)), resnet18_count(0.25, 10));
  EXPECT_EQ(resnet18_count(0.25, 10), 701466);  // 16/32/64/128 channels, as PyTorch counts
  EXPECT_EQ(count_parameters(*build("resnet18", 0.1, 100)), resnet18_count(0.1, 100));
}

TEST(VGG16BN, ParameterCountMatchesSpec) {
  EXPECT_EQ(vgg16_count(1.0, 10), 15311818);
  EXPECT_EQ(count_parameters(*build("vgg16_bn", 1.0)), 15311818);
  EXPECT_EQ(count_parameters(*build("vgg16_bn", 0.25)), vgg16_count(0.25, 10));
  EXPECT_EQ(vgg16_count(0.25, 10), 1121530);  // PyTorch reference classes
  EXPECT_EQ(count_parameters(*build("vgg16_bn", 0.0625, 100)), vgg16_count(0.0625, 100));
}

TEST(ResNet18, ParameterNamesAreTorchvisions) {
  auto m = build("resnet18", 0.25);
  const auto names = names_of(m->named_parameters());
  EXPECT_EQ(names, resnet18_parameter_names());
  ASSERT_EQ(names.size(), 62u);
  EXPECT_EQ(names.front(), "conv1.weight");
  EXPECT_EQ(names[3], "layer1.0.conv1.weight");
  EXPECT_EQ(names[21], "layer2.0.downsample.0.weight");
  EXPECT_EQ(names.back(), "fc.bias");
  // Shapes of the layers whose shape changes.
  const auto params = m->named_parameters();
  EXPECT_EQ(find(params, "conv1.weight").shape(), (Shape{16, 3, 3, 3}));
  EXPECT_EQ(find(params, "layer2.0.conv1.weight").shape(), (Shape{32, 16, 3, 3}));
  EXPECT_EQ(find(params, "layer2.0.downsample.0.weight").shape(), (Shape{32, 16, 1, 1}));
  EXPECT_EQ(find(params, "layer4.1.conv2.weight").shape(), (Shape{128, 128, 3, 3}));
  EXPECT_EQ(find(params, "fc.weight").shape(), (Shape{10, 128}));
}

TEST(ResNet18, BufferNamesStartWithNormalize) {
  auto m = build("resnet18", 0.25);
  const auto names = names_of(m->named_buffers());
  ASSERT_EQ(names.size(), 2u + 3u * 20u);  // normalize + 20 BNs
  EXPECT_EQ(names[0], "normalize.mean");
  EXPECT_EQ(names[1], "normalize.std");
  EXPECT_EQ(names[2], "bn1.running_mean");
  EXPECT_EQ(names[3], "bn1.running_var");
  EXPECT_EQ(names[4], "bn1.num_batches_tracked");
  EXPECT_EQ(names.back(), "layer4.1.bn2.num_batches_tracked");
  for (const auto& [name, t] : m->named_buffers()) EXPECT_FALSE(t.requires_grad()) << name;
  EXPECT_EQ(m->state_dict().size(), 62u + 62u);
}

TEST(VGG16BN, ParameterNamesArePyTorchSequentialNumbering) {
  auto m = build("vgg16_bn", 0.25);
  std::vector<std::string> expect;
  for (int i : vgg_conv_indices()) {
    expect.push_back("features." + std::to_string(i) + ".weight");
    expect.push_back("features." + std::to_string(i + 1) + ".weight");
    expect.push_back("features." + std::to_string(i + 1) + ".bias");
  }
  for (int i : {0, 2, 4}) {
    expect.push_back("classifier." + std::to_string(i) + ".weight");
    expect.push_back("classifier." + std::to_string(i) + ".bias");
  }
  EXPECT_EQ(names_of(m->named_parameters()), expect);
  EXPECT_EQ(vgg_conv_indices(),
            (std::vector<int>{0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40}));
  const auto params = m->named_parameters();
  EXPECT_EQ(find(params, "features.40.weight").shape(), (Shape{128, 128, 3, 3}));
  EXPECT_EQ(find(params, "classifier.0.weight").shape(), (Shape{256, 512}));
  EXPECT_EQ(find(params, "classifier.4.weight").shape(), (Shape{10, 256}));

  const auto buffers = names_of(m->named_buffers());
  ASSERT_EQ(buffers.size(), 2u + 3u * 13u);
  EXPECT_EQ(buffers[0], "normalize.mean");
  EXPECT_EQ(buffers[1], "normalize.std");
  EXPECT_EQ(buffers[2], "features.1.running_mean");
  EXPECT_EQ(buffers.back(), "features.41.num_batches_tracked");
}

TEST(Models, NormalizeBuffersHoldTheDataSetsConstants) {
  for (const std::string arch : {"resnet18", "vgg16_bn"}) {
    auto c10 = build(arch, 0.125, 10, 0, "cifar10")->named_buffers();
    EXPECT_EQ(find(c10, "normalize.mean").to_vector<float>(),
              (std::vector<float>{0.4914f, 0.4822f, 0.4465f}));
    EXPECT_EQ(find(c10, "normalize.std").to_vector<float>(),
              (std::vector<float>{0.2470f, 0.2435f, 0.2616f}));
    auto c100 = build(arch, 0.125, 100, 0, "cifar100")->named_buffers();
    EXPECT_EQ(find(c100, "normalize.mean").to_vector<float>(),
              (std::vector<float>{0.5071f, 0.4866f, 0.4409f}));
    EXPECT_EQ(find(c100, "normalize.std").to_vector<float>(),
              (std::vector<float>{0.2673f, 0.2564f, 0.2762f}));
  }
}

struct Moments {
  double mean = 0, std = 0, max_abs = 0;
};

Moments moments(const Tensor& t) {
  const auto v = t.to_vector<float>();
  Moments m;
  for (float x : v) {
    m.mean += x;
    m.max_abs = std::max(m.max_abs, std::fabs(static_cast<double>(x)));
  }
  m.mean /= static_cast<double>(v.size());
  for (float x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(m.std / static_cast<double>(v.size()));
  return m;
}

// Conv weights N(0, 2/fan_out): the sample std within 5 standard errors (sd of a normal sample's
// std is about sigma/sqrt(2n)), the mean within 5 standard errors of 0. BN 1 / 0.
void check_conv_and_bn_init(const nn::Module& m) {
  for (const auto& [name, t] : m.named_parameters()) {
    if (t.dim() == 4) {
      const double fan_out = static_cast<double>(t.numel() / t.size(1));
      const double want = std::sqrt(2.0 / fan_out);
      const double n = static_cast<double>(t.numel());
      const Moments mo = moments(t);
      EXPECT_NEAR(mo.std / want, 1.0, 5.0 / std::sqrt(2.0 * n)) << name;
      EXPECT_NEAR(mo.mean, 0.0, 5.0 * want / std::sqrt(n)) << name;
    } else if (name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos ||
               name.rfind("features.", 0) == 0) {
      const auto v = t.to_vector<float>();
      const float want = name.ends_with(".weight") ? 1.0f : 0.0f;
      for (float x : v) ASSERT_EQ(x, want) << name;
    }
  }
}

TEST(ResNet18, InitStatisticsFollowSpec) {
  auto m = build("resnet18", 1.0, 10, 3);
  check_conv_and_bn_init(*m);
  const auto params = m->named_parameters();
  // fc: PyTorch's default, U(-1/sqrt(512), 1/sqrt(512)) for weight and bias.
  const double bound = 1.0 / std::sqrt(512.0);
  const Moments w = moments(find(params, "fc.weight"));
  EXPECT_LE(w.max_abs, bound);
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), 0.05 * bound);
  const Moments b = moments(find(params, "fc.bias"));
  EXPECT_LE(b.max_abs, bound);
  EXPECT_GT(b.max_abs, 0.0);
  for (const auto& [name, t] : m->named_buffers()) {
    if (name.ends_with("running_mean")) {
      EXPECT_EQ(moments(t).max_abs, 0.0) << name;
    } else if (name.ends_with("running_var")) {
      EXPECT_EQ(moments(t).mean, 1.0) << name;
    }
  }
}

TEST(VGG16BN, InitStatisticsFollowSpec) {
  auto m = build("vgg16_bn", 1.0, 10, 3);
  check_conv_and_bn_init(*m);
  const auto params = m->named_parameters();
  for (int i : {0, 2, 4}) {
    const std::string p = "classifier." + std::to_string(i);
    const Tensor& w = find(params, p + ".weight");
    const double n = static_cast<double>(w.numel());
    EXPECT_NEAR(moments(w).std, 0.01, 0.01 * 5.0 / std::sqrt(2.0 * n)) << p;
    EXPECT_EQ(moments(find(params, p + ".bias")).max_abs, 0.0) << p;
  }
}

TEST(Models, InitIsDeterministicForASeed) {
  for (const std::string arch : {"resnet18", "vgg16_bn"}) {
    auto a = build(arch, 0.25, 10, 11)->state_dict();
    auto b = build(arch, 0.25, 10, 11)->state_dict();
    auto c = build(arch, 0.25, 10, 12)->state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].first, b[i].first);
      ASSERT_EQ(a[i].second.nbytes(), b[i].second.nbytes());
      EXPECT_EQ(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()),
                0)
          << arch << " " << a[i].first;
    }
    // A different seed changes every conv (checked on the first one).
    EXPECT_NE(a[0].second.to_vector<float>(), c[0].second.to_vector<float>()) << arch;
  }
}

TEST(Models, ForwardGivesLogitsPerImage) {
  const Tensor x = Tensor::full({2, 3, 32, 32}, 0.5);
  for (const auto& [arch, classes] :
       std::vector<std::pair<std::string, int64_t>>{{"resnet18", 10}, {"vgg16_bn", 100}}) {
    auto m = build(arch, 0.25, classes);
    m->eval();
    const Tensor y = m->forward(x);
    EXPECT_EQ(y.shape(), (Shape{2, classes})) << arch;
    for (float v : y.to_vector<float>()) ASSERT_TRUE(std::isfinite(v)) << arch;
  }
}

TEST(Models, TrainBackwardFillsEveryGradient) {
  Tensor x = Tensor::empty({2, 3, 32, 32});
  Generator(5, 0).fill_uniform(x.data<float>(), x.numel());
  const Tensor labels = Tensor::from_vector<int32_t>({3, 7}, {2});
  for (const std::string arch : {"resnet18", "vgg16_bn"}) {
    auto m = build(arch, 0.25);
    m->train();
    ops::cross_entropy(m->forward(x), labels).backward();
    for (const auto& [name, p] : m->named_parameters()) {
      const Tensor g = p.grad();
      ASSERT_TRUE(g.defined()) << arch << " " << name;
      ASSERT_EQ(g.shape(), p.shape()) << name;
      double max_abs = 0;
      for (float v : g.to_vector<float>()) {
        ASSERT_TRUE(std::isfinite(v)) << name;
        max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
      }
      EXPECT_GT(max_abs, 0.0) << arch << " " << name;
    }
    // One train-mode forward: every BN counted one batch.
    for (const auto& [name, b] : m->named_buffers()) {
      if (name.ends_with("num_batches_tracked")) {
        EXPECT_EQ(b.item(), 1.0) << name;
      }
    }
  }
}

}  // namespace
}  // namespace lethe::models
