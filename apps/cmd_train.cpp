// `lethe train`: trains a dense model (SPEC section 3) with progress, checkpoints, resume and
// a results table; `lethe eval`: accuracy per split of a checkpoint.
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <tuple>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/options.h"
#include "apps/report.h"
#include "data/split.h"
#include "data/synthetic.h"
#include "framework/checkpoint.h"
#include "framework/version.h"
#include "models/model.h"
#include "models/trainer.h"

namespace lethe::cli {

namespace fs = std::filesystem;

namespace {

Command train_command() {
  Command c;
  c.name = "train";
  c.summary = "Train a dense model; writes checkpoints (last, best, the epoch-8 snapshot),\n"
              "train_log.json, results.json and summary.md into --out.";
  c.options = concat(concat(training_options(), {{"snapshot-epoch", "8",
                                                    "save epoch<N>.safetensors for OMP "
                                                    "rewinding (0: none)"}}),
                     concat(data_options(), setting_options()));
  c.presets = training_presets();
  return c;
}

Command eval_command() {
  Command c;
  c.name = "eval";
  c.summary = "Accuracy of a checkpoint on the training split, the validation split and the\n"
              "test set (eval mode, no augmentation).";
  c.options = concat(concat({{"model", "", "checkpoint (.safetensors) to evaluate"},
                             {"batch-size", "500", "images per forward pass"},
                             {"out", "", "folder for results.json / summary.md (optional)"}},
                            data_options()),
                     setting_options());
  return c;
}

}  // namespace

DataBundle load_data(const Config& cfg) {
  DataBundle d;
  const std::string name = cfg.get_string("dataset", "cifar10");
  if (name == "synthetic") {
    d.train = data::make_synthetic_split(data::Split::Train);
    d.test = data::make_synthetic_split(data::Split::Test);
    d.source = "built-in synthetic data (not CIFAR)";
  } else {
    const std::string dir = data::resolve_data_dir(cfg.get_string("data-dir", ""), name);
    d.train = data::load_dataset(name, dir, data::Split::Train);
    d.test = data::load_dataset(name, dir, data::Split::Test);
    d.source = dir;
  }
  d.test_idx.resize(static_cast<size_t>(d.test.size()));
  std::iota(d.test_idx.begin(), d.test_idx.end(), int64_t{0});
  const int64_t split_seed = cfg.get_int("split-seed", 0);
  data::TrainValSplit split =
      data::split_train_val(d.train.labels, d.train.num_classes, static_cast<uint64_t>(split_seed));
  d.train_idx = std::move(split.train);
  d.val_idx = std::move(split.val);
  const int64_t limit = cfg.get_int("train-limit", 0);
  LETHE_CHECK(limit >= 0, "--train-limit must be >= 0, got ", limit);
  if (limit > 0 && limit < static_cast<int64_t>(d.train_idx.size())) d.train_idx.resize(limit);
  return d;
}

int cmd_train(const std::vector<std::string>& args) {
  const Command cmd = train_command();
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg, /*allow_cuda=*/true);
  const Device dev = parse_device(cfg.get_string("device", "cpu"));
  const std::string started = now_iso8601();
  DataBundle d = load_data(cfg);

  models::ModelSpec spec;
  spec.arch = cfg.get_string("model", "resnet18");
  spec.width = cfg.get_double("width", 0.25);
  spec.num_classes = d.train.num_classes;
  spec.dataset = d.train.name;
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  Generator init_gen(seed, 0);
  auto model = models::make_model(spec, init_gen);
  model->to(dev);  // initialised on the host (the same weights on every device), then moved

  train::TrainOptions o = training_recipe(cfg);
  o.out_dir = cfg.get_string("out", "runs/train");
  o.resume = cfg.get_bool("resume", false);
  o.snapshot_epoch = cfg.get_int("snapshot-epoch", 8);
  o.metadata = models::model_metadata(spec);
  o.metadata["split_seed"] = std::to_string(cfg.get_int("split-seed", 0));
  o.metadata["train_limit"] = std::to_string(cfg.get_int("train-limit", 0));

  std::fprintf(stderr, "[train] %s width %s on %s: %zu training / %zu validation / %lld test images, "
               "%lld epochs, batch %lld, %s\n",
               spec.arch.c_str(), models::format_width(spec.width).c_str(), d.source.c_str(),
               d.train_idx.size(), d.val_idx.size(), static_cast<long long>(d.test.size()),
               static_cast<long long>(o.epochs), static_cast<long long>(o.batch_size),
               compute_place(settings).c_str());
  const train::TrainResult r = train::fit(*model, d.train, d.train_idx, d.train, d.val_idx, o);
  if (!r.finished) {
    std::fprintf(stderr, "[train] stopped at step %lld of %lld; continue with --resume\n",
                 static_cast<long long>(r.start_step + r.steps_run),
                 static_cast<long long>(r.total_steps));
    return 0;
  }

  const std::vector<int64_t>& test_idx = d.test_idx;
  const train::EvalResult last_test = train::evaluate(*model, d.test, test_idx);
  Generator g2(seed, 0);
  auto best = models::make_model(spec, g2);
  const std::string best_path = (fs::path(o.out_dir) / "best.safetensors").string();
  best->to(dev);
  load_checkpoint(best_path, *best, models::model_metadata(spec));
  const train::EvalResult best_test = train::evaluate(*best, d.test, test_idx);

  double best_val = -1, epoch_s = 0;
  for (const auto& e : r.history) {
    best_val = std::max(best_val, e.val_acc);
    epoch_s += e.seconds;
  }
  epoch_s /= static_cast<double>(r.history.size());
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.history)
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_acc", e.train_acc},
                      {"val_acc", e.val_acc}, {"seconds", e.seconds},
                      {"images_per_s", e.images_per_s}});
  nlohmann::json results = {
      {"lethe_version", version()},
      {"command", "lethe train"},
      {"config", config_json(cfg)},
      {"settings", settings},
      {"machine", machine_info()},
      {"data", d.source},
      {"started", started},
      {"metrics",
       {{"test_acc_last", last_test.accuracy},
        {"test_acc_best", best_test.accuracy},
        {"best_val_acc", best_val}}},
      {"timings_s", {{"train", r.seconds}, {"mean_epoch", epoch_s}}},
      // 0 for a run from scratch; the step of last.safetensors for --resume (what this
      // process ran is the rest: per_epoch also holds the earlier processes' epochs).
      {"resumed_from_step", r.start_step},
      {"per_epoch", epochs}};
  std::ostringstream md;
  md << "# lethe train: " << spec.arch << " width " << models::format_width(spec.width) << "\n\n"
     << "| metric | value |\n|---|---|\n"
     << "| test accuracy (last) | " << last_test.accuracy << "% |\n"
     << "| test accuracy (best by validation) | " << best_test.accuracy << "% |\n"
     << "| best validation accuracy | " << best_val << "% |\n"
     << "| epochs | " << r.history.size() << " |\n"
     << "| mean epoch time | " << epoch_s << " s |\n\n"
     << "Data: " << d.source << ". Machine: " << machine_info()["cpu"].get<std::string>()
     << ", " << compute_place(settings) << ".\n";
  write_results(o.out_dir, results, md.str());
  std::printf("test accuracy: %.2f%% (last), %.2f%% (best by validation %.2f%%); results in %s\n",
              last_test.accuracy, best_test.accuracy, best_val, o.out_dir.c_str());
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  const Command cmd = eval_command();
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg, /*allow_cuda=*/true);
  const Device dev = parse_device(cfg.get_string("device", "cpu"));
  const std::string path = cfg.get_string("model", "");
  LETHE_CHECK(!path.empty(), "lethe eval needs --model CHECKPOINT");
  const Checkpoint peek = read_checkpoint(path);
  const models::ModelSpec spec = models::spec_from_metadata(peek.metadata);
  // The split the model was trained with, unless asked otherwise.
  if (!cfg.has("split-seed") || cfg.get_string("split-seed", "") == "0") {
    auto it = peek.metadata.find("split_seed");
    if (it != peek.metadata.end()) cfg.set("split-seed", it->second, path);
  }
  if (cfg.get_string("dataset", "cifar10") != spec.dataset) cfg.set("dataset", spec.dataset, path);
  const int64_t batch = cfg.get_int("batch-size", 500);
  const std::string out = cfg.get_string("out", "");
  cfg.set("train-limit", "0", "eval");  // accuracy on the whole training split
  DataBundle d = load_data(cfg);

  Generator gen(0, 0);
  auto model = models::make_model(spec, gen);
  model->to(dev);
  load_checkpoint(path, *model, models::model_metadata(spec));
  nlohmann::json acc;
  std::ostringstream md;
  md << "# lethe eval: " << path << "\n\n| split | images | accuracy | loss |\n|---|---|---|---|\n";
  for (const auto& [name, data, idx] :
       {std::tuple{"train", &d.train, &d.train_idx}, std::tuple{"val", &d.train, &d.val_idx},
        std::tuple{"test", &d.test, &d.test_idx}}) {
    const train::EvalResult r = train::evaluate(*model, *data, *idx, batch);
    std::printf("%-5s %6lld images  accuracy %6.2f%%  loss %.4f\n", name,
                static_cast<long long>(r.n), r.accuracy, r.loss);
    acc[name] = {{"images", r.n}, {"accuracy", r.accuracy}, {"loss", r.loss}};
    md << "| " << name << " | " << r.n << " | " << r.accuracy << "% | " << r.loss << " |\n";
  }
  if (!out.empty())
    write_results(out, {{"lethe_version", version()}, {"command", "lethe eval"},
                        {"checkpoint", path}, {"config", config_json(cfg)},
                        {"settings", settings}, {"machine", machine_info()},
                        {"metrics", acc}},
                  md.str());
  return 0;
}

}  // namespace lethe::cli
