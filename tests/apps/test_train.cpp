// The training loop and `lethe train` / `lethe eval` on the built-in synthetic data with a
// narrow ResNet-18: exact resume, checkpoints, results files, clear errors on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/report.h"
#include "data/split.h"
#include "data/synthetic.h"
#include "framework/checkpoint.h"
#include "framework/ops.h"
#include "models/model.h"
#include "models/trainer.h"

namespace lethe {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("lethe_train_" + name + "_" +
                                                  std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

struct TinyRun {
  data::Dataset train = data::make_synthetic(320, 10, 3);
  std::vector<int64_t> idx, val;
  models::ModelSpec spec{"resnet18", 0.0625, 10, "cifar10"};
  TinyRun() {
    for (int64_t i = 0; i < 256; ++i) idx.push_back(i);
    for (int64_t i = 256; i < 320; ++i) val.push_back(i);
  }
  std::shared_ptr<nn::Module> model() const {
    Generator g(5, 0);
    return models::make_model(spec, g);
  }
  train::TrainOptions options(const std::string& out) const {
    train::TrainOptions o;
    o.epochs = 2;
    o.batch_size = 32;  // 8 steps per epoch
    o.sgd.lr = 0.05;
    o.lr_schedule = "onecycle";
    o.seed = 11;
    o.out_dir = out;
    o.quiet = true;
    o.snapshot_epoch = 1;
    o.metadata = models::model_metadata(spec);
    return o;
  }
};

std::vector<char> bytes_of(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(Train, ResumedRunEqualsUninterruptedRunBitForBit) {
  TinyRun s;
  const std::string a = fresh_dir("a"), b = fresh_dir("b");
  auto ma = s.model();
  const train::TrainResult ra = train::fit(*ma, s.train, s.idx, s.train, s.val, s.options(a));
  EXPECT_TRUE(ra.finished);
  EXPECT_EQ(ra.steps_run, 16);
  ASSERT_EQ(ra.history.size(), 2u);

  // Interrupted at global step 5 (mid epoch 1), then resumed in a fresh model.
  auto mb = s.model();
  train::TrainOptions ob = s.options(b);
  ob.stop_at_step = 5;
  const train::TrainResult r1 = train::fit(*mb, s.train, s.idx, s.train, s.val, ob);
  EXPECT_FALSE(r1.finished);
  EXPECT_EQ(r1.steps_run, 5);
  auto mc = s.model();
  ob.stop_at_step = 0;
  ob.resume = true;
  const train::TrainResult r2 = train::fit(*mc, s.train, s.idx, s.train, s.val, ob);
  EXPECT_TRUE(r2.finished);
  EXPECT_EQ(r2.start_step, 5);    // started at the saved step ...
  EXPECT_EQ(r2.steps_run, 11);    // ... and ran only the remaining ones
  ASSERT_EQ(r2.history.size(), 2u);

  const auto sa = ma->state_dict(), sc = mc->state_dict();
  ASSERT_EQ(sa.size(), sc.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    ASSERT_EQ(sa[i].first, sc[i].first);
    if (sa[i].second.dtype() == DType::F32) {
      EXPECT_EQ(sa[i].second.to_vector<float>(), sc[i].second.to_vector<float>()) << sa[i].first;
    }
  }
  // The final checkpoints are the same bytes (weights, BN state, momentum, step).
  EXPECT_EQ(bytes_of(a + "/last.safetensors"), bytes_of(b + "/last.safetensors"));
  for (size_t e = 0; e < 2; ++e) {  // the interrupted epoch reports the same loss and accuracy
    EXPECT_EQ(ra.history[e].loss, r2.history[e].loss) << "epoch " << e + 1;
    EXPECT_EQ(ra.history[e].train_acc, r2.history[e].train_acc) << "epoch " << e + 1;
    EXPECT_EQ(ra.history[e].val_acc, r2.history[e].val_acc) << "epoch " << e + 1;
  }
  EXPECT_TRUE(fs::exists(a + "/epoch1.safetensors"));
  EXPECT_TRUE(fs::exists(a + "/best.safetensors"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Train, LossFallsAndNaNStopsWithTheStepNamed) {
  TinyRun s;
  const std::string out = fresh_dir("nan");
  auto m = s.model();
  train::TrainOptions o = s.options(out);
  o.epochs = 3;
  const train::TrainResult r = train::fit(*m, s.train, s.idx, s.train, s.val, o);
  EXPECT_LT(r.history.back().loss, r.history.front().loss);
  const auto before = bytes_of(out + "/last.safetensors");

  auto m2 = s.model();
  train::TrainOptions bad = s.options(out);
  bad.resume = false;
  bad.sgd.lr = 1e30;  // diverges within a few steps
  bad.lr_schedule = "constant";
  try {
    train::fit(*m2, s.train, s.idx, s.train, s.val, bad);
    FAIL() << "a diverging run did not stop";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("training loss became"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step"), std::string::npos) << msg;
  }
  // A NaN before the first epoch end must not have overwritten the previous run's checkpoint.
  EXPECT_EQ(bytes_of(out + "/last.safetensors"), before);
  fs::remove_all(out);
}

TEST(Train, NaNMidRunNamesTheStepAndKeepsTheLastGoodCheckpoint) {
  TinyRun s;
  const std::string good = fresh_dir("nan_good"), bad = fresh_dir("nan_bad");
  // The reference: the same run stopped cleanly after epoch 1 (global step 8).
  auto m1 = s.model();
  train::TrainOptions o1 = s.options(good);
  o1.stop_at_step = 8;
  train::fit(*m1, s.train, s.idx, s.train, s.val, o1);

  // The same run, whose loss turns NaN at global step 11 (epoch 2, after epoch 1's save).
  auto m2 = s.model();
  train::TrainOptions o2 = s.options(bad);
  int calls = 0;
  o2.loss = [&calls](const Tensor& logits, const data::Batch& b) {
    const Tensor l = ops::cross_entropy(logits, b.labels);
    return ++calls == 11 ? ops::scale(l, std::nan("")) : l;
  };
  try {
    train::fit(*m2, s.train, s.idx, s.train, s.val, o2);
    FAIL() << "a NaN loss did not stop training";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("epoch 2 step 11 (global)"), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad + "/last.safetensors"), std::string::npos) << msg;
  }
  // last.safetensors is still epoch 1's, byte for byte, and resumes.
  EXPECT_EQ(bytes_of(bad + "/last.safetensors"), bytes_of(good + "/last.safetensors"));
  EXPECT_EQ(read_checkpoint(bad + "/last.safetensors").metadata.at("step"), "8");
  fs::remove_all(good);
  fs::remove_all(bad);
}

TEST(Train, ResumeRejectsADifferentRun) {
  TinyRun s;
  const std::string out = fresh_dir("mismatch");
  auto m = s.model();
  train::TrainOptions o = s.options(out);
  o.stop_at_step = 3;
  train::fit(*m, s.train, s.idx, s.train, s.val, o);
  o.stop_at_step = 0;
  o.resume = true;
  o.batch_size = 64;  // not the same run
  auto m2 = s.model();
  EXPECT_THROW(train::fit(*m2, s.train, s.idx, s.train, s.val, o), Error);
  fs::remove_all(out);
}

TEST(LetheTrain, CommandWritesResultsAndEvalReadsThem) {
  const std::string out = fresh_dir("cli");
  ASSERT_EQ(cli::cmd_train({"--dataset", "synthetic", "--width", "0.0625", "--epochs", "1",
                            "--train-limit", "256", "--batch-size", "64", "--out", out,
                            "--quiet", "--threads", "2"}),
            0);
  std::ifstream f(out + "/results.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["command"], "lethe train");
  EXPECT_EQ(j["config"]["width"], "0.0625");
  EXPECT_GE(j["metrics"]["test_acc_last"].get<double>(), 0.0);
  EXPECT_EQ(j["per_epoch"].size(), 1u);
  EXPECT_TRUE(fs::exists(out + "/summary.md"));
  EXPECT_EQ(cli::cmd_eval({"--model", out + "/last.safetensors", "--out", out + "/eval"}), 0);
  std::ifstream g(out + "/eval/results.json");
  const nlohmann::json e = nlohmann::json::parse(g);
  EXPECT_EQ(e["metrics"]["test"]["images"], 2000);
  fs::remove_all(out);
}

TEST(LetheTrain, BadInputIsOneClearError) {
  EXPECT_THROW(cli::cmd_train({"--no-such-flag", "1"}), Error);
  EXPECT_THROW(cli::cmd_train({"--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"}), Error);
  EXPECT_THROW(cli::cmd_train({"--dataset", "synthetic", "--epochs", "many"}), Error);
  EXPECT_THROW(cli::cmd_train({"--preset", "nope"}), Error);
  EXPECT_THROW(cli::cmd_eval({"--model", "/nonexistent.safetensors"}), Error);
}

// Devices: the spellings, and a GPU request without a visible GPU (or in a CPU-only build)
// fails with a sentence before any work; cuDNN without the GPU is refused as well.
TEST(LetheTrain, DeviceFlags) {
  EXPECT_TRUE(cli::parse_device("cpu").is_cpu());
  EXPECT_EQ(cli::parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(cli::parse_device("cuda:3"), Device::cuda(3));
  EXPECT_THROW(cli::parse_device("gpu"), Error);
  EXPECT_THROW(cli::parse_device("cuda:"), Error);
  EXPECT_THROW(cli::parse_device("cuda:x"), Error);
  EXPECT_THROW(cli::cmd_train({"--dataset", "synthetic", "--conv-backend", "cudnn"}), Error);
  EXPECT_THROW(cli::cmd_eval({"--device", "cuda", "--model", "x.safetensors"}), Error);
  if (cuda_device_count() == 0) {
    try {
      cli::cmd_bench({"--device", "cuda", "--steps", "1"});
      ADD_FAILURE() << "lethe bench --device cuda ran without a GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
    EXPECT_THROW(cli::cmd_train({"--dataset", "synthetic", "--device", "cuda:1"}), Error);
    // The experiment commands take a GPU too, and refuse one that is not there the same way.
    for (auto cmd : {&cli::cmd_prune, &cli::cmd_unlearn, &cli::cmd_pipeline}) {
      try {
        cmd({"--dataset", "synthetic", "--device", "cuda", "--out", "/nonexistent/x"});
        ADD_FAILURE() << "an experiment command ran on --device cuda without a GPU";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
      }
    }
  }
  // Backdoor and transfer stay on the CPU and say so.
  try {
    cli::cmd_backdoor({"--dataset", "synthetic", "--device", "cuda", "--out", "/nonexistent/x"});
    ADD_FAILURE() << "lethe backdoor accepted --device cuda";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lethe
