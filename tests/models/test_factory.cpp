// The pieces around the architectures: the width rule, Normalize, make_model's validation,
// checkpoint metadata, conv_layers (what pruning walks) and reset_classifier (transfer).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/model.h"
#include "models/resnet.h"

namespace lethe::models {
namespace {

std::shared_ptr<nn::Module> build(const std::string& arch, double width, int64_t classes = 10) {
  Generator gen(0, 0);
  return make_model({arch, width, classes, "cifar10"}, gen);
}

// Runs f and returns the Error's message ("" when nothing was thrown).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ScaledChannels, RoundsLikePython) {
  EXPECT_EQ(scaled_channels(64, 1.0), 64);
  EXPECT_EQ(scaled_channels(64, 0.25), 16);
  EXPECT_EQ(scaled_channels(64, 0.1), 6);
  EXPECT_EQ(scaled_channels(128, 0.1), 13);
  EXPECT_EQ(scaled_channels(512, 0.1), 51);
  EXPECT_EQ(scaled_channels(64, 0.0390625), 2);   // 2.5: Python's round gives 2 (ties to even)
  EXPECT_EQ(scaled_channels(192, 0.0390625), 8);  // 7.5 -> 8
  EXPECT_EQ(scaled_channels(64, 0.001), 1);       // never 0 channels
}

TEST(Normalize, ComputesPerChannelStandardScoreAndItsInputGradient) {
  Normalize norm(normalization_for("cifar10"));
  const std::vector<float> mean{0.4914f, 0.4822f, 0.4465f}, std{0.2470f, 0.2435f, 0.2616f};
  Tensor x = Tensor::empty({2, 3, 4, 5});
  Generator(1, 0).fill_uniform(x.data<float>(), x.numel());
  x.set_requires_grad(true);
  const Tensor y = norm(x);
  const auto xv = x.to_vector<float>(), yv = y.to_vector<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 20) % 3;
    const double want = (static_cast<double>(xv[i]) - mean[c]) / std[c];
    ASSERT_NEAR(yv[i], want, 1e-6 * (1.0 + std::fabs(want))) << i;
  }
  ops::sum(y).backward();
  const auto g = x.grad().to_vector<float>();
  for (int64_t i = 0; i < x.numel(); ++i)
    ASSERT_NEAR(g[i], 1.0 / std[(i / 20) % 3], 1e-5) << i;
  // The buffers never become trainable, and normalisation ignores train mode.
  EXPECT_FALSE(norm.mean.requires_grad());
  norm.train();
  EXPECT_EQ(norm(x.detach()).to_vector<float>(), yv);
}

TEST(Normalize, RejectsInputsThatAreNotRgbImages) {
  Normalize norm(normalization_for("cifar100"));
  EXPECT_NE(error_of([&] { norm(Tensor::zeros({2, 1, 8, 8})); }).find("[N,3,H,W]"),
            std::string::npos);
}

TEST(MakeModel, RejectsBadSpecsWithTheValidChoices) {
  Generator gen(0, 0);
  const std::string arch = error_of([&] { make_model({"resnet50", 1.0, 10, "cifar10"}, gen); });
  EXPECT_NE(arch.find("resnet50"), std::string::npos) << arch;
  EXPECT_NE(arch.find("resnet18, vgg16_bn"), std::string::npos) << arch;
  const std::string data = error_of([&] { make_model({"resnet18", 1.0, 10, "mnist"}, gen); });
  EXPECT_NE(data.find("cifar10, cifar100"), std::string::npos) << data;
  EXPECT_NE(error_of([&] { make_model({"vgg16_bn", 0.0, 10, "cifar10"}, gen); }), "");
  EXPECT_NE(error_of([&] { make_model({"vgg16_bn", 1.0, 0, "cifar10"}, gen); }), "");
}

TEST(Metadata, RoundTripsTheSpec) {
  for (double width : {1.0, 0.25, 0.1, 0.0625, 0.3}) {
    const ModelSpec spec{"vgg16_bn", width, 100, "cifar100"};
    const io::StMetadata md = model_metadata(spec);
    EXPECT_EQ(md.at("arch"), "vgg16_bn");
    EXPECT_EQ(md.at("num_classes"), "100");
    EXPECT_EQ(md.at("dataset"), "cifar100");
    EXPECT_EQ(spec_from_metadata(md), spec) << md.at("width");
  }
  EXPECT_EQ(model_metadata({"resnet18", 0.25, 10, "cifar10"}).at("width"), "0.25");
  EXPECT_EQ(model_metadata({"resnet18", 1.0, 10, "cifar10"}).at("width"), "1");
  EXPECT_EQ(format_width(0.1), "0.1");
}

TEST(Metadata, MissingOrMalformedKeysAreClearErrors) {
  io::StMetadata md = model_metadata({"resnet18", 0.5, 10, "cifar10"});
  for (const std::string key : {"arch", "width", "num_classes", "dataset"}) {
    io::StMetadata partial = md;
    partial.erase(key);
    const std::string msg = error_of([&] { spec_from_metadata(partial); });
    EXPECT_NE(msg.find("lacks '" + key + "'"), std::string::npos) << msg;
  }
  md["width"] = "wide";
  EXPECT_NE(error_of([&] { spec_from_metadata(md); }).find("'wide'"), std::string::npos);
  md["width"] = "0.5";
  md["num_classes"] = "10x";
  EXPECT_NE(error_of([&] { spec_from_metadata(md); }).find("'10x'"), std::string::npos);
  md["num_classes"] = "10";
  md["arch"] = "lenet";
  EXPECT_NE(error_of([&] { spec_from_metadata(md); }).find("resnet18, vgg16_bn"),
            std::string::npos);
}

TEST(ConvLayers, ListsEveryConvInParameterOrder) {
  auto resnet = build("resnet18", 0.25);
  const auto convs = conv_layers(*resnet);
  ASSERT_EQ(convs.size(), 20u);
  EXPECT_EQ(convs[0].first, "conv1.weight");
  EXPECT_EQ(convs[1].first, "layer1.0.conv1.weight");
  EXPECT_EQ(convs[7].first, "layer2.0.downsample.0.weight");
  EXPECT_EQ(convs.back().first, "layer4.1.conv2.weight");
  // Exactly the 4-D parameters, same order, same tensors.
  std::vector<std::pair<std::string, Tensor>> four_d;
  for (const auto& [name, t] : resnet->named_parameters())
    if (t.dim() == 4) four_d.emplace_back(name, t);
  ASSERT_EQ(four_d.size(), convs.size());
  for (size_t i = 0; i < convs.size(); ++i) {
    EXPECT_EQ(convs[i].first, four_d[i].first);
    EXPECT_TRUE(convs[i].second->weight.same(four_d[i].second)) << convs[i].first;
  }

  auto vgg = build("vgg16_bn", 0.125);
  std::vector<std::string> names;
  for (const auto& [name, conv] : conv_layers(*vgg)) names.push_back(name);
  std::vector<std::string> expect;
  for (int i : {0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40})
    expect.push_back("features." + std::to_string(i) + ".weight");
  EXPECT_EQ(names, expect);
}

TEST(ConvLayers, MasksSetThroughThemPruneTheForward) {
  auto m = build("resnet18", 0.125);
  m->eval();
  const Tensor x = Tensor::full({1, 3, 16, 16}, 0.3);
  const auto before = m->forward(x).to_vector<float>();
  // Zeroing the stem removes all input information: every image gives the same logits, those
  // of the bias path, so a different input gives the same output.
  auto stem = conv_layers(*m)[0].second;
  stem->set_mask(Tensor::zeros(stem->weight.shape(), DType::U8));
  const auto masked = m->forward(x).to_vector<float>();
  EXPECT_NE(masked, before);
  EXPECT_EQ(m->forward(Tensor::full({1, 3, 16, 16}, 0.9)).to_vector<float>(), masked);
}

TEST(ResetClassifier, ReplacesTheHeadKeepingNames) {
  for (const std::string arch : {"resnet18", "vgg16_bn"}) {
    auto m = build(arch, 0.125);
    const auto names_before = m->named_parameters();
    Generator gen(9, 0);
    reset_classifier(*m, 5, gen);
    const auto params = m->named_parameters();
    ASSERT_EQ(params.size(), names_before.size());
    const auto& [wname, w] = params[params.size() - 2];
    const auto& [bname, b] = params.back();
    EXPECT_EQ(wname, arch == "resnet18" ? "fc.weight" : "classifier.4.weight");
    EXPECT_EQ(w.shape()[0], 5);
    EXPECT_EQ(b.shape(), (Shape{5}));
    EXPECT_TRUE(w.requires_grad());
    EXPECT_TRUE(w.same(dynamic_cast<Model&>(*m).head().weight));
    EXPECT_EQ(dynamic_cast<Model&>(*m).spec().num_classes, 5);
    EXPECT_EQ(model_metadata(dynamic_cast<Model&>(*m).spec()).at("num_classes"), "5");
    m->eval();
    EXPECT_EQ(m->forward(Tensor::full({2, 3, 32, 32}, 0.5)).shape(), (Shape{2, 5}));
    // The new head trains: its gradient arrives.
    m->train();
    ops::cross_entropy(m->forward(Tensor::full({2, 3, 32, 32}, 0.5)),
                       Tensor::from_vector<int32_t>({0, 4}, {2}))
        .backward();
    EXPECT_TRUE(w.grad().defined());
  }
  nn::Linear plain(3, 2);
  Generator gen(0, 0);
  EXPECT_NE(error_of([&] { reset_classifier(plain, 5, gen); }), "");
}

}  // namespace
}  // namespace lethe::models
