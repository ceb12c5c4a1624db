// `lethe prune`: OMP, IMP, SynFlow or random pruning (SPEC section 4) with the training flags,
// presets, progress, checkpoints and --resume of `lethe train`; prints the sparsity report and
// writes results.json / summary.md (test accuracy of the pruned model, sparsity overall and per
// layer) into --out. The stages and folders are prune/pipeline.h's.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/options.h"
#include "apps/report.h"
#include "framework/checkpoint.h"
#include "framework/version.h"
#include "models/model.h"
#include "models/trainer.h"
#include "prune/mask.h"
#include "prune/pipeline.h"

namespace lethe::cli {

namespace fs = std::filesystem;

namespace {

Command prune_command() {
  Command c;
  c.name = "prune";
  c.summary =
      "Prune a model's conv weights and (re)train it with the mask. omp: train dense (or\n"
      "take --dense), one global magnitude prune, rewind to the epoch-<rewind-epoch> snapshot,\n"
      "retrain all epochs with the LR schedule advanced by that many epochs. imp: rounds of\n"
      "{prune 20% of the remaining, rewind, retrain} until --rate. synflow: data-free mask at\n"
      "initialisation, then normal training. random: a seeded random global mask, then as omp.\n"
      "Writes the stages' checkpoints (with masks), results.json and summary.md into --out.";
  std::vector<Option> opts = {
      {"method", "omp", "omp | imp | synflow | random"},
      {"rate", "0.95", "fraction of all conv weights to prune (0..1)"},
      {"dense", "", "existing dense run (a 'lethe train' --out folder with last.safetensors and "
                    "epoch<rewind-epoch>.safetensors); empty: train it into <out>/dense"},
      {"rewind-epoch", "8", "the dense snapshot omp / imp / random rewind to"},
      {"imp-round-rate", "0.2", "fraction of the remaining weights each IMP round prunes"},
      {"synflow-iterations", "100", "SynFlow pruning iterations"},
      {"synflow-precision", "float64", "float64 | float32: dtype of the SynFlow scoring"},
      {"max-stages", "0", "train at most N stages (dense, rounds) in this call, then stop; "
                          "continue with --resume (0: all)"},
  };
  opts = concat(concat(opts, training_options()), concat(data_options(), setting_options()));
  set_option(opts, "epochs", "20", "epochs of the dense run and of every retraining");
  set_option(opts, "seed", "1",
             "seed of the initialisation, data order, augmentation and random pruning");
  set_option(opts, "out", "runs/prune", "output folder");
  set_option(opts, "resume", "false",
             "continue the run in --out: finished stages are skipped, masks reused");
  set_option(opts, "stop-at-step", "0", "stop the current stage at this global step (0: never)");
  c.options = opts;
  // The presets of `lethe train`, so `--preset cpu` prunes the model `lethe train --preset cpu`
  // trains (and can take it as --dense).
  c.presets = training_presets();
  return c;
}

/// Test accuracy of the checkpoint at `path` (a fresh model with the file's masks applied).
train::EvalResult test_checkpoint(const models::ModelSpec& spec, const std::string& path,
                                  const data::Dataset& test, const std::vector<int64_t>& idx,
                                  Device dev) {
  Generator gen(0, 0);
  auto model = models::make_model(spec, gen);
  model->to(dev);
  const Checkpoint ck = load_checkpoint(path, *model, models::model_metadata(spec));
  prune::apply_masks(*model, prune::masks_from_checkpoint(ck, *model, path));
  return train::evaluate(*model, test, idx);
}

}  // namespace

int cmd_prune(const std::vector<std::string>& args) {
  const Command cmd = prune_command();
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg, /*allow_cuda=*/true);
  const std::string started = now_iso8601();

  prune::PipelineOptions po;
  po.device = parse_device(cfg.get_string("device", "cpu"));
  po.method = cfg.get_string("method", "omp");
  po.rate = cfg.get_double("rate", 0.95);
  po.dense_dir = cfg.get_string("dense", "");
  po.rewind_epoch = cfg.get_int("rewind-epoch", 8);
  po.imp_round_rate = cfg.get_double("imp-round-rate", 0.2);
  po.synflow_iterations = static_cast<int>(cfg.get_int("synflow-iterations", 100));
  const std::string precision = cfg.get_string("synflow-precision", "float64");
  LETHE_CHECK(precision == "float64" || precision == "float32", "--synflow-precision must be ",
              "float64 or float32, got '", precision, "'");
  po.synflow_float64 = precision == "float64";
  po.max_stages = cfg.get_int("max-stages", 0);
  po.seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  po.out_dir = cfg.get_string("out", "runs/prune");
  po.resume = cfg.get_bool("resume", false);

  po.train = training_recipe(cfg);
  train::TrainOptions& o = po.train;
  prune::check_options(po);  // before the data is loaded: bad options fail at once

  DataBundle d = load_data(cfg);
  models::ModelSpec spec;
  spec.arch = cfg.get_string("model", "resnet18");
  spec.width = cfg.get_double("width", 0.25);
  spec.num_classes = d.train.num_classes;
  spec.dataset = d.train.name;
  // The metadata `lethe train` writes, so a dense run made here and one made by lethe train
  // are interchangeable (--dense, --resume).
  o.metadata = models::model_metadata(spec);
  o.metadata["split_seed"] = std::to_string(cfg.get_int("split-seed", 0));
  o.metadata["train_limit"] = std::to_string(cfg.get_int("train-limit", 0));

  if (!o.quiet)
    std::fprintf(stderr, "[prune] %s to %.4g%% on %s width %s (%s): %zu training / %zu "
                 "validation / %lld test images, %lld epochs per stage, batch %lld, %s\n",
                 po.method.c_str(), 100.0 * po.rate, spec.arch.c_str(),
                 models::format_width(spec.width).c_str(), d.source.c_str(), d.train_idx.size(),
                 d.val_idx.size(), static_cast<long long>(d.test.size()),
                 static_cast<long long>(o.epochs), static_cast<long long>(o.batch_size),
                 compute_place(settings).c_str());
  const prune::PipelineResult r =
      prune::run_pipeline(spec, d.train, d.train_idx, d.train, d.val_idx, po);
  if (!r.finished) {
    if (r.rounds.empty())
      std::fprintf(stderr, "[prune] stopped in the dense stage; continue with --resume\n");
    else
      std::fprintf(stderr, "[prune] stopped at round %lld of %lld; continue with --resume\n",
                   static_cast<long long>(r.rounds.back().round),
                   static_cast<long long>(r.rounds_planned));
    return 0;
  }

  const prune::SparsityReport sparsity = prune::sparsity_report(*r.model);
  std::printf("%s", prune::format_sparsity(sparsity).c_str());

  const std::vector<int64_t>& test_idx = d.test_idx;
  const train::EvalResult last_test = train::evaluate(*r.model, d.test, test_idx);
  const train::EvalResult best_test =
      test_checkpoint(spec, (fs::path(po.out_dir) / "best.safetensors").string(), d.test, test_idx,
                      po.device);
  nlohmann::json dense = nullptr;
  const std::string dense_last = (fs::path(r.dense_dir) / "last.safetensors").string();
  if (!r.dense_dir.empty() && po.method != "random" && fs::exists(dense_last))
    dense = {{"dir", r.dense_dir},
             {"test_acc_last", test_checkpoint(spec, dense_last, d.test, test_idx, po.device).accuracy}};

  double best_val = -1, train_s = 0, mask_s = 0, epoch_s = 0;
  for (const auto& e : r.final_training.history) {
    best_val = std::max(best_val, e.val_acc);
    epoch_s += e.seconds;
  }
  if (!r.final_training.history.empty())
    epoch_s /= static_cast<double>(r.final_training.history.size());
  nlohmann::json rounds = nlohmann::json::array();
  for (const auto& rec : r.rounds) {
    train_s += rec.train_seconds;
    mask_s += rec.mask_seconds;
    rounds.push_back({{"round", rec.round},
                      {"pruned", rec.pruned},
                      {"total", rec.total},
                      {"sparsity", prune::fraction(rec.pruned, rec.total)},
                      {"dir", rec.dir},
                      {"train_s", rec.train_seconds},
                      {"mask_s", rec.mask_seconds}});
  }
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.final_training.history)
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_acc", e.train_acc},
                      {"val_acc", e.val_acc}, {"lr", e.lr}, {"seconds", e.seconds},
                      {"images_per_s", e.images_per_s}});
  nlohmann::json results = {
      {"lethe_version", version()},
      {"command", "lethe prune"},
      {"config", config_json(cfg)},
      {"settings", settings},
      {"machine", machine_info()},
      {"data", d.source},
      {"started", started},
      {"method", po.method},
      {"rate", po.rate},
      {"metrics",
       {{"test_acc_last", last_test.accuracy},
        {"test_acc_best", best_test.accuracy},
        {"best_val_acc", best_val},
        {"sparsity", sparsity.sparsity()}}},
      {"sparsity", prune::sparsity_json(sparsity)},
      {"dense", dense},
      {"rounds", rounds},
      {"timings_s",
       {{"dense", r.dense_seconds}, {"masks", mask_s}, {"train", train_s},
        {"mean_epoch", epoch_s}}},
      {"per_epoch", epochs}};

  std::ostringstream md;
  md << "# lethe prune: " << po.method << " to " << 100.0 * po.rate << "% on " << spec.arch
     << " width " << models::format_width(spec.width) << "\n\n"
     << "| metric | value |\n|---|---|\n"
     << "| sparsity (zero conv weights) | " << 100.0 * sparsity.sparsity() << "% ("
     << sparsity.zeros << " of " << sparsity.total << ") |\n"
     << "| test accuracy (last) | " << last_test.accuracy << "% |\n"
     << "| test accuracy (best by validation) | " << best_test.accuracy << "% |\n"
     << "| best validation accuracy | " << best_val << "% |\n";
  if (!dense.is_null())
    md << "| dense test accuracy (last) | " << dense["test_acc_last"].get<double>() << "% |\n";
  md << "| pruning rounds | " << r.rounds.size() << " |\n"
     << "| mask time (this call) | " << mask_s << " s |\n"
     << "| dense training time (this call) | " << r.dense_seconds << " s |\n"
     << "| retraining time (this call) | " << train_s << " s |\n\n"
     << "## Sparsity per layer\n\n"
     << "| layer | shape | zeros | weights | sparsity |\n|---|---|---|---|---|\n";
  for (const auto& l : sparsity.layers)
    md << "| " << l.name << " | " << shape_str(l.shape) << " | " << l.zeros << " | " << l.total
       << " | " << 100.0 * l.sparsity() << "% |\n";
  md << "\nData: " << d.source << ". Machine: " << machine_info()["cpu"].get<std::string>()
     << ", " << compute_place(settings) << ".\n";
  write_results(po.out_dir, results, md.str());
  std::printf("%s %.4g%%: sparsity %.4f%%, test accuracy %.2f%% (last), %.2f%% (best by "
              "validation %.2f%%); results in %s\n",
              po.method.c_str(), 100.0 * po.rate, 100.0 * sparsity.sparsity(), last_test.accuracy,
              best_test.accuracy, best_val, po.out_dir.c_str());
  return 0;
}

}  // namespace lethe::cli
