#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "framework/checkpoint.h"
#include "framework/ops.h"

namespace lethe {
namespace {

namespace fs = std::filesystem;

class Tiny : public nn::Module {
 public:
  explicit Tiny(int64_t width) {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(3, width, 3, 1, 1));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(width));
    fc = register_module("fc", std::make_shared<nn::Linear>(width, 2));
  }
  Tensor forward(const Tensor& x) override {
    return fc->forward(ops::global_avg_pool(ops::relu(bn->forward(conv->forward(x)))));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
};

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("lethe_ckpt_" + name)).string();
}

std::vector<char> read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(Checkpoint, RoundTripRestoresEveryTensor) {
  Tiny a(4), b(4);
  Generator g(1);
  a.conv->reset_parameters(g);
  a.fc->reset_parameters(g);
  Tensor x = Tensor::full({2, 3, 4, 4}, 0.3);
  a(x);  // one training forward: running stats and the counter change
  nn::NamedTensors state = a.state_dict();
  Tensor mask = Tensor::full(a.conv->weight.shape(), 1.0, DType::U8);
  mask.data<uint8_t>()[0] = 0;
  state.emplace_back("conv.weight.mask", mask);
  const std::string p = tmp_path("roundtrip.safetensors");
  save_checkpoint(p, state, {{"arch", "tiny"}, {"width", "4"}});

  Checkpoint ck = load_checkpoint(p, b, {{"arch", "tiny"}});
  for (auto& [name, t] : a.state_dict()) EXPECT_EQ(ck.tensors.at(name).shape(), t.shape()) << name;
  EXPECT_EQ(a.conv->weight.to_vector<float>(), b.conv->weight.to_vector<float>());
  EXPECT_EQ(a.bn->running_var.to_vector<float>(), b.bn->running_var.to_vector<float>());
  EXPECT_EQ(b.bn->num_batches_tracked.item(), 1);
  EXPECT_EQ(ck.metadata.at("width"), "4");
  EXPECT_EQ(ck.tensors.at("conv.weight.mask").to_vector<uint8_t>(), mask.to_vector<uint8_t>());
  // PyTorch's dtype for the counter.
  io::SafetensorsFile raw = io::read_safetensors(p);
  EXPECT_EQ(raw.find("bn.num_batches_tracked")->dtype, "I64");
  fs::remove(p);
}

TEST(Checkpoint, MismatchesFailClearlyAndLeaveTheModelUntouched) {
  Tiny a(4), wide(8);
  const std::string p = tmp_path("mismatch.safetensors");
  save_checkpoint(p, a.state_dict(), {{"arch", "tiny"}, {"width", "4"}});
  wide.fc->weight.fill_(3.0);
  try {
    load_checkpoint(p, wide, {{"arch", "tiny"}, {"width", "8"}});
    FAIL() << "width mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("width"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_checkpoint(p, wide), Error);  // shapes differ even without metadata
  for (float v : wide.fc->weight.to_vector<float>()) EXPECT_EQ(v, 3.0f);
  fs::remove(p);
}

TEST(Checkpoint, TruncatedFileFailsAndOverwriteIsAtomic) {
  Tiny a(4);
  const std::string p = tmp_path("trunc.safetensors");
  save_checkpoint(p, a.state_dict(), {{"arch", "tiny"}});
  std::vector<char> bytes = read_all(p);
  const std::string cut = tmp_path("trunc_cut.safetensors");
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  EXPECT_THROW(load_checkpoint(cut, a), Error);
  // A save that fails part-way (an undefined tensor) leaves the old file byte-identical.
  nn::NamedTensors bad = a.state_dict();
  bad.emplace_back("broken", Tensor());
  EXPECT_THROW(save_checkpoint(p, bad, {}), Error);
  EXPECT_EQ(read_all(p), bytes);
  fs::remove(p);
  fs::remove(cut);
}

TEST(Checkpoint, NanWeightsAreRejected) {
  Tiny a(4), b(4);
  a.fc->weight.data<float>()[1] = std::nanf("");
  const std::string p = tmp_path("nan.safetensors");
  save_checkpoint(p, a.state_dict(), {});
  EXPECT_THROW(load_checkpoint(p, b), Error);
  fs::remove(p);
}

}  // namespace
}  // namespace lethe
