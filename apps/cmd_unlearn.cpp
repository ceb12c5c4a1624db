// `lethe unlearn`: runs one unlearning method (SPEC section 6) on a trained dense or pruned
// checkpoint for one forgetting scenario (SPEC section 5), evaluates UA / MIA-Efficacy / RA /
// TA and the RTE (SPEC section 7), prints them and writes results.json, summary.md, the
// forget index list and the unlearned checkpoint (with the unchanged masks) into --out.
//
// The data split is the checkpoint's: data set, split seed and train limit come from its
// metadata unless given, so forget and retain are subsets of the images it was trained on.
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
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;

namespace {

Command unlearn_command() {
  Command c;
  c.name = "unlearn";
  c.summary =
      "Unlearn a forget set from a trained (dense or pruned) checkpoint with one method, then\n"
      "evaluate UA, MIA-Efficacy, RA, TA and the method's run time (RTE). Method flags left\n"
      "empty take SPEC's defaults for the method. Writes results.json, summary.md,\n"
      "forget_indices.txt and unlearned.safetensors (masks kept) into --out.";
  std::vector<Option> opts = {
      {"model", "", "trained checkpoint (.safetensors; its masks, if any, stay fixed)"},
      {"method", "", "retrain | ft | ga | rl | ff | iu | l1 (l1-sparse)"},
      {"forget", "class:0", "class:C | random:N | file:PATH (one original index per line)"},
      {"seed", "1", "seed of the unlearning run: data order, augmentation, RL labels, FF "
                    "noise and the random:N draw"},
      {"init-seed", "", "retrain's initialisation seed (default: the checkpoint's seed)"},
  };
  for (const auto& [key, help] : unlearn::method_option_help()) opts.push_back({key, "", help});
  const std::vector<Option> rest = {
      {"eval-batch-size", "500", "images per forward pass when evaluating"},
      {"mia-variants", "true", "also run the entropy, correctness and probability attacks"},
      {"save-model", "true", "write unlearned.safetensors"},
      {"out", "runs/unlearn", "output folder"},
      {"quiet", "false", "no progress lines"},
  };
  opts = concat(concat(opts, rest), concat(data_options(), setting_options()));
  set_option(opts, "dataset", "", "data set (default: the checkpoint's)");
  set_option(opts, "split-seed", "", "train/validation split seed (default: the checkpoint's)");
  set_option(opts, "train-limit", "", "first N training-split images (default: the checkpoint's)");
  c.options = opts;
  return c;
}

/// Fills an empty data key from the checkpoint's metadata (or `fallback`).
void from_checkpoint(Config& cfg, const std::string& key, const io::StMetadata& meta,
                     const std::string& meta_key, const std::string& fallback,
                     const std::string& path) {
  if (!cfg.get_string(key, "").empty()) return;
  auto it = meta.find(meta_key);
  cfg.set(key, it != meta.end() ? it->second : fallback, path);
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

int cmd_unlearn(const std::vector<std::string>& args) {
  const Command cmd = unlearn_command();
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg, /*allow_cuda=*/true);
  const Device dev = parse_device(cfg.get_string("device", "cpu"));
  const std::string started = now_iso8601();
  const std::string path = cfg.get_string("model", "");
  LETHE_CHECK(!path.empty(), "lethe unlearn needs --model CHECKPOINT (a trained .safetensors)");
  const std::string method_flag = cfg.get_string("method", "");
  LETHE_CHECK(!method_flag.empty(), "lethe unlearn needs --method (retrain, ft, ga, rl, ff, iu "
              "or l1)");
  const std::string method = unlearn::canonical_method(method_flag);
  const unlearn::ForgetSpec spec = unlearn::parse_forget_spec(cfg.get_string("forget", "class:0"));
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  const bool quiet = cfg.get_bool("quiet", false);
  const std::string out = cfg.get_string("out", "runs/unlearn");

  // Options first, so a bad flag fails before any data is read.
  unlearn::MethodOptions mo = unlearn::default_method_options(spec);
  unlearn::apply_method_config(mo, method, cfg);
  unlearn::set_seed(mo, seed);
  unlearn::set_quiet(mo, quiet);
  unlearn::EvalOptions eo;
  eo.batch_size = cfg.get_int("eval-batch-size", 500);
  eo.mia_variants = cfg.get_bool("mia-variants", true);
  const bool save_model = cfg.get_bool("save-model", true);

  const std::string init_flag = cfg.get_string("init-seed", "");
  const unlearn::TrainedModel tm =
      unlearn::load_trained_model(path, init_flag.empty() ? -1 : cfg.get_int("init-seed", 1), dev);
  const models::ModelSpec& mspec = tm.spec;
  const std::string dataset = cfg.get_string("dataset", "");
  LETHE_CHECK(dataset.empty() || dataset == mspec.dataset, "--dataset ", dataset, " but ", path,
              " was trained on ", mspec.dataset);
  cfg.set("dataset", mspec.dataset, path);
  from_checkpoint(cfg, "split-seed", tm.metadata, "split_seed", "0", path);
  from_checkpoint(cfg, "train-limit", tm.metadata, "train_limit", "0", path);

  DataBundle d = load_data(cfg);
  const unlearn::ForgetSet fset = unlearn::make_forget_set(spec, d.train, d.train_idx, seed);
  const std::vector<int64_t> test_idx = unlearn::test_set_indices(d.test, fset);

  nn::Module* model = tm.model.get();
  const prune::MaskSet& masks = tm.masks;
  const double sparsity = masks.empty() ? 0.0 : prune::sparsity_report(*model).sparsity();

  if (!quiet)
    std::fprintf(stderr, "[unlearn] %s on %s (%s width %s, %s, sparsity %.2f%%): forget %s = "
                 "%zu images, retain %zu, test %zu; %s\n",
                 method.c_str(), path.c_str(), mspec.arch.c_str(),
                 models::format_width(mspec.width).c_str(), d.source.c_str(), 100.0 * sparsity,
                 spec.str().c_str(), fset.forget.size(), fset.retain.size(), test_idx.size(),
                 compute_place(settings).c_str());
  const unlearn::MethodResult r = unlearn::run_method(method, *model, d.train, fset, masks, mo,
                                                      tm.factory());
  if (!quiet) std::fprintf(stderr, "[unlearn] %s took %.1f s; evaluating\n", method.c_str(), r.seconds);
  const unlearn::Metrics m = unlearn::evaluate_unlearning(*model, d.train, d.test, fset, eo);

  fs::create_directories(out);
  unlearn::write_index_file((fs::path(out) / "forget_indices.txt").string(), fset.forget);
  if (save_model) {
    io::StMetadata meta = models::model_metadata(mspec);
    for (const char* k : {"split_seed", "train_limit", "seed", "prune_method"}) {
      auto it = tm.metadata.find(k);
      if (it != tm.metadata.end()) meta[k] = it->second;
    }
    meta["format"] = "lethe-checkpoint-1";
    meta["lethe_version"] = version();
    meta["kind"] = "unlearned";
    meta["source"] = path;
    meta["unlearn_method"] = method;
    meta["forget"] = spec.str();
    meta["unlearn_seed"] = std::to_string(seed);
    meta["epoch"] = "0";
    meta["step"] = "0";
    if (!masks.empty()) meta["sparsity"] = std::to_string(sparsity);
    train::save_training_checkpoint((fs::path(out) / "unlearned.safetensors").string(), *model,
                                    nullptr, masks, meta);
  }

  nlohmann::json metrics = unlearn::to_json(m);
  metrics["RTE_min"] = r.rte_minutes();
  const nlohmann::json results = {
      {"lethe_version", version()},
      {"command", "lethe unlearn"},
      {"config", config_json(cfg)},
      {"settings", settings},
      {"machine", machine_info()},
      {"data", d.source},
      {"started", started},
      {"checkpoint", path},
      {"model", {{"arch", mspec.arch}, {"width", mspec.width}, {"sparsity", sparsity},
                 {"kind", masks.empty() ? "dense" : "sparse"}}},
      {"method", method},
      {"options", unlearn::method_options_json(method, mo)},
      {"forget",
       {{"spec", spec.str()}, {"kind", spec.kind_name()}, {"class", fset.forgotten_class},
        {"n_forget", fset.forget.size()}, {"n_retain", fset.retain.size()},
        {"n_test", test_idx.size()}}},
      {"metrics", metrics},
      {"timings_s", {{"unlearn", r.seconds}, {"evaluate", m.seconds}}},
      {"unlearn", unlearn::to_json(r)}};

  std::ostringstream md;
  md << "# lethe unlearn: " << method << " on " << spec.str() << "\n\n"
     << "Model: " << path << " (" << mspec.arch << " width " << models::format_width(mspec.width)
     << ", " << (masks.empty() ? "dense" : "sparsity " + fmt(100.0 * sparsity) + "%") << ").  \n"
     << "Forget " << fset.forget.size() << " / retain " << fset.retain.size() << " / test "
     << test_idx.size() << " images; MIA members: first " << m.n_members << " retain images.\n\n"
     << "| metric | value |\n|---|---|\n"
     << "| UA | " << fmt(m.UA) << " |\n"
     << "| MIA-Efficacy (confidence) | " << fmt(m.MIA_efficacy) << " |\n"
     << "| RA | " << fmt(m.RA) << " |\n"
     << "| TA | " << fmt(m.TA) << " |\n"
     << "| RTE | " << r.seconds << " s (" << r.rte_minutes() << " min) |\n";
  for (unlearn::MiaFeature f : unlearn::all_mia_features())
    if (f != unlearn::MiaFeature::Confidence && m.mia.get(f) >= 0)
      md << "| MIA-Efficacy (" << unlearn::to_string(f) << ") | " << fmt(m.mia.get(f)) << " |\n";
  md << "\nOptions: `" << unlearn::method_options_json(method, mo).dump() << "`.  \n"
     << "Evaluation took " << m.seconds << " s (not part of the RTE). Data: " << d.source
     << ". Machine: " << machine_info()["cpu"].get<std::string>() << ", "
     << compute_place(settings) << ".\n";
  write_results(out, results, md.str());

  std::printf("%s %s: UA %.2f  MIA-Efficacy %.2f  RA %.2f  TA %.2f  RTE %.3f min",
              method.c_str(), spec.str().c_str(), m.UA, m.MIA_efficacy, m.RA, m.TA,
              r.rte_minutes());
  if (eo.mia_variants)
    std::printf("  (MIA entropy %.2f, correctness %.2f, probability %.2f)", m.mia.entropy,
                m.mia.correctness, m.mia.probability);
  std::printf("; results in %s\n", out.c_str());
  return 0;
}

}  // namespace lethe::cli
