// The stages and table of `lethe transfer` (apps/transfer.h).
#include "apps/transfer.h"

#include <filesystem>
#include <numeric>
#include <sstream>

#include "apps/report.h"
#include "apps/stages.h"
#include "framework/lr_schedule.h"
#include "framework/rng.h"
#include "kernels/check.h"
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// RNG stream of the transferred model's new classifier head (docs/design.md).
constexpr uint64_t kHeadStream = 8;

/// One task: the images of some classes of a bundle, relabelled 0..k-1, with the bundle's
/// train / validation split carried over.
struct Task {
  data::Dataset train, test;
  std::vector<int64_t> train_idx, val_idx, test_idx;
  std::vector<int64_t> classes;
  StageData view() const { return {train, train_idx, val_idx, test, test_idx}; }
};

Task make_task(const DataBundle& d, const std::vector<int64_t>& classes) {
  Task t;
  t.classes = classes;
  std::vector<int64_t> map;
  t.train = data::select_classes(d.train, classes, &map);
  t.train_idx = data::map_indices(d.train_idx, map);
  t.val_idx = data::map_indices(d.val_idx, map);
  t.test = data::select_classes(d.test, classes);
  t.test_idx.resize(static_cast<size_t>(t.test.size()));
  std::iota(t.test_idx.begin(), t.test_idx.end(), int64_t{0});
  LETHE_CHECK(!t.train_idx.empty() && !t.test_idx.empty(), "the classes of ", d.train.name,
              " chosen for a task have no training or no test images");
  return t;
}

}  // namespace

json run_transfer(const Config& cfg, const DataBundle& src_in, const DataBundle& tgt_in,
                  const json& settings) {
  const std::string out = cfg.get_string("out", "runs/transfer");
  const bool quiet = cfg.get_bool("quiet", false);
  const std::vector<double> rates = parse_rates(cfg, "rates", {"0", "0.95"});
  LETHE_CHECK(rates.front() == 0,
              "--rates must start with 0: the dense source is what every transfer is compared to");
  const std::string unlearn_name = cfg.get_string("unlearn", "");
  const std::string method = unlearn_name.empty() ? "" : unlearn::canonical_method(unlearn_name);

  Task src = make_task(src_in, data::parse_class_list(cfg.get_list("source-classes", {"0-4"}),
                                                      src_in.train.num_classes,
                                                      "source-classes"));
  Task tgt = make_task(tgt_in, data::parse_class_list(cfg.get_list("target-classes", {"5-9"}),
                                                      tgt_in.train.num_classes,
                                                      "target-classes"));
  limit_validation(cfg, src.val_idx);
  limit_validation(cfg, tgt.val_idx);
  if (src.train.name == tgt.train.name)
    for (int64_t c : tgt.classes)
      LETHE_CHECK(std::find(src.classes.begin(), src.classes.end(), c) == src.classes.end(),
                  "class ", c, " is both a source and a target class: the target task must be new");

  // The unlearning scenario (in the source task's own indices) and its options, and the
  // fine-tuning recipe: all checked before any training.
  unlearn::ForgetSpec forget_spec;
  unlearn::ForgetSet forget_set;
  unlearn::MethodOptions mo;
  const uint64_t unlearn_seed = static_cast<uint64_t>(cfg.get_int("unlearn-seed", 1));
  if (!method.empty()) {
    forget_spec = unlearn::parse_forget_spec(cfg.get_string("unlearn-forget", "class:0"));
    LETHE_CHECK(forget_spec.kind != unlearn::ForgetKind::File,
                "--unlearn-forget: use class:C or random:N (an index file would name images of the "
                "full data set, not of the source task)");
    forget_set = unlearn::make_forget_set(forget_spec, src.train, src.train_idx, unlearn_seed);
    mo = unlearn::default_method_options(forget_spec);
    unlearn::apply_method_config(mo, method, cfg, method + ".");
    unlearn::set_seed(mo, unlearn_seed);
    unlearn::set_quiet(mo, quiet);
  }
  train::TrainOptions to = recipe(cfg, cfg.get_int("transfer-epochs", 5));
  to.sgd.lr = cfg.get_double("transfer-lr", 0.01);
  to.lr_schedule = cfg.get_string("transfer-schedule", "cosine");
  LETHE_CHECK(to.epochs >= 1, "--transfer-epochs must be >= 1, got ", to.epochs);
  LETHE_CHECK(to.sgd.lr > 0, "--transfer-lr must be > 0, got ", to.sgd.lr);
  make_lr_schedule(to.lr_schedule, to.sgd.lr, 1, to.epochs);  // throws on a bad spec

  const uint64_t model_seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  const models::ModelSpec spec =
      experiment_spec(cfg, static_cast<int64_t>(src.classes.size()), src.train.name);
  const io::StMetadata meta = experiment_metadata(cfg, spec, model_seed);
  const models::ModelSpec tspec =
      experiment_spec(cfg, static_cast<int64_t>(tgt.classes.size()), tgt.train.name);
  const io::StMetadata tmeta = experiment_metadata(cfg, tspec, model_seed);

  json src_key = data_key(cfg, src.train.name, src.train_idx.size(), src.val_idx.size());
  src_key["classes"] = src.classes;
  json tgt_key = data_key(cfg, tgt.train.name, tgt.train_idx.size(), tgt.val_idx.size());
  tgt_key["classes"] = tgt.classes;
  const json model_key = {{"arch", spec.arch}, {"width", spec.width}};
  const int64_t rewind = cfg.get_int("rewind-epoch", 2);

  const int64_t n_src = static_cast<int64_t>(rates.size()) * (method.empty() ? 1 : 2);
  const int64_t total = 1 + static_cast<int64_t>(rates.size() - 1) +
                        (method.empty() ? 0 : static_cast<int64_t>(rates.size())) + n_src + 1;
  Progress progress(total, quiet, "transfer");
  const std::string started = now_iso8601();

  const train::TrainOptions dense_o = recipe(cfg, cfg.get_int("epochs", 10));
  const Stage dense = dense_stage(out, "source-dense", src_key, model_key, spec, model_seed, meta,
                                  dense_o, rewind, src.view(), progress);
  const train::TrainOptions prune_o = prune_recipe(cfg, dense_o, rewind);

  struct Source {
    double rate;
    std::string unlearn;  ///< "" or the method
    Stage stage;          ///< the stage whose file is the source checkpoint
    std::string path;
  };
  std::vector<Source> sources;
  for (double rate : rates) {
    Source s{rate, "", dense, dense.file("best.safetensors")};
    if (rate > 0) {
      const Stage st = omp_stage(out, cat("source-prune-", rate_percent(rate)), dense, spec,
                                 model_seed, meta, rate, rewind, prune_o, src.view(), progress);
      s = {rate, "", st, st.file("last.safetensors")};
    }
    sources.push_back(s);
    if (method.empty()) continue;
    const json key = {{"stage", "source-unlearn"}, {"model", s.stage.hash},
                      {"checkpoint", fs::path(s.path).filename().string()}, {"method", method},
                      {"options", unlearn::method_options_json(method, mo)},
                      {"forget", forget_spec.str()}, {"seed", unlearn_seed}};
    const Stage st = make_stage(out, cat("source-", rate_percent(rate), "-", method), key);
    progress.begin(cat("unlearning ", forget_spec.str(), " from the ", rate_percent(rate),
                       "% source with ", method), st.done());
    if (!st.done()) {
      unlearn::Stopwatch sw;
      fs::create_directories(st.dir);
      const unlearn::TrainedModel tm = unlearn::load_trained_model(s.path);
      const unlearn::MethodResult r =
          unlearn::run_method(method, *tm.model, src.train, forget_set, tm.masks, mo,
                              tm.factory());
      train::save_training_checkpoint(st.file("unlearned.safetensors"), *tm.model, nullptr,
                                      tm.masks, tm.metadata);
      const unlearn::Metrics m =
          unlearn::evaluate_unlearning(*tm.model, src.train, src.test, forget_set,
                                       unlearn::EvalOptions{500, false, {}});
      st.finish(key, {{"unlearn", unlearn::to_json(r)}, {"metrics", unlearn::to_json(m)}});
      progress.computed(sw.seconds());
    }
    sources.push_back({rate, method, st, st.file("unlearned.safetensors")});
  }

  json runs = json::array();
  for (const Source& s : sources) {
    const json key = {{"stage", "transfer"}, {"source", s.stage.hash},
                      {"checkpoint", fs::path(s.path).filename().string()},
                      {"target", tgt_key}, {"recipe", recipe_json(to)}};
    const std::string label =
        cat("r", rate_percent(s.rate), s.unlearn.empty() ? "" : "-", s.unlearn);
    const Stage st = make_stage(out, cat("transfer-", label), key);
    progress.begin(cat("transfer of the ", rate_percent(s.rate), "% source",
                       s.unlearn.empty() ? "" : " unlearned with ", s.unlearn, " (",
                       std::to_string(to.epochs), " epochs)"), st.done());
    if (!st.done()) {
      unlearn::Stopwatch sw;
      fs::create_directories(st.dir);
      const unlearn::TrainedModel tm = unlearn::load_trained_model(s.path);
      const double src_acc = train::evaluate(*tm.model, src.test, src.test_idx).accuracy;
      // A fresh head for the target's classes; the convs keep their weights and mask.
      Generator head_gen(model_seed, kHeadStream);
      models::reset_classifier(*tm.model, static_cast<int64_t>(tgt.classes.size()), head_gen);
      train::TrainOptions o = to;
      o.out_dir = st.dir;
      o.resume = fs::exists(st.file("last.safetensors"));
      o.metadata = tmeta;
      const train::TrainResult tr =
          train::fit(*tm.model, tgt.train, tgt.train_idx, tgt.train, tgt.val_idx, o, tm.masks);
      LETHE_CHECK(tr.finished, "transfer training stopped early");
      double best_val = -1;
      for (const auto& e : tr.history) best_val = std::max(best_val, e.val_acc);
      st.finish(key, {{"source_acc", src_acc},
                      {"target_acc", train::evaluate(*tm.model, tgt.test, tgt.test_idx).accuracy},
                      {"target_best_val", best_val},
                      {"sparsity", prune::sparsity_report(*tm.model).sparsity()},
                      {"seconds", sw.seconds()}});
      progress.computed(sw.seconds());
    }
    json rec = st.result()["result"];
    rec["rate"] = s.rate;
    rec["unlearn"] = s.unlearn;
    rec["stage"] = st.name + "-" + st.hash;
    runs.push_back(rec);
  }

  // The reference: the same recipe from a fresh initialisation, no source task.
  const Stage scratch = dense_stage(out, "target-scratch", tgt_key, model_key, tspec, model_seed,
                                    tmeta, to, 0, tgt.view(), progress);
  json results = results_header("lethe transfer", cfg, settings, started);
  results.update(json{
          {"data", {{"source", src_in.source}, {"target", tgt_in.source}}},
          {"source", {{"task", src_key}, {"stage", dense.dir}, {"recipe", recipe_json(dense_o)},
                      {"prune_recipe", recipe_json(prune_o)}, {"rewind_epoch", rewind},
                      {"result", dense.result()["result"]}}},
          {"target", tgt_key},
          {"transfer_recipe", recipe_json(to)},
          {"unlearn", method.empty() ? json() : json{{"method", method},
                                                     {"forget", forget_spec.str()}}},
          {"scratch", scratch.result()["result"]},
          {"stages", {{"total", total}, {"computed", progress.n_computed()},
                      {"cached", progress.n_seen() - progress.n_computed()}}},
          {"runs", runs}});
  return results;
}

std::string transfer_markdown(const json& results) {
  double dense_acc = 0;
  for (const json& r : results["runs"])
    if (r["rate"].get<double>() == 0 && r["unlearn"] == "") dense_acc = r["target_acc"];
  const json& st = results["source"]["task"];
  const json& tt = results["target"];
  std::ostringstream md;
  md << "# lethe transfer: sparse and unlearned source models on a new task\n\n"
     << "Source: " << st["dataset"].get<std::string>() << " classes " << st["classes"].dump()
     << " (" << st["n_train"].get<int64_t>() << " training images). Target: "
     << tt["dataset"].get<std::string>() << " classes " << tt["classes"].dump() << " ("
     << tt["n_train"].get<int64_t>() << " training images), a new classifier head, every "
     << "weight fine-tuned " << results["transfer_recipe"]["epochs"].get<int64_t>()
     << " epochs (lr " << results["transfer_recipe"]["lr"].get<double>() << ", "
     << results["transfer_recipe"]["lr_schedule"].get<std::string>()
     << "), the source's pruning mask kept. Accuracies in percent on the test images.\n\n"
     << "| Source model | Sparsity | Source test acc | Target test acc | vs dense source |\n"
     << "|---|---|---|---|---|\n";
  for (const json& r : results["runs"]) {
    const double rate = r["rate"].get<double>();
    std::string name = rate == 0 ? "dense" : cat("OMP ", rate_percent(rate), "%");
    if (r["unlearn"] != "") name += cat(", unlearned (", r["unlearn"].get<std::string>(), ")");
    md << "| " << name << " | " << fmt_fixed(100.0 * r["sparsity"].get<double>()) << "% | "
       << fmt_fixed(r["source_acc"].get<double>()) << " | "
       << fmt_fixed(r["target_acc"].get<double>()) << " | "
       << (r["target_acc"].get<double>() >= dense_acc ? "+" : "")
       << fmt_fixed(r["target_acc"].get<double>() - dense_acc) << " |\n";
  }
  const json& sc = results["scratch"];
  md << "| none (from scratch) | 0.00% | - | " << fmt_fixed(sc["test_acc_last"].get<double>())
     << " | " << (sc["test_acc_last"].get<double>() >= dense_acc ? "+" : "")
     << fmt_fixed(sc["test_acc_last"].get<double>() - dense_acc) << " |\n";
  if (!results["unlearn"].is_null())
    md << "\nUnlearned sources: " << results["unlearn"]["method"].get<std::string>()
       << " forgetting " << results["unlearn"]["forget"].get<std::string>()
       << " of the source task before the transfer.\n";
  md << "\nSource: " << results["source"]["recipe"]["epochs"].get<int64_t>()
     << " dense epochs; pruned sources OMP rewound to epoch "
     << results["source"]["rewind_epoch"].get<int64_t>() << " and retrained "
     << results["source"]["prune_recipe"]["epochs"].get<int64_t>() << " epochs.  \nStages: "
     << results["stages"]["total"].get<int64_t>() << " ("
     << results["stages"]["computed"].get<int64_t>() << " computed in this call).  \nMachine: "
     << results["machine"].value("cpu", std::string("?")) << ", "
     << results["machine"].value("threads", 0) << " threads; lethe "
     << results["lethe_version"].get<std::string>() << ", started "
     << results["started"].get<std::string>() << ".\n";
  return md.str();
}

}  // namespace lethe::cli
