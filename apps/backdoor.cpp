// The stages, table and picture of `lethe backdoor` (apps/backdoor.h).
#include "apps/backdoor.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "apps/report.h"
#include "apps/stages.h"
#include "data/backdoor.h"
#include "framework/atomic_file.h"
#include "kernels/check.h"
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string method_title(const std::string& m) {
  static const std::map<std::string, std::string> t = {
      {"original", "Original"}, {"retrain", "Retrain"}, {"ft", "FT"}, {"ga", "GA"},
      {"rl", "RL"}, {"ff", "FF"}, {"iu", "IU"}, {"l1", "l1-sparse"}};
  const auto it = t.find(m);
  return it == t.end() ? m : it->second;
}

}  // namespace

json run_backdoor(const Config& cfg, const DataBundle& d_in, const json& settings) {
  const std::string out = cfg.get_string("out", "runs/backdoor");
  const bool quiet = cfg.get_bool("quiet", false);
  const std::vector<double> rates = parse_rates(cfg, "rates", {"0", "0.5", "0.9", "0.95", "0.99"});
  std::vector<std::string> methods;
  for (const std::string& m : cfg.get_list("methods", {"ft", "ga", "l1"}))
    methods.push_back(unlearn::canonical_method(m));
  const int64_t target = cfg.get_int("target", 0);
  const double fraction = cfg.get_double("poison-fraction", 0.1);
  const uint64_t model_seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  const auto poison_seed = static_cast<uint64_t>(cfg.get_int("poison-seed", 1));
  const uint64_t unlearn_seed = static_cast<uint64_t>(cfg.get_int("unlearn-seed", 1));

  // Method options first, so a bad flag fails before anything is trained or written.
  const std::string poison_file = (fs::path(out) / "poisoned.txt").string();
  unlearn::ForgetSpec poison_spec;
  poison_spec.kind = unlearn::ForgetKind::File;
  poison_spec.path = poison_file;
  unlearn::MethodOptions mo = unlearn::default_method_options(poison_spec);
  for (const std::string& m : methods) unlearn::apply_method_config(mo, m, cfg, m + ".");
  unlearn::set_seed(mo, unlearn_seed);
  unlearn::set_quiet(mo, quiet);

  DataBundle d = d_in;
  limit_validation(cfg, d.val_idx);
  // The poisoned training set: validation and test images stay clean, so "best by
  // validation" and the clean accuracy measure the task, not the attack.
  const std::vector<int64_t> poisoned = data::choose_poisoned(d.train_idx, fraction, poison_seed);
  const data::Dataset pd = data::poison_dataset(d.train, poisoned, target);
  fs::create_directories(out);
  unlearn::write_index_file(poison_file, poisoned);
  const unlearn::ForgetSet fset =
      unlearn::make_forget_set(poison_spec, pd, d.train_idx, unlearn_seed);
  const json poison_key = {{"fraction", fraction}, {"seed", poison_seed}, {"target", target},
                           {"trigger", "4x4 zeros at rows/cols 26-29"},
                           {"n_poisoned", poisoned.size()}};

  const models::ModelSpec spec = experiment_spec(cfg, d.train.num_classes, d.train.name);
  io::StMetadata meta = experiment_metadata(cfg, spec, model_seed);
  meta["backdoor"] = poison_key.dump();

  const int64_t rewind = cfg.get_int("rewind-epoch", 2);
  json dkey = data_key(cfg, d.train.name, d.train_idx.size(), d.val_idx.size());
  dkey["poison"] = poison_key;
  const json model_key = {{"arch", spec.arch}, {"width", spec.width}};
  const int64_t n_pruned =
      std::count_if(rates.begin(), rates.end(), [](double r) { return r > 0; });
  const int64_t total = 1 + n_pruned + static_cast<int64_t>(rates.size() * (1 + methods.size()));
  Progress progress(total, quiet, "backdoor");
  const std::string started = now_iso8601();
  const StageData sd{pd, d.train_idx, d.val_idx, d.test, d.test_idx};

  const train::TrainOptions dense_o = recipe(cfg, cfg.get_int("epochs", 10));
  const Stage dense = dense_stage(out, "dense", dkey, model_key, spec, model_seed, meta,
                                  dense_o, rewind, sd, progress);
  const train::TrainOptions prune_o = prune_recipe(cfg, dense_o, rewind);

  struct Source {
    double rate;
    Stage stage;
    std::string path;
  };
  // Dense unlearning starts from the best-by-validation checkpoint, the pruned models from
  // their last (as in `lethe pipeline`).
  std::vector<Source> sources;
  for (double rate : rates) {
    if (rate == 0) {
      sources.push_back({rate, dense, dense.file("best.safetensors")});
    } else {
      const Stage st = omp_stage(out, cat("prune-", rate_percent(rate)), dense, spec,
                                 model_seed, meta, rate, rewind, prune_o, sd, progress);
      sources.push_back({rate, st, st.file("last.safetensors")});
    }
  }

  const int64_t bs = cfg.get_int("eval-batch-size", 500);
  json runs = json::array(), models = json::array();
  for (const Source& src : sources) {
    models.push_back({{"rate", src.rate}, {"stage", src.stage.dir},
                      {"checkpoint", src.path}, {"result", src.stage.result()["result"]}});
    std::vector<std::string> row_methods = {"original"};
    row_methods.insert(row_methods.end(), methods.begin(), methods.end());
    for (const std::string& method : row_methods) {
      const json opts = method == "original" ? json() : unlearn::method_options_json(method, mo);
      const json key = {{"stage", "backdoor-unlearn"}, {"model", src.stage.hash},
                        {"checkpoint", fs::path(src.path).filename().string()},
                        {"method", method}, {"options", opts}, {"seed", unlearn_seed}};
      const Stage st = make_stage(out, cat("r", rate_percent(src.rate), "-", method), key);
      progress.begin(cat("sparsity ", rate_percent(src.rate), "%: ", method_title(method)),
                     st.done());
      if (!st.done()) {
        unlearn::Stopwatch sw;
        fs::create_directories(st.dir);
        const unlearn::TrainedModel tm = unlearn::load_trained_model(src.path);
        json res;
        res["RTE_s"] = 0.0;
        if (method != "original") {
          const unlearn::MethodResult r =
              unlearn::run_method(method, *tm.model, pd, fset, tm.masks, mo, tm.factory());
          res["RTE_s"] = r.seconds;
          res["unlearn"] = unlearn::to_json(r);
        }
        res["clean_acc"] = train::evaluate(*tm.model, d.test, d.test_idx, bs).accuracy;
        res["asr"] = unlearn::backdoor_asr(*tm.model, d.test, target, bs);
        // The share of the poisoned training images still classified as the target.
        res["poison_fit"] = train::evaluate(*tm.model, pd, fset.forget, bs).accuracy;
        res["sparsity"] = prune::sparsity_report(*tm.model).sparsity();
        st.finish(key, res);
        progress.computed(sw.seconds());
      }
      json rec = st.result()["result"];
      rec["rate"] = src.rate;
      rec["method"] = method;
      rec["stage"] = st.name + "-" + st.hash;
      rec["options"] = opts;
      runs.push_back(rec);
    }
  }
  json results = results_header("lethe backdoor", cfg, settings, started);
  results.update(json{
          {"data", d.source},
          {"poison", poison_key},
          {"poisoned_file", poison_file},
          {"methods", methods},
          {"rates", rates},
          {"dense", {{"stage", dense.dir}, {"model", model_key}, {"recipe", recipe_json(dense_o)},
                     {"result", dense.result()["result"]}}},
          {"prune", {{"method", "omp"}, {"rewind_epoch", rewind},
                     {"recipe", recipe_json(prune_o)}}},
          {"models", models},
          {"stages", {{"total", total}, {"computed", progress.n_computed()},
                      {"cached", progress.n_seen() - progress.n_computed()}}},
          {"runs", runs}});
  return results;
}

namespace {

/// runs indexed by (rate, method).
std::map<std::pair<double, std::string>, json> by_rate_method(const json& results) {
  std::map<std::pair<double, std::string>, json> m;
  for (const json& r : results["runs"])
    m[{r["rate"].get<double>(), r["method"].get<std::string>()}] = r;
  return m;
}

std::vector<std::string> row_methods(const json& results) {
  std::vector<std::string> ms = {"original"};
  for (const json& m : results["methods"]) ms.push_back(m.get<std::string>());
  return ms;
}

}  // namespace

std::string backdoor_markdown(const json& results) {
  const auto runs = by_rate_method(results);
  const std::vector<std::string> ms = row_methods(results);
  const json& p = results["poison"];
  std::ostringstream md;
  md << "# lethe backdoor: unlearning a backdoor across sparsity\n\n"
     << "Poisoned: " << p["n_poisoned"].get<int64_t>() << " training images ("
     << fmt_fixed(100.0 * p["fraction"].get<double>(), 1) << "%, seed "
     << p["seed"].get<uint64_t>() << "), a 4x4 black square 2 px from the bottom-right corner, "
     << "relabelled to class " << p["target"].get<int64_t>() << ". Each cell: clean test "
     << "accuracy / attack success rate (ASR: triggered test images of other classes classified "
     << "as the target), percent; lower ASR is better. Unlearning forgets exactly the poisoned "
     << "images.\n\n| Sparsity |";
  for (const std::string& m : ms) md << " " << method_title(m) << " |";
  md << "\n|---|";
  for (size_t i = 0; i < ms.size(); ++i) md << "---|";
  md << "\n";
  for (const json& rate : results["rates"]) {
    const double r = rate.get<double>();
    md << "| " << fmt_fixed(100.0 * r, 0) << "% |";
    for (const std::string& m : ms) {
      const auto it = runs.find({r, m});
      if (it == runs.end()) {
        md << " - |";
        continue;
      }
      md << " " << fmt_fixed(it->second["clean_acc"].get<double>()) << " / "
         << fmt_fixed(it->second["asr"].get<double>()) << " |";
    }
    md << "\n";
  }
  md << "\nRTE (minutes of the method alone) and poison fit (share of the poisoned training "
     << "images still classified as the target, percent):\n\n| Sparsity |";
  for (size_t i = 1; i < ms.size(); ++i) md << " " << method_title(ms[i]) << " RTE |";
  for (const std::string& m : ms) md << " " << method_title(m) << " fit |";
  md << "\n|---|";
  for (size_t i = 1; i < 2 * ms.size(); ++i) md << "---|";
  md << "\n";
  for (const json& rate : results["rates"]) {
    const double r = rate.get<double>();
    md << "| " << fmt_fixed(100.0 * r, 0) << "% |";
    for (size_t i = 1; i < ms.size(); ++i) {
      const auto it = runs.find({r, ms[i]});
      md << " " << (it == runs.end() ? "-" : fmt_fixed(it->second["RTE_s"].get<double>() / 60))
         << " |";
    }
    for (const std::string& m : ms) {
      const auto it = runs.find({r, m});
      md << " " << (it == runs.end() ? "-" : fmt_fixed(it->second["poison_fit"].get<double>()))
         << " |";
    }
    md << "\n";
  }
  const json& dr = results["dense"]["result"];
  md << "\nDense model: " << results["dense"]["recipe"]["epochs"].get<int64_t>()
     << " epochs on the poisoned data, clean test accuracy "
     << fmt_fixed(dr["test_acc_best"].get<double>()) << "% (best by validation). Pruned models: "
     << "OMP rewound to epoch " << results["prune"]["rewind_epoch"].get<int64_t>()
     << ", retrained " << results["prune"]["recipe"]["epochs"].get<int64_t>()
     << " epochs on the poisoned data.  \nStages: " << results["stages"]["total"].get<int64_t>()
     << " (" << results["stages"]["computed"].get<int64_t>() << " computed in this call, "
     << results["stages"]["cached"].get<int64_t>() << " cached).  \nMachine: "
     << results["machine"].value("cpu", std::string("?")) << ", "
     << results["machine"].value("threads", 0) << " threads; lethe "
     << results["lethe_version"].get<std::string>() << ", started "
     << results["started"].get<std::string>() << ".\n";
  return md.str();
}

std::string backdoor_csv(const json& results) {
  std::ostringstream csv;
  csv << "rate,sparsity,method,clean_acc,asr,poison_fit,RTE_s\n";
  for (const json& r : results["runs"])
    csv << r["rate"].get<double>() << "," << fmt_fixed(r["sparsity"].get<double>(), 6) << ","
        << r["method"].get<std::string>() << "," << fmt_fixed(r["clean_acc"].get<double>(), 4)
        << "," << fmt_fixed(r["asr"].get<double>(), 4) << ","
        << fmt_fixed(r["poison_fit"].get<double>(), 4) << ","
        << fmt_fixed(r["RTE_s"].get<double>(), 3) << "\n";
  return csv.str();
}

bool backdoor_plot(const std::string& dir, const json& results) {
  if (!gnuplot_available("backdoor")) return false;
  const auto runs = by_rate_method(results);
  const std::vector<std::string> ms = row_methods(results);
  // One data row per sparsity: the rate, then ASR and clean accuracy per method.
  std::ostringstream dat;
  dat << "sparsity";
  for (const std::string& m : ms) dat << " asr_" << m << " acc_" << m;
  dat << "\n";
  for (const json& rate : results["rates"]) {
    const double r = rate.get<double>();
    dat << rate_percent(r);
    for (const std::string& m : ms) {
      const auto it = runs.find({r, m});
      if (it == runs.end())
        dat << " NaN NaN";
      else
        dat << " " << it->second["asr"].get<double>() << " "
            << it->second["clean_acc"].get<double>();
    }
    dat << "\n";
  }
  const std::string dat_path = (fs::path(dir) / "backdoor.dat").string();
  write_text_atomic(dat_path, dat.str());
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1200,460 font 'sans,10'\n"
     << "set output '" << (fs::path(dir) / "results.png").string() << "'\n"
     << "set grid\nset key outside right center vertical\n"
     << "set datafile missing 'NaN'\n"
     << "set multiplot layout 1,2 title 'Backdoor unlearning across sparsity'\n";
  const char* panels[2][2] = {{"Attack success rate (%), lower is better", "2"},
                              {"Clean test accuracy (%)", "3"}};
  for (const auto& panel : panels) {
    gp << "set title '" << panel[0] << "'\nset yrange [0:100]\nset xlabel 'sparsity (%)'\n"
       << "plot ";
    for (size_t i = 0; i < ms.size(); ++i) {
      const int col = std::stoi(panel[1]) + 2 * static_cast<int>(i);
      gp << (i ? ", " : "") << "'" << dat_path << "' using " << col << ":xtic(1) with "
         << "linespoints lw 2 pt 7 title '" << method_title(ms[i]) << "'";
    }
    gp << "\n";
  }
  gp << "unset multiplot\n";
  return run_gnuplot(dir, "results", gp.str(), "backdoor");
}

}  // namespace lethe::cli
