// `lethe unlearn` end to end on the built-in synthetic data: a tiny dense model trained with
// `lethe train`, a pruned copy of it, every method, the files written, and one clear error per
// bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "framework/checkpoint.h"
#include "models/trainer.h"
#include "prune/mask.h"
#include "unlearn_test_util.h"

namespace lethe {
namespace {

using testing::UnlearnTempDir;

/// One tiny dense checkpoint (and a 50%-pruned copy) shared by the tests of this file.
class LetheUnlearn : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new UnlearnTempDir();
    ASSERT_EQ(cli::cmd_train({"--dataset", "synthetic", "--width", "0.0625", "--epochs", "2",
                              "--train-limit", "300", "--batch-size", "50", "--lr", "0.05",
                              "--out", *dir_ / "dense", "--quiet", "--threads", "2",
                              "--snapshot-epoch", "0"}),
              0);
    // A pruned copy: the dense weights with a seeded random 50% mask on every conv.
    const std::string dense = *dir_ / "dense/last.safetensors";
    const Checkpoint peek = read_checkpoint(dense);
    const models::ModelSpec spec = models::spec_from_metadata(peek.metadata);
    Generator g(1, 0);
    auto model = models::make_model(spec, g);
    load_checkpoint(dense, *model, models::model_metadata(spec));
    prune::MaskSet masks;
    Generator mg(4, 5);
    for (const auto& [name, conv] : prune::prunable_layers(*model)) {
      Tensor m = Tensor::empty(conv->weight.shape(), DType::U8);
      mg.fill_bernoulli(m.data<uint8_t>(), m.numel(), 0.5);
      masks[name] = m;
    }
    prune::apply_masks(*model, masks);
    train::save_training_checkpoint(*dir_ / "pruned.safetensors", *model, nullptr, masks,
                                    peek.metadata);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static nlohmann::json results(const std::string& out) {
    std::ifstream f(out + "/results.json");
    return nlohmann::json::parse(f);
  }
  static UnlearnTempDir* dir_;
};
UnlearnTempDir* LetheUnlearn::dir_ = nullptr;

TEST_F(LetheUnlearn, EveryMethodRunsAndWritesItsResults) {
  const std::string dense = *dir_ / "dense/last.safetensors";
  for (const std::string method : {"retrain", "ft", "ga", "rl", "ff", "iu", "l1"}) {
    SCOPED_TRACE(method);
    const std::string out = *dir_ / ("out-" + method);
    std::vector<std::string> args = {"--model", dense, "--method", method, "--forget",
                                     method == "ga" ? "random:40" : "class:2", "--out", out,
                                     "--quiet", "--threads", "2", "--seed", "3"};
    if (unlearn::is_training_method(method))
      for (const char* a : {"--epochs", "1", "--batch-size", "64"}) args.push_back(a);
    if (method == "retrain") for (const char* a : {"--lr-schedule", "constant"}) args.push_back(a);
    if (method == "iu") for (const char* a : {"--woodfisher-n", "30"}) args.push_back(a);
    if (method == "l1") for (const char* a : {"--l1-schedule", "growth"}) args.push_back(a);
    ASSERT_EQ(cli::cmd_unlearn(args), 0);
    const nlohmann::json j = results(out);
    EXPECT_EQ(j["command"], "lethe unlearn");
    EXPECT_EQ(j["method"], method);
    for (const char* k : {"UA", "MIA_efficacy", "RA", "TA", "RTE_min"}) {
      ASSERT_TRUE(j["metrics"][k].is_number()) << k;
      EXPECT_GE(j["metrics"][k].get<double>(), 0.0) << k;
    }
    EXPECT_TRUE(j["metrics"]["MIA"]["entropy"].is_number());
    EXPECT_GT(j["timings_s"]["unlearn"].get<double>(), 0.0);
    EXPECT_EQ(j["config"]["split-seed"], "0");
    EXPECT_EQ(j["config"]["train-limit"], "300");  // the checkpoint's split, from its metadata
    EXPECT_TRUE(j["machine"].contains("cpu"));
    if (method == "ga") {
      EXPECT_EQ(j["forget"]["n_forget"], 40);
      EXPECT_DOUBLE_EQ(j["options"]["lr"].get<double>(), 1e-3);  // random forgetting's default
    } else {
      EXPECT_EQ(j["forget"]["class"], 2);
      EXPECT_EQ(j["forget"]["n_test"], 1800);  // the synthetic test set minus class 2
    }
    if (method == "l1") {
      EXPECT_EQ(j["options"]["l1_schedule"], "growth");
    }
    EXPECT_TRUE(std::filesystem::exists(out + "/summary.md"));
    EXPECT_TRUE(std::filesystem::exists(out + "/forget_indices.txt"));
    const Checkpoint ck = read_checkpoint(out + "/unlearned.safetensors");
    EXPECT_EQ(ck.metadata.at("kind"), "unlearned");
    EXPECT_EQ(ck.metadata.at("unlearn_method"), method);
  }
}

TEST_F(LetheUnlearn, PrunedCheckpointKeepsItsMask) {
  for (const std::string method : {"ft", "ff"}) {
    SCOPED_TRACE(method);
    const std::string out = *dir_ / ("pruned-" + method);
    std::vector<std::string> args = {"--model", *dir_ / "pruned.safetensors", "--method", method,
                                     "--forget", "random:30", "--out", out, "--quiet",
                                     "--mia-variants", "false"};
    if (method == "ft") for (const char* a : {"--epochs", "1"}) args.push_back(a);
    ASSERT_EQ(cli::cmd_unlearn(args), 0);
    EXPECT_EQ(results(out)["model"]["kind"], "sparse");
    const testing::PrunedWeights p = testing::pruned_weights(out + "/unlearned.safetensors");
    EXPECT_EQ(p.nonzero, 0);
    EXPECT_GT(p.pruned, 1000);
  }
}

TEST_F(LetheUnlearn, BadInputIsOneClearError) {
  const std::string dense = *dir_ / "dense/last.safetensors";
  const std::string out = *dir_ / "bad";
  EXPECT_THROW(cli::cmd_unlearn({"--method", "ft", "--out", out}), Error);  // no --model
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--out", out}), Error);  // no --method
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "scrub", "--out", out}), Error);
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "ft", "--forget", "class:10",
                                 "--out", out}), Error);
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "ft", "--forget", "random:0",
                                 "--out", out}), Error);
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "ft", "--forget",
                                 "file:/nonexistent/forget.txt", "--out", out}), Error);
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "ft", "--alpha", "1",
                                 "--out", out}), Error);  // alpha is for ff / iu
  EXPECT_THROW(cli::cmd_unlearn({"--model", dense, "--method", "ft", "--dataset", "cifar10",
                                 "--out", out}), Error);  // not the checkpoint's data
  EXPECT_THROW(cli::cmd_unlearn({"--model", "/nonexistent.safetensors", "--method", "ft",
                                 "--out", out}), Error);
  EXPECT_EQ(cli::cmd_unlearn({"--help"}), 0);
}

}  // namespace
}  // namespace lethe
