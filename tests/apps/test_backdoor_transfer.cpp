// `lethe backdoor` and `lethe transfer` end to end on the synthetic data set with a tiny model:
// the result files and their rows, the poisoned-index file, the stage cache (a re-run
// computes nothing) and the errors for bad flags.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "data/backdoor.h"
#include "framework/config.h"
#include "kernels/check.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::vector<std::string> common(const std::string& out) {
  return {"--dataset", "synthetic", "--train-limit", "600", "--val-limit", "100", "--width",
          "0.0625", "--epochs", "2", "--rewind-epoch", "1", "--prune-epochs", "1",
          "--batch-size", "64", "--threads", "2", "--quiet", "true", "--out", out};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(Backdoor, EndToEndRowsPoisonFileAndCache) {
  const std::string out = (fs::temp_directory_path() / "lethe_test_backdoor").string();
  fs::remove_all(out);
  const auto args = with(common(out), {"--rates", "0,0.9", "--methods", "ft,ga", "--ft.epochs",
                                       "1", "--ga.epochs", "1", "--target", "2"});
  ASSERT_EQ(lethe::cli::cmd_backdoor(args), 0);
  json r = read_json(out + "/results.json");
  EXPECT_EQ(r["stages"]["total"], 1 + 1 + 2 * 3);
  EXPECT_EQ(r["stages"]["computed"], r["stages"]["total"]);
  EXPECT_EQ(r["poison"]["n_poisoned"], 60);  // 10% of the 600-image split
  EXPECT_EQ(r["poison"]["target"], 2);
  ASSERT_EQ(r["runs"].size(), 6u);
  for (const json& run : r["runs"]) {
    EXPECT_GE(run["asr"].get<double>(), 0.0);
    EXPECT_LE(run["asr"].get<double>(), 100.0);
    EXPECT_GT(run["clean_acc"].get<double>(), 0.0);
    const bool pruned = run["rate"].get<double>() > 0;
    EXPECT_NEAR(run["sparsity"].get<double>(), pruned ? 0.9 : 0.0, 0.01);
    EXPECT_EQ(run["RTE_s"].get<double>() > 0, run["method"] != "original");
  }
  // The poisoned-index file holds 60 distinct sorted indices of the training split.
  std::ifstream in(out + "/poisoned.txt");
  std::vector<int64_t> idx;
  for (int64_t v; in >> v;) idx.push_back(v);
  // They are exactly the seeded choice over the training split, none a validation image.
  lethe::Config cfg;
  cfg.set("dataset", "synthetic", "test");
  cfg.set("train-limit", "600", "test");
  const lethe::cli::DataBundle d = lethe::cli::load_data(cfg);
  EXPECT_EQ(idx, lethe::data::choose_poisoned(d.train_idx, 0.1, 1));
  for (int64_t v : d.val_idx) EXPECT_EQ(std::count(idx.begin(), idx.end(), v), 0) << v;
  std::ifstream md(out + "/results.md");
  std::stringstream ss;
  ss << md.rdbuf();
  EXPECT_NE(ss.str().find("| Sparsity | Original | FT | GA |"), std::string::npos);
  EXPECT_NE(ss.str().find("| 90% |"), std::string::npos);

  ASSERT_EQ(lethe::cli::cmd_backdoor(args), 0);
  const json again = read_json(out + "/results.json");
  EXPECT_EQ(again["stages"]["computed"], 0);
  EXPECT_EQ(again["runs"], r["runs"]);

  // A changed GA setting recomputes GA on both models and nothing else.
  ASSERT_EQ(lethe::cli::cmd_backdoor(with(args, {"--ga.epochs", "2"})), 0);
  const json ga2 = read_json(out + "/results.json");
  EXPECT_EQ(ga2["stages"]["computed"], 2);
  for (size_t k = 0; k < ga2["runs"].size(); ++k)
    if (ga2["runs"][k]["method"] != "ga") {
      EXPECT_EQ(ga2["runs"][k], r["runs"][k]);
    }
  fs::remove_all(out);
}

TEST(Backdoor, BadFlagsFailBeforeTraining) {
  const std::string out = (fs::temp_directory_path() / "lethe_test_backdoor_bad").string();
  fs::remove_all(out);
  EXPECT_THROW(lethe::cli::cmd_backdoor(with(common(out), {"--rates", "0,1.5"})), lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_backdoor(with(common(out), {"--target", "10"})), lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_backdoor(with(common(out), {"--methods", "ft", "--ft.alpha", "1"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_backdoor(with(common(out), {"--poison-fraction", "0"})),
               lethe::Error);
  EXPECT_FALSE(fs::exists(out));  // nothing written: not even the poisoned-index file
}

TEST(Transfer, EndToEndRowsAndCache) {
  const std::string out = (fs::temp_directory_path() / "lethe_test_transfer").string();
  fs::remove_all(out);
  const auto args = with(common(out), {"--rates", "0,0.9", "--unlearn", "ft", "--ft.epochs", "1",
                                       "--transfer-epochs", "1"});
  ASSERT_EQ(lethe::cli::cmd_transfer(args), 0);
  json r = read_json(out + "/results.json");
  // dense + 1 prune + 2 unlearn + 4 transfers + scratch
  EXPECT_EQ(r["stages"]["total"], 9);
  EXPECT_EQ(r["stages"]["computed"], 9);
  EXPECT_EQ(r["source"]["task"]["classes"], json({0, 1, 2, 3, 4}));
  EXPECT_EQ(r["target"]["classes"], json({5, 6, 7, 8, 9}));
  ASSERT_EQ(r["runs"].size(), 4u);
  for (const json& run : r["runs"]) {
    EXPECT_GT(run["target_acc"].get<double>(), 0.0);
    EXPECT_LE(run["target_acc"].get<double>(), 100.0);
    // The mask survives the transfer: a 90% source stays 90% sparse on the target.
    EXPECT_NEAR(run["sparsity"].get<double>(), run["rate"].get<double>(), 0.01);
  }
  EXPECT_EQ(r["runs"][1]["unlearn"], "ft");
  EXPECT_GT(r["scratch"]["test_acc_last"].get<double>(), 0.0);
  ASSERT_EQ(lethe::cli::cmd_transfer(args), 0);
  EXPECT_EQ(read_json(out + "/results.json")["stages"]["computed"], 0);
  fs::remove_all(out);
}

TEST(Transfer, TargetFromASecondDataSet) {
  // --target-dataset loads a second bundle (CIFAR-10 -> CIFAR-100 in real use); naming the
  // source's own data set keeps the check that the target classes are new.
  const std::string out = (fs::temp_directory_path() / "lethe_test_transfer2").string();
  fs::remove_all(out);
  const auto args = with(common(out), {"--rates", "0", "--transfer-epochs", "1",
                                       "--target-dataset", "synthetic", "--target-classes",
                                       "5-9"});
  ASSERT_EQ(lethe::cli::cmd_transfer(args), 0);
  const json r = read_json(out + "/results.json");
  EXPECT_EQ(r["stages"]["total"], 3);  // source, one transfer, scratch
  EXPECT_EQ(r["target"]["dataset"], "synthetic");
  EXPECT_EQ(r["runs"].size(), 1u);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--target-dataset", "synthetic",
                                                           "--target-classes", "0-4"})),
               lethe::Error);
  fs::remove_all(out);
}

TEST(Transfer, BadFlagsFailBeforeTraining) {
  const std::string out = (fs::temp_directory_path() / "lethe_test_transfer_bad").string();
  fs::remove_all(out);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--rates", "0.5,0.9"})), lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--target-classes", "4-6"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--source-classes", "0-12"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--unlearn", "nope"})), lethe::Error);
  // Checked before the source is trained, not when its stage comes.
  EXPECT_THROW(lethe::cli::cmd_transfer(
                   with(common(out), {"--unlearn", "ft", "--unlearn-forget", "class:7"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(
                   with(common(out), {"--unlearn", "ft", "--unlearn-forget", "file:x.txt"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--transfer-schedule", "bogus"})),
               lethe::Error);
  EXPECT_THROW(lethe::cli::cmd_transfer(with(common(out), {"--transfer-lr", "0"})), lethe::Error);
  EXPECT_FALSE(fs::exists(out + "/stages"));
  fs::remove_all(out);
}
