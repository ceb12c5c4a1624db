// `lethe transfer`: transfer learning from dense, sparse and unlearned source models (SPEC
// section 9, issue 8); the experiment is apps/transfer.h's. results.md / results.json in --out.
#include <cstdio>
#include <filesystem>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/options.h"
#include "apps/report.h"
#include "apps/stages.h"
#include "apps/transfer.h"
#include "framework/atomic_file.h"
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;

namespace {

/// `demo` (estimated 10 minutes on 2 cores, not yet timed), `cpu` (the CPU-scale run: all
/// 22,500 source and 22,500 target training images at width 0.25; 33 minutes measured on 2
/// cores, docs/results.md) and `cifar100`
/// (SPEC's CIFAR-10 -> CIFAR-100, for when its files are present; not timed).
const std::map<std::string, std::string>& transfer_presets() {
  static const std::map<std::string, std::string> p = {
      {"cpu",
       "dataset = cifar10\nsource-classes = 0-4\ntarget-classes = 5-9\nmodel = resnet18\n"
       "width = 0.25\nepochs = 12\nbatch-size = 128\nlr = 0.1\nlr-schedule = onecycle\n"
       "rewind-epoch = 2\nprune-epochs = 6\nrates = 0, 0.95\nunlearn = l1\n"
       "unlearn-forget = class:0\nl1.epochs = 2\ntransfer-epochs = 4\nout = runs/transfer-cpu\n"},
      // With CIFAR-100 present (lethe download --dataset cifar100): CIFAR-10 -> CIFAR-100.
      {"cifar100",
       "dataset = cifar10\ntarget-dataset = cifar100\nsource-classes = all\n"
       "target-classes = all\nmodel = resnet18\nwidth = 0.25\nepochs = 12\nbatch-size = 128\n"
       "lr = 0.1\nlr-schedule = onecycle\nrewind-epoch = 2\nprune-epochs = 6\n"
       "rates = 0, 0.95\nunlearn = l1\nunlearn-forget = class:0\nl1.epochs = 2\n"
       "transfer-epochs = 8\nout = runs/transfer-cifar100\n"},
      {"demo",
       "dataset = cifar10\nsource-classes = 0-4\ntarget-classes = 5-9\ntrain-limit = 10000\n"
       "val-limit = 1000\nmodel = resnet18\nwidth = 0.125\nepochs = 15\nbatch-size = 128\n"
       "lr = 0.1\nlr-schedule = onecycle\nrewind-epoch = 2\nprune-epochs = 5\n"
       "rates = 0, 0.95\nunlearn = l1\nunlearn-forget = class:0\nl1.epochs = 2\n"
       "transfer-epochs = 4\nout = runs/transfer-demo\n"},
  };
  return p;
}

Command transfer_command() {
  Command c;
  c.name = "transfer";
  c.summary =
      "Transfer learning: train a source model on --source-classes, OMP-prune it to each of\n"
      "--rates, optionally unlearn --unlearn-forget from it (--unlearn METHOD), then fine-tune\n"
      "each on --target-classes (of --target-dataset, default the same data set) with a new\n"
      "classifier head, keeping the mask; a model trained from scratch on the target is the\n"
      "reference. results.md / results.json in --out; stages cached in <out>/stages.";
  std::vector<Option> opts = {
      {"source-classes", "0-4", "classes of the source task: all | C | A-B, comma-separated"},
      {"target-classes", "5-9", "classes of the target task (of --target-dataset)"},
      {"target-dataset", "", "the target task's data set (e.g. cifar100); empty: --dataset"},
      {"rates", "0, 0.95", "OMP pruning rates of the source models; the first must be 0"},
      {"unlearn", "", "also transfer each source after unlearning with this method"},
      {"unlearn-forget", "class:0", "what the source forgets (its own label space)"},
      {"unlearn-seed", "1", "seed of the unlearning method"},
      {"transfer-epochs", "5", "epochs of fine-tuning on the target"},
      {"transfer-lr", "0.01", "learning rate of the fine-tuning"},
      {"transfer-schedule", "cosine", "LR schedule of the fine-tuning"},
  };
  opts = experiment_options(std::move(opts), "2", "runs/transfer");
  set_option(opts, "epochs", "10", "epochs of the dense source training");
  c.options = opts;
  c.presets = transfer_presets();
  return c;
}

}  // namespace

int cmd_transfer(const std::vector<std::string>& args) {
  const Command cmd = transfer_command();
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg);
  const std::string out = cfg.get_string("out", "runs/transfer");
  cfg.get_bool("resume", false);
  const DataBundle source = load_data(cfg);
  const std::string target_dataset = cfg.get_string("target-dataset", "");
  DataBundle target_other;
  if (!target_dataset.empty()) {
    Config tcfg = cfg;
    tcfg.set("dataset", target_dataset, "target-dataset");
    target_other = load_data(tcfg);
  }
  const DataBundle& target = target_dataset.empty() ? source : target_other;
  const nlohmann::json results = run_transfer(cfg, source, target, settings);
  const std::string md = transfer_markdown(results);
  fs::create_directories(out);
  write_text_atomic((fs::path(out) / "results.json").string(), results.dump(2) + "\n");
  write_text_atomic((fs::path(out) / "results.md").string(), md);
  std::printf("%s\nresults in %s (results.md, results.json)\n", md.c_str(), out.c_str());
  return 0;
}

}  // namespace lethe::cli
