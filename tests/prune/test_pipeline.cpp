// Training with masks and the pipelines: pruned weights stay exactly zero through train::fit,
// rewinding restores the snapshot's weights, BN state and LR bit for bit, IMP resumes by round
// to the same bytes, and `lethe prune` runs every method end to end on synthetic data.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <fstream>

#include "apps/commands.h"
#include "framework/lr_schedule.h"
#include "prune/pipeline.h"
#include "prune/select.h"
#include "prune_test_util.h"

namespace lethe {
namespace {

namespace fs = std::filesystem;
using prune::MaskSet;

// Every prune test runs on one thread: the networks are tiny (threads buy nothing), the CLI
// tests set --threads 1 for the process anyway, and a busy machine then cannot slow them down
// by oversubscription.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { omp_set_num_threads(1); }
};
::testing::Environment* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

std::vector<char> bytes_of(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

int64_t zeros_of(const std::vector<uint8_t>& keep) {
  int64_t z = 0;
  for (uint8_t k : keep) z += k == 0;
  return z;
}

TEST(MaskedTraining, PrunedWeightsStayExactlyZeroThroughFit) {
  testing::TinyResNet s;
  auto model = s.model();
  const MaskSet masks = prune::random_masks(*model, 0.7, 4);
  prune::apply_masks(*model, masks);
  const auto start = prune::flat_abs_weights(*model);
  train::TrainOptions o = s.options("", 3);  // 12 steps, no files
  o.sgd.momentum = 0.9;
  o.sgd.weight_decay = 0.01;  // large, so a revived weight would show
  train::fit(*model, s.data, s.idx, s.data, {}, o, masks);
  const auto keep = prune::flatten_masks(*model, masks);
  const auto after = prune::flat_abs_weights(*model);
  int64_t moved = 0;
  for (size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i]) {
      ASSERT_EQ(after[i], 0.0) << "pruned weight " << i << " revived";
    }
    moved += keep[i] && after[i] != start[i];
  }
  EXPECT_GT(moved, zeros_of(keep) / 10);  // the kept weights did train
  EXPECT_EQ(prune::sparsity_report(*model).zeros, prune::prune_count(0.7, 43692));
}

TEST(Rewind, RestoresWeightsBnStateAndLrBitForBit) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  // The dense run, with the snapshot after epoch 1 of 3.
  auto dense = s.model();
  train::TrainOptions o = s.options(dir / "dense", 3);
  o.snapshot_epoch = 1;
  const train::TrainResult d = train::fit(*dense, s.data, s.idx, s.data, {}, o);
  ASSERT_EQ(d.history.size(), 3u);
  // The same run stopped after epoch 1, in memory: what the snapshot must hold.
  auto at1 = s.model();
  train::TrainOptions o1 = s.options(dir / "stopped", 3);
  o1.stop_at_step = 4;
  train::fit(*at1, s.data, s.idx, s.data, {}, o1);

  auto rewound = s.model(99);  // another init: every value must come from the snapshot
  const Checkpoint snap = prune::rewind_to_snapshot(*rewound, dir / "dense/epoch1.safetensors",
                                                    models::model_metadata(s.spec));
  EXPECT_EQ(snap.metadata.at("step"), "4");
  const auto want = at1->state_dict(), got = rewound->state_dict();
  ASSERT_EQ(want.size(), got.size());
  int bn_buffers = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(want[i].first, got[i].first);
    const Tensor &x = want[i].second, &y = got[i].second;
    if (x.dtype() == DType::F32)
      EXPECT_EQ(x.to_vector<float>(), y.to_vector<float>()) << want[i].first;
    else
      EXPECT_EQ(x.to_vector<int32_t>(), y.to_vector<int32_t>()) << want[i].first;
    bn_buffers += want[i].first.find("running_") != std::string::npos;
  }
  EXPECT_EQ(bn_buffers, 2 * 20);  // running_mean and running_var of the 20 BN layers

  // Retraining after the rewind: the LR continues the dense schedule from epoch 1.
  train::TrainOptions r = prune::rewind_options(s.options(dir / "retrain", 3), 1, 4);
  EXPECT_EQ(r.lr_step_offset, 4);
  EXPECT_EQ(r.snapshot_epoch, 0);
  const train::TrainResult rt = train::fit(*rewound, s.data, s.idx, s.data, {}, r);
  ASSERT_EQ(rt.history.size(), 3u);
  EXPECT_EQ(rt.history[0].lr, d.history[1].lr);  // the LR of the last step of each epoch
  EXPECT_EQ(rt.history[1].lr, d.history[2].lr);
  EXPECT_EQ(prune::steps_per_epoch(256, 64, false), 4);
  EXPECT_EQ(prune::steps_per_epoch(250, 64, false), 4);
  EXPECT_EQ(prune::steps_per_epoch(250, 64, true), 3);
}

TEST(Rewind, AShortenedRetrainingRunsTheDenseScheduleCutToEndWithIt) {
  // SPEC's full-length retraining keeps the dense schedule (its tail past the end runs at the
  // schedule's floor); a shorter one ends where its schedule ends.
  EXPECT_EQ(prune::rewound_schedule_epochs(20, 8, 20), 20);
  EXPECT_EQ(prune::rewound_schedule_epochs(12, 3, 8), 11);
  EXPECT_EQ(prune::rewound_schedule_epochs(18, 2, 5), 7);
  EXPECT_EQ(prune::rewound_schedule_epochs(12, 3, 10), 12);

  testing::TinyResNet s;
  const train::TrainOptions r = prune::rewind_options(s.options("", 2), 1, 4, 4);
  EXPECT_EQ(r.schedule_epochs, 3);  // min(4, 1 + 2)
  train::TrainOptions fixed = s.options("", 2);
  fixed.schedule_epochs = 5;  // set by the caller: kept
  EXPECT_EQ(prune::rewind_options(fixed, 1, 4, 4).schedule_epochs, 5);
  EXPECT_EQ(prune::rewind_options(s.options("", 2), 1, 4).schedule_epochs, 0);

  // fit follows it: the LR of each epoch's last step is the 3-epoch (12-step) schedule's at
  // steps 4 + 3 and 4 + 7, not the 2-epoch one's a squeezed schedule would give.
  auto model = s.model();
  const train::TrainResult t = train::fit(*model, s.data, s.idx, s.data, {}, r);
  ASSERT_EQ(t.history.size(), 2u);
  const auto want = make_lr_schedule("onecycle", 0.05, 4, 3);
  const auto squeezed = make_lr_schedule("onecycle", 0.05, 4, 2);
  EXPECT_EQ(t.history[0].lr, want->lr(7));
  EXPECT_EQ(t.history[1].lr, want->lr(11));
  EXPECT_NE(want->lr(7), squeezed->lr(7));
}

TEST(Rewind, LethePruneTakesTheDenseRunsEpochsFromItsSnapshot) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  prune::PipelineOptions p;
  p.method = "omp";
  p.rate = 0.5;
  p.rewind_epoch = 1;
  p.out_dir = dir / "full";
  p.train = s.options("", 3);
  ASSERT_TRUE(prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, p).finished);
  // SPEC's case: as many retraining epochs as dense ones, the schedule is the dense run's.
  EXPECT_EQ(read_checkpoint(dir / "full/last.safetensors").metadata.count("schedule_epochs"), 0u);

  // A one-epoch retraining from the same 3-epoch dense run spans min(3, 1 + 1) epochs.
  p.out_dir = dir / "short";
  p.dense_dir = dir / "full/dense";
  p.train = s.options("", 1);
  ASSERT_TRUE(prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, p).finished);
  EXPECT_EQ(read_checkpoint(dir / "short/last.safetensors").metadata.at("schedule_epochs"), "2");
}

prune::PipelineOptions imp_options(const testing::TinyResNet& s, const std::string& out) {
  prune::PipelineOptions p;
  p.method = "imp";
  p.rate = 0.36;  // 0.8^2: two rounds
  p.rewind_epoch = 1;
  p.seed = 5;
  p.out_dir = out;
  p.train = s.options("", 2);
  return p;
}

TEST(ImpPipeline, RoundsKeepPointEightPowersAndResumeByRoundToTheSameBytes) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  const prune::PipelineResult a =
      prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, imp_options(s, dir / "a"));
  ASSERT_TRUE(a.finished);
  ASSERT_EQ(a.rounds.size(), 2u);
  const int64_t total = 43692;
  EXPECT_EQ(a.rounds[0].pruned, total - std::llround(total * 0.8));
  EXPECT_EQ(a.rounds[1].pruned, prune::prune_count(0.36, total));
  auto model = s.model();
  auto masks_in = [&](const std::string& file) {
    return prune::flatten_masks(*model, prune::read_masks(dir / file, *model));
  };
  const auto r1 = masks_in("a/round1/masks.safetensors");
  const auto r2 = masks_in("a/last.safetensors");
  EXPECT_EQ(zeros_of(r1), a.rounds[0].pruned);
  EXPECT_EQ(zeros_of(r2), a.rounds[1].pruned);
  for (size_t i = 0; i < r1.size(); ++i) ASSERT_TRUE(r1[i] || !r2[i]) << "round 2 revived " << i;
  EXPECT_EQ(prune::sparsity_report(*a.model).zeros, a.rounds[1].pruned);

  // One stage per call: dense, round 1, round 2.
  prune::PipelineOptions b = imp_options(s, dir / "b");
  b.max_stages = 1;
  EXPECT_FALSE(prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, b).finished);
  EXPECT_TRUE(fs::exists(dir / "b/dense/epoch1.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "b/round1/last.safetensors"));
  b.resume = true;
  EXPECT_FALSE(prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, b).finished);
  EXPECT_TRUE(fs::exists(dir / "b/round1/last.safetensors"));
  const prune::PipelineResult rb = prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, b);
  ASSERT_TRUE(rb.finished);
  EXPECT_EQ(rb.final_training.history.size(), 2u);
  EXPECT_EQ(bytes_of(dir / "a/last.safetensors"), bytes_of(dir / "b/last.safetensors"));
  EXPECT_EQ(bytes_of(dir / "a/round1/last.safetensors"),
            bytes_of(dir / "b/round1/last.safetensors"));
  // IMP rounds before the last do not depend on the target: IMP to 50% (0.8, 0.64, 0.512, 0.5)
  // reuses round 1 of the run to 36% when its folders are copied over.
  fs::create_directories(dir / "c");
  fs::copy(dir / "a/dense", dir / "c/dense", fs::copy_options::recursive);
  fs::copy(dir / "a/round1", dir / "c/round1", fs::copy_options::recursive);
  prune::PipelineOptions c = imp_options(s, dir / "c");
  c.rate = 0.5;
  c.resume = true;
  c.max_stages = 1;
  const prune::PipelineResult rc = prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, c);
  EXPECT_FALSE(rc.finished);
  EXPECT_EQ(bytes_of(dir / "c/round1/last.safetensors"),
            bytes_of(dir / "a/round1/last.safetensors"));
  // Its round 2 keeps 0.64 like the 36% run's last round: the same weights, the same mask.
  EXPECT_EQ(masks_in("c/round2/masks.safetensors"), r2);
  EXPECT_TRUE(fs::exists(dir / "c/round2/last.safetensors"));  // the one stage of this call
  EXPECT_FALSE(fs::exists(dir / "c/round3"));

  // A handoff: the dense run and the last round's masks, no round checkpoints, continue to
  // the same bytes (round 1 is recorded but not trained again).
  fs::create_directories(dir / "d");
  fs::copy(dir / "a/dense", dir / "d/dense", fs::copy_options::recursive);
  fs::copy(dir / "a/masks.safetensors", dir / "d/masks.safetensors");
  prune::PipelineOptions d = imp_options(s, dir / "d");
  d.resume = true;
  const prune::PipelineResult rd = prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, d);
  ASSERT_TRUE(rd.finished);
  ASSERT_EQ(rd.rounds.size(), 2u);
  EXPECT_EQ(rd.rounds[0].pruned, a.rounds[0].pruned);
  EXPECT_EQ(rd.rounds[0].train_seconds, 0.0);
  EXPECT_FALSE(fs::exists(dir / "d/round1"));
  EXPECT_EQ(bytes_of(dir / "a/last.safetensors"), bytes_of(dir / "d/last.safetensors"));

  // A finished run resumed again trains nothing and gives the same model.
  const prune::PipelineResult again = prune::run_pipeline(s.spec, s.data, s.idx, s.data, {}, b);
  EXPECT_TRUE(again.finished);
  EXPECT_EQ(again.final_training.steps_run, 0);
}

std::vector<std::string> cli_args(const std::string& method, const std::string& rate,
                                  const std::string& out) {
  return {"--method", method, "--rate", rate, "--dataset", "synthetic", "--width", "0.0625",
          "--epochs", "2", "--train-limit", "256", "--batch-size", "64", "--rewind-epoch", "1",
          "--out", out, "--quiet", "--threads", "1"};
}

nlohmann::json results_of(const std::string& dir) {
  std::ifstream f(dir + "/results.json");
  return nlohmann::json::parse(f);
}

TEST(LethePrune, EveryMethodWritesResultsWithTheRequestedSparsity) {
  testing::TinyResNet s;
  testing::PruneTempDir dir;
  const int64_t total = 43692;
  for (const auto& [method, rate] : std::vector<std::pair<std::string, std::string>>{
           {"omp", "0.9"}, {"imp", "0.5"}, {"synflow", "0.95"}, {"random", "0.9"}}) {
    const std::string out = dir / method;
    ASSERT_EQ(cli::cmd_prune(cli_args(method, rate, out)), 0) << method;
    const nlohmann::json j = results_of(out);
    const double want = static_cast<double>(prune::prune_count(std::stod(rate), total)) / total;
    EXPECT_EQ(j["command"], "lethe prune");
    EXPECT_EQ(j["method"], method);
    EXPECT_DOUBLE_EQ(j["metrics"]["sparsity"].get<double>(), want) << method;
    EXPECT_EQ(j["sparsity"]["layers"].size(), 20u);
    EXPECT_GE(j["metrics"]["test_acc_last"].get<double>(), 0.0);
    EXPECT_EQ(j["per_epoch"].size(), 2u);
    EXPECT_TRUE(fs::exists(out + "/summary.md"));
    // The final checkpoint carries the masks and the pruning metadata.
    auto model = s.model();
    const Checkpoint ck = read_checkpoint(out + "/last.safetensors");
    EXPECT_EQ(ck.metadata.at("prune_method"), method);
    const auto keep =
        prune::flatten_masks(*model, prune::masks_from_checkpoint(ck, *model, "last"));
    EXPECT_EQ(zeros_of(keep), prune::prune_count(std::stod(rate), total)) << method;
  }
  EXPECT_EQ(results_of(dir / "imp")["rounds"].size(), 4u);  // 0.8, 0.64, 0.512, then 0.5
  EXPECT_TRUE(results_of(dir / "synflow")["dense"].is_null());
  // Random pruning needs only the snapshot, so its dense run stopped there.
  EXPECT_EQ(read_checkpoint(dir / "random/dense/last.safetensors").metadata.at("epoch"), "1");

  // OMP from an existing dense run: the same dense weights give the same mask.
  std::vector<std::string> args = cli_args("omp", "0.9", dir / "omp-reuse");
  args.insert(args.end(), {"--dense", dir / "omp/dense"});
  ASSERT_EQ(cli::cmd_prune(args), 0);
  EXPECT_FALSE(fs::exists(dir / "omp-reuse/dense"));
  EXPECT_EQ(bytes_of(dir / "omp-reuse/masks.safetensors"), bytes_of(dir / "omp/masks.safetensors"));
}

TEST(LethePrune, BadInputIsOneClearError) {
  testing::PruneTempDir dir;
  EXPECT_THROW(cli::cmd_prune(cli_args("magnitude", "0.9", dir / "x")), Error);
  EXPECT_THROW(cli::cmd_prune(cli_args("omp", "1.5", dir / "x")), Error);
  auto with = [&](std::vector<std::string> extra, const std::string& method = "omp") {
    std::vector<std::string> a = cli_args(method, "0.9", dir / "x");
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  EXPECT_THROW(cli::cmd_prune(with({"--dense", dir / "nothing-here"})), Error);
  EXPECT_THROW(cli::cmd_prune(with({"--dense", dir.path()}, "synflow")), Error);
  EXPECT_THROW(cli::cmd_prune(with({"--rewind-epoch", "0"})), Error);
  EXPECT_THROW(cli::cmd_prune(with({"--rewind-epoch", "3"})), Error);
  EXPECT_THROW(cli::cmd_prune(with({"--synflow-precision", "half"}, "synflow")), Error);
  EXPECT_THROW(cli::cmd_prune(with({"--snapshot-epoch", "1"})), Error);  // train's flag, not ours
}

}  // namespace
}  // namespace lethe
