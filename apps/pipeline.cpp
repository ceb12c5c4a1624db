// The stages of `lethe pipeline` (apps/pipeline.h); the cache itself is apps/stages.h's.
#include "apps/pipeline.h"

#include <algorithm>
#include <filesystem>

#include "apps/options.h"
#include "apps/report.h"
#include "apps/stages.h"
#include "framework/atomic_file.h"
#include "framework/rng.h"
#include "kernels/check.h"
#include "models/model.h"
#include "models/trainer.h"
#include "prune/mask.h"
#include "prune/pipeline.h"
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

PipelineRun run_experiment(const Config& cfg, const DataBundle& d_in, const json& settings) {
  const std::string out = cfg.get_string("out", "runs/pipeline");
  const bool quiet = cfg.get_bool("quiet", false);
  const std::vector<std::string> scenario_specs = cfg.get_list("forget", {"class:0"});
  std::vector<std::string> methods;
  for (const std::string& m : cfg.get_list("methods", unlearn::method_names()))
    methods.push_back(unlearn::canonical_method(m));
  std::vector<uint64_t> seeds;
  for (const std::string& s : cfg.get_list("seeds", {"1"}))
    seeds.push_back(static_cast<uint64_t>(std::stoll(s)));
  LETHE_CHECK(!scenario_specs.empty() && !methods.empty() && !seeds.empty(),
              "lethe pipeline needs at least one --forget scenario, method and seed");
  LETHE_CHECK(std::find(methods.begin(), methods.end(), "retrain") != methods.end(),
              "the pipeline's methods must include retrain: every gap is measured against it");
  const bool with_original = cfg.get_bool("original", true);
  std::vector<unlearn::ForgetSpec> scenarios;
  for (const std::string& s : scenario_specs) scenarios.push_back(unlearn::parse_forget_spec(s));

  // Method options are checked before any training, so a bad flag fails at once.
  for (const unlearn::ForgetSpec& sc : scenarios)
    for (const std::string& m : methods) {
      unlearn::MethodOptions mo = unlearn::default_method_options(sc);
      unlearn::apply_method_config(mo, m, cfg, m + ".");
    }

  DataBundle d = d_in;
  limit_validation(cfg, d.val_idx);

  const models::ModelSpec spec = experiment_spec(cfg, d.train.num_classes, d.train.name);
  const uint64_t model_seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  const io::StMetadata meta = experiment_metadata(cfg, spec, model_seed);

  const int64_t rewind = cfg.get_int("rewind-epoch", 8);
  json dkey = data_key(cfg, d.train.name, d.train_idx.size(), d.val_idx.size());
  const Device device = parse_device(cfg.get_string("device", "cpu"));
  // Every stage hangs off the data key: a GPU run never reuses a CPU stage (its RTE and float
  // noise differ), and CPU keys stay what they were before GPU runs existed.
  if (!device.is_cpu()) dkey["device"] = device.str();
  const json model_key = {{"arch", spec.arch}, {"width", spec.width}};

  int64_t per_model = 0;
  for (const unlearn::ForgetSpec& sc : scenarios) {
    const int64_t n_orig = with_original ? (sc.kind == unlearn::ForgetKind::Class ? 1
                                                   : static_cast<int64_t>(seeds.size()))
                                  : 0;
    per_model += n_orig + static_cast<int64_t>(methods.size() * seeds.size());
  }
  PipelineRun run;
  run.stages_total = 2 + 2 * per_model;
  Progress progress(run.stages_total, quiet);
  const std::string started = now_iso8601();

  const StageData sd{d.train, d.train_idx, d.val_idx, d.test, d.test_idx, device};
  // ---- dense training --------------------------------------------------------------------
  train::TrainOptions dense_o = recipe(cfg, cfg.get_int("epochs", 20));
  const Stage dense = dense_stage(out, "dense", dkey, model_key, spec, model_seed, meta,
                                  dense_o, rewind, sd, progress);
  const json dense_res = dense.result()["result"];

  // ---- OMP pruning -------------------------------------------------------------------------
  const double rate = cfg.get_double("rate", 0.95);
  const train::TrainOptions prune_o = prune_recipe(cfg, dense_o, rewind);
  const Stage sparse = omp_stage(out, "prune", dense, spec, model_seed, meta, rate, rewind,
                                 prune_o, sd, progress);
  const json sparse_res = sparse.result()["result"];

  // ---- unlearning + evaluation -------------------------------------------------------------
  unlearn::EvalOptions eo;
  eo.batch_size = cfg.get_int("eval-batch-size", 500);
  eo.mia_variants = cfg.get_bool("mia-variants", true);
  struct Source {
    std::string kind, path;
    const Stage* stage;
  };
  // Dense unlearning starts from the best-by-validation checkpoint, sparse from the pruned
  // model's final one (SPEC section 7: the models the paper's table compares).
  const std::vector<Source> sources = {{"dense", dense.file("best.safetensors"), &dense},
                                       {"sparse", sparse.file("last.safetensors"), &sparse}};
  json runs = json::array();
  for (const unlearn::ForgetSpec& sc : scenarios) {
    for (const Source& src : sources) {
      std::vector<std::string> row_methods;
      if (with_original) row_methods.push_back("original");
      row_methods.insert(row_methods.end(), methods.begin(), methods.end());
      for (const std::string& method : row_methods) {
        for (uint64_t seed : seeds) {
          const bool seedless = method == "original" && sc.kind == unlearn::ForgetKind::Class;
          if (seedless && seed != seeds.front()) continue;
          unlearn::MethodOptions mo = unlearn::default_method_options(sc);
          json opts_json = nullptr;
          if (method != "original") {
            unlearn::apply_method_config(mo, method, cfg, method + ".");
            unlearn::set_seed(mo, seed);
            unlearn::set_quiet(mo, quiet);
            opts_json = unlearn::method_options_json(method, mo);
          }
          const json key = {{"stage", "unlearn"}, {"model", src.stage->hash},
                            {"checkpoint", fs::path(src.path).filename().string()},
                            {"forget", sc.str()}, {"method", method}, {"options", opts_json},
                            {"seed", seedless ? 0 : seed}, {"mia_variants", eo.mia_variants}};
          const Stage st = make_stage(out, src.kind + "-" + method, key);
          progress.begin(src.kind + " " + method + " " + sc.str() +
                             (seedless ? "" : " seed " + std::to_string(seed)), st.done());
          if (!st.done()) {
            unlearn::Stopwatch sw;
            fs::create_directories(st.dir);
            const unlearn::TrainedModel tm = unlearn::load_trained_model(src.path, -1, device);
            const unlearn::ForgetSet fset = unlearn::make_forget_set(sc, d.train, d.train_idx, seed);
            json res;
            double rte = 0;
            if (method != "original") {
              const unlearn::MethodResult r = unlearn::run_method(method, *tm.model, d.train, fset,
                                                                  tm.masks, mo, tm.factory());
              rte = r.seconds;
              res["unlearn"] = unlearn::to_json(r);
            }
            const unlearn::Metrics m = unlearn::evaluate_unlearning(*tm.model, d.train, d.test,
                                                                    fset, eo);
            res["metrics"] = unlearn::to_json(m);
            res["RTE_s"] = rte;
            res["eval_s"] = m.seconds;
            st.finish(key, res);
            progress.computed(sw.seconds());
          }
          json rec = st.result()["result"];
          rec["scenario"] = sc.str();
          rec["model"] = src.kind;
          rec["method"] = method;
          rec["seed"] = seed;
          rec["stage"] = st.name + "-" + st.hash;
          rec["options"] = opts_json;
          // A class-wise "original" is seed-independent: one stage stands for every seed.
          if (seedless)
            for (uint64_t s2 : seeds) {
              rec["seed"] = s2;
              runs.push_back(rec);
            }
          else
            runs.push_back(rec);
        }
      }
    }
  }
  run.stages_computed = progress.n_computed();
  run.stages_cached = progress.n_seen() - progress.n_computed();
  run.results = results_header("lethe pipeline", cfg, settings, started);
  run.results.update(json{
      {"data", d.source},
      {"scenarios", scenario_specs},
      {"methods", methods},
      {"seeds", seeds},
      {"dense", {{"stage", dense.dir}, {"model", model_key}, {"recipe", recipe_json(dense_o)},
                 {"result", dense_res}}},
      {"sparse", {{"stage", sparse.dir}, {"method", "omp"}, {"rate", rate},
                  {"rewind_epoch", rewind}, {"recipe", recipe_json(prune_o)},
                  {"result", sparse_res}}},
      {"stages", {{"total", run.stages_total}, {"computed", run.stages_computed},
                  {"cached", run.stages_cached}}},
      {"runs", runs}});
  return run;
}

}  // namespace lethe::cli
