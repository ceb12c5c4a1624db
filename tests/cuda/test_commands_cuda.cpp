// The experiment commands on the GPU (`--device cuda`): lethe unlearn (every method), lethe
// prune (OMP and SynFlow), lethe eval and lethe pipeline give what the same command gives on
// the CPU, on the built-in synthetic data with a tiny model trained once on the CPU.
//
// What "the same" means. Masks are computed from the same files (OMP) or scored on the host
// (SynFlow), so they must be identical bit for bit. Weights after training are not: a few
// SGD steps amplify the kernels' rounding differences (test_training_step_cuda.cpp measures
// that for one step). So each command's *change* to the weights is compared:
// ||w_gpu - w_cpu|| / ||w_cpu - w_start|| over all parameters, at most kUpdateTol. A wrong
// batch, gradient, mask or learning rate moves that ratio to O(1). The bound is provisional
// (set before these tests first ran on a GPU): every test prints the measured ratio, so the
// first H100 log shows the margin. Accuracies (UA, RA, TA, test accuracy) may differ by a few
// borderline images: within kAccTol points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "framework/checkpoint.h"
#include "models/model.h"
#include "models/trainer.h"
#include "prune/mask.h"
#include "testing/cuda_harness.h"
#include "unlearn/unlearn_test_util.h"

namespace lethe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::UnlearnTempDir;

constexpr double kUpdateTol = 0.1;
constexpr double kAccTol = 5.0;

json results(const std::string& out) {
  std::ifstream f(out + "/results.json");
  return json::parse(f);
}

/// Float tensors of a checkpoint by name (masks and momentum buffers left out).
std::map<std::string, std::vector<float>> float_tensors(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : read_checkpoint(path).tensors)
    if (t.dtype() == DType::F32 && name.rfind("optim.", 0) != 0) out[name] = t.to_vector<float>();
  return out;
}

/// ||gpu - cpu|| / ||cpu - start|| over every float tensor the three files share.
double update_distance(const std::string& start, const std::string& cpu, const std::string& gpu) {
  const auto s = float_tensors(start), c = float_tensors(cpu), g = float_tensors(gpu);
  double diff = 0, upd = 0;
  for (const auto& [name, cv] : c) {
    auto si = s.find(name);
    auto gi = g.find(name);
    if (si == s.end() || gi == g.end()) continue;
    for (size_t i = 0; i < cv.size(); ++i) {
      diff += std::pow(static_cast<double>(gi->second[i]) - cv[i], 2);
      upd += std::pow(static_cast<double>(cv[i]) - si->second[i], 2);
    }
  }
  EXPECT_GT(upd, 0.0) << cpu << " did not change the weights of " << start;
  return std::sqrt(diff / std::max(upd, 1e-300));
}

/// Every "<param>.mask" tensor of a checkpoint, flattened in name order.
std::vector<uint8_t> masks_of(const std::string& path) {
  std::vector<uint8_t> flat;
  for (const auto& [name, t] : read_checkpoint(path).tensors)
    if (name.size() > 5 && name.substr(name.size() - 5) == ".mask") {
      const std::vector<uint8_t> v = t.to_vector<uint8_t>();
      flat.insert(flat.end(), v.begin(), v.end());
    }
  return flat;
}

/// A tiny dense run (with its epoch-1 snapshot, so it can be pruned with rewinding) and an
/// OMP-90% model pruned from it, both made on the CPU once for the whole suite.
class CudaCommands : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!::lethe::testing::have_cuda_device()) return;
    dir_ = new UnlearnTempDir();
    ASSERT_EQ(cli::cmd_train({"--dataset", "synthetic", "--width", "0.0625", "--epochs", "2",
                              "--train-limit", "300", "--batch-size", "50", "--lr", "0.05",
                              "--out", *dir_ / "dense", "--quiet", "--threads", "2",
                              "--snapshot-epoch", "1"}),
              0);
    ASSERT_EQ(cli::cmd_prune(prune_args("omp", *dir_ / "omp-cpu", "cpu")), 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::vector<std::string> prune_args(const std::string& method, const std::string& out,
                                             const std::string& device) {
    std::vector<std::string> a = {"--dataset", "synthetic", "--width", "0.0625", "--epochs", "2",
                                  "--train-limit", "300", "--batch-size", "50", "--lr", "0.05",
                                  "--method", method, "--rate", "0.9", "--out", out, "--quiet",
                                  "--threads", "2", "--device", device};
    if (method != "synflow")
      for (const std::string& s : {std::string("--dense"), *dir_ / "dense",
                                   std::string("--rewind-epoch"), std::string("1")})
        a.push_back(s);
    return a;
  }
  static UnlearnTempDir* dir_;
};
UnlearnTempDir* CudaCommands::dir_ = nullptr;

TEST_F(CudaCommands, UnlearnEveryMethodMatchesCpu) {
  LETHE_REQUIRE_GPU();
  const std::string model = *dir_ / "omp-cpu/last.safetensors";
  for (const std::string method : {"retrain", "ft", "ga", "rl", "ff", "iu", "l1"}) {
    SCOPED_TRACE(method);
    std::map<std::string, json> r;
    for (const std::string dev : {"cpu", "cuda"}) {
      std::vector<std::string> args = {"--model", model, "--method", method, "--forget",
                                       method == "ga" ? "random:40" : "class:2", "--out",
                                       *dir_ / ("un-" + method + "-" + dev), "--quiet",
                                       "--threads", "2", "--seed", "3", "--mia-variants",
                                       "false", "--device", dev};
      if (unlearn::is_training_method(method))
        for (const char* a : {"--epochs", "1", "--batch-size", "64"}) args.push_back(a);
      if (method == "iu") for (const char* a : {"--woodfisher-n", "30"}) args.push_back(a);
      ASSERT_EQ(cli::cmd_unlearn(args), 0);
      r[dev] = results(*dir_ / ("un-" + method + "-" + dev));
    }
    EXPECT_EQ(r["cuda"]["settings"]["device"], "cuda");
    const std::string cpu_ck = *dir_ / ("un-" + method + "-cpu/unlearned.safetensors");
    const std::string gpu_ck = *dir_ / ("un-" + method + "-cuda/unlearned.safetensors");
    const double d = update_distance(model, cpu_ck, gpu_ck);
    std::printf("[ measured ] unlearn %s: GPU-vs-CPU update distance %.3g (bound %.3g)\n",
                method.c_str(), d, kUpdateTol);
    EXPECT_LE(d, kUpdateTol);
    // UA is over the forget set alone (30-40 images here): two images of slack.
    const double ua_tol =
        std::max(kAccTol, 2 * 100.0 / r["cpu"]["forget"]["n_forget"].get<double>());
    for (const char* k : {"UA", "RA", "TA"})
      EXPECT_NEAR(r["cuda"]["metrics"][k].get<double>(), r["cpu"]["metrics"][k].get<double>(),
                  std::string(k) == "UA" ? ua_tol : kAccTol)
          << k;
    EXPECT_EQ(masks_of(gpu_ck), masks_of(model));
    const testing::PrunedWeights pw = testing::pruned_weights(gpu_ck);
    EXPECT_EQ(pw.nonzero, 0);
    EXPECT_GT(pw.pruned, 1000);
    EXPECT_GT(r["cuda"]["timings_s"]["unlearn"].get<double>(), 0.0);
  }
}

TEST_F(CudaCommands, PruneOmpAndSynflowMatchCpu) {
  LETHE_REQUIRE_GPU();
  // OMP: the mask comes from the dense run's file; SynFlow's is scored on the host.
  ASSERT_EQ(cli::cmd_prune(prune_args("omp", *dir_ / "omp-cuda", "cuda")), 0);
  ASSERT_EQ(cli::cmd_prune(prune_args("synflow", *dir_ / "synflow-cpu", "cpu")), 0);
  ASSERT_EQ(cli::cmd_prune(prune_args("synflow", *dir_ / "synflow-cuda", "cuda")), 0);
  for (const std::string method : {"omp", "synflow"}) {
    SCOPED_TRACE(method);
    const std::string cpu = *dir_ / (method + "-cpu"), gpu = *dir_ / (method + "-cuda");
    EXPECT_EQ(masks_of(gpu + "/masks.safetensors"), masks_of(cpu + "/masks.safetensors"));
    EXPECT_EQ(masks_of(gpu + "/last.safetensors"), masks_of(cpu + "/last.safetensors"));
    const testing::PrunedWeights pw = testing::pruned_weights(gpu + "/last.safetensors");
    EXPECT_EQ(pw.nonzero, 0);
    EXPECT_GT(pw.pruned, 1000);
    if (method == "omp") {  // retrained from the rewound snapshot
      const double d = update_distance(*dir_ / "dense/epoch1.safetensors",
                                       cpu + "/last.safetensors", gpu + "/last.safetensors");
      std::printf("[ measured ] prune omp: GPU-vs-CPU update distance %.3g (bound %.3g)\n", d,
                  kUpdateTol);
      EXPECT_LE(d, kUpdateTol);
    }
    const json rc = results(cpu), rg = results(gpu);
    EXPECT_EQ(rg["settings"]["device"], "cuda");
    EXPECT_DOUBLE_EQ(rg["metrics"]["sparsity"].get<double>(),
                     rc["metrics"]["sparsity"].get<double>());
    EXPECT_NEAR(rg["metrics"]["test_acc_last"].get<double>(),
                rc["metrics"]["test_acc_last"].get<double>(), kAccTol);
  }
}

TEST_F(CudaCommands, EvalMatchesCpu) {
  LETHE_REQUIRE_GPU();
  for (const std::string dev : {"cpu", "cuda"})
    ASSERT_EQ(cli::cmd_eval({"--model", *dir_ / "dense/last.safetensors", "--device", dev,
                             "--out", *dir_ / ("eval-" + dev)}),
              0);
  const json c = results(*dir_ / "eval-cpu"), g = results(*dir_ / "eval-cuda");
  for (const char* split : {"train", "val", "test"}) {
    EXPECT_EQ(g["metrics"][split]["images"], c["metrics"][split]["images"]) << split;
    // Inference only, no training: at most an image or two near a decision boundary.
    EXPECT_NEAR(g["metrics"][split]["accuracy"].get<double>(),
                c["metrics"][split]["accuracy"].get<double>(), 0.5)
        << split;
  }
}

TEST_F(CudaCommands, PipelineOnGpuComputesItsOwnStages) {
  LETHE_REQUIRE_GPU();
  const std::string out = *dir_ / "pipeline";
  auto args = [&](const std::string& dev) {
    return std::vector<std::string>{
        "--dataset", "synthetic", "--train-limit", "600", "--val-limit", "100", "--width",
        "0.0625", "--epochs", "1", "--rewind-epoch", "1", "--prune-epochs", "1", "--batch-size",
        "64", "--methods", "retrain,ft", "--retrain.epochs", "1", "--ft.epochs", "1", "--seeds",
        "1", "--forget", "class:0", "--mia-variants", "false", "--threads", "2", "--quiet",
        "true", "--out", out, "--device", dev};
  };
  ASSERT_EQ(cli::cmd_pipeline(args("cpu")), 0);
  const json c = results(out);
  ASSERT_EQ(cli::cmd_pipeline(args("cuda")), 0);
  const json g = results(out);
  // Same folder, same recipe: the GPU run reuses none of the CPU's stages (their RTE and
  // rounding belong to the CPU).
  EXPECT_EQ(g["stages"]["computed"], g["stages"]["total"]);
  EXPECT_EQ(g["settings"]["device"], "cuda");
  ASSERT_EQ(g["table"].size(), c["table"].size());
  for (size_t i = 0; i < g["table"].size(); ++i) {
    const json& rg = g["table"][i];
    const json& rc = c["table"][i];
    SCOPED_TRACE(rg["model"].dump() + " " + rg["method"].dump());
    EXPECT_EQ(rg["method"], rc["method"]);
    if (rg["method"] == "retrain") {
      EXPECT_DOUBLE_EQ(rg["UA_mean"].get<double>(), 100.0);
    }
    for (const char* k : {"UA_mean", "RA_mean", "TA_mean"})
      EXPECT_NEAR(rg[k].get<double>(), rc[k].get<double>(), kAccTol) << k;
  }
  // A second GPU call reuses the GPU's stages.
  ASSERT_EQ(cli::cmd_pipeline(args("cuda")), 0);
  EXPECT_EQ(results(out)["stages"]["computed"], 0);
}

}  // namespace
}  // namespace lethe
