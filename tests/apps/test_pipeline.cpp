// `lethe pipeline` end to end on the synthetic data set with a tiny model: the result files
// and their rows, the stage cache (a re-run computes nothing; a changed method setting
// recomputes only that method's stages) and mean ± std over two seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/pipeline.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<std::string> base_args(const std::string& out) {
  return {"--dataset", "synthetic", "--train-limit", "600", "--val-limit", "100",
          "--width", "0.0625", "--epochs", "1", "--rewind-epoch", "1", "--prune-epochs", "1",
          "--batch-size", "64", "--methods", "retrain,ft", "--retrain.epochs", "1",
          "--ft.epochs", "1", "--seeds", "1,2", "--forget", "class:0", "--mia-variants",
          "false", "--threads", "2", "--quiet", "true", "--out", out};
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Pipeline, StableHashIsFnv1a) {
  EXPECT_EQ(lethe::cli::stable_hash(""), "cbf29ce484222325");
  EXPECT_NE(lethe::cli::stable_hash("a"), lethe::cli::stable_hash("b"));
}

TEST(Pipeline, EndToEndCachedAndPartlyRecomputed) {
  const std::string out = (fs::temp_directory_path() / "lethe_test_pipeline").string();
  fs::remove_all(out);
  ASSERT_EQ(lethe::cli::cmd_pipeline(base_args(out)), 0);

  // 2 training stages + per model: original (class-wise: one) + 2 methods x 2 seeds.
  json r = read_json(out + "/results.json");
  EXPECT_EQ(r["stages"]["total"], 2 + 2 * (1 + 4));
  EXPECT_EQ(r["stages"]["computed"], r["stages"]["total"]);
  const json& table = r["table"];
  ASSERT_EQ(table.size(), 6u);  // {dense, sparse} x {original, retrain, ft}
  for (const json& row : table) {
    EXPECT_EQ(row["n_seeds"], 2);
    for (const char* k : {"UA_mean", "UA_std", "gap_UA_mean", "gap_MIA_efficacy_mean",
                          "gap_RA_mean", "gap_TA_mean", "gap_average_mean", "RTE_min_mean"})
      EXPECT_TRUE(row.contains(k)) << k;
    if (row["method"] == "retrain") {
      EXPECT_DOUBLE_EQ(row["gap_average_mean"].get<double>(), 0.0);
      EXPECT_DOUBLE_EQ(row["UA_mean"].get<double>(), 100.0);  // never saw class 0
    }
  }
  const std::string md = read_text(out + "/results.md");
  EXPECT_NE(md.find("| class:0 | sparse | ft |"), std::string::npos);
  EXPECT_NE(md.find(" ± "), std::string::npos);
  const std::string csv = read_text(out + "/results.csv");
  EXPECT_NE(csv.find("gap_UA"), std::string::npos);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  EXPECT_EQ(r["runs"].size(), 2u * (2 + 4));

  // A re-run reuses every stage and reports the same numbers.
  ASSERT_EQ(lethe::cli::cmd_pipeline(base_args(out)), 0);
  json r2 = read_json(out + "/results.json");
  EXPECT_EQ(r2["stages"]["computed"], 0);
  EXPECT_EQ(r2["stages"]["cached"], r["stages"]["total"]);
  EXPECT_EQ(r2["table"], r["table"]);

  // Changing one method's setting recomputes that method's stages only (2 models x 2 seeds).
  std::vector<std::string> args = base_args(out);
  args.insert(args.end(), {"--ft.lr", "0.02"});
  ASSERT_EQ(lethe::cli::cmd_pipeline(args), 0);
  json r3 = read_json(out + "/results.json");
  EXPECT_EQ(r3["stages"]["computed"], 4);
  fs::remove_all(out);
}

// configs/pipeline-<name>.cfg is what README and docs tell users to copy and edit; it must say
// exactly what `--preset <name>` does (a tuned setting added to one but not the other would
// make the documented results irreproducible from the file).
TEST(Pipeline, ConfigFilesMatchTheBuiltInPresets) {
  ASSERT_FALSE(lethe::cli::pipeline_presets().empty());
  for (const auto& [name, text] : lethe::cli::pipeline_presets()) {
    const std::string path = "../configs/pipeline-" + name + ".cfg";  // tests run in tests/
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_EQ(lethe::Config::from_file(path).values(),
              lethe::Config::from_string(text, "preset " + name).values())
        << name;
  }
}
