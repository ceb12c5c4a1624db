// The table, CSV and picture of `lethe pipeline` (apps/pipeline_report.h).
#include "apps/pipeline_report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "apps/report.h"
#include "framework/atomic_file.h"

namespace lethe::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* kMetrics[] = {"UA", "MIA_efficacy", "RA", "TA"};

struct Stat {
  double sum = 0, sq = 0;
  int n = 0;
  void add(double v) {
    sum += v;
    sq += v * v;
    ++n;
  }
  double mean() const { return n ? sum / n : 0; }
  /// Sample standard deviation (n - 1), 0 for one seed.
  double std() const {
    if (n < 2) return 0;
    return std::sqrt(std::max(0.0, (sq - sum * sum / n) / (n - 1)));
  }
};

std::string fmt(double v, int prec = 2) { return fmt_fixed(v, prec); }

}  // namespace

json summarize_runs(const json& results) {
  // Retrain's metrics per (scenario, model, seed): what every gap is measured against.
  std::map<std::string, json> retrain;
  auto key3 = [](const json& r) {
    return r["scenario"].get<std::string>() + "|" + r["model"].get<std::string>() + "|" +
           std::to_string(r["seed"].get<uint64_t>());
  };
  for (const json& r : results["runs"])
    if (r["method"] == "retrain") retrain[key3(r)] = r["metrics"];

  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, Stat>> stats;
  std::map<std::string, json> ids;
  for (const json& r : results["runs"]) {
    const std::string k = r["scenario"].get<std::string>() + "|" + r["model"].get<std::string>() +
                          "|" + r["method"].get<std::string>();
    if (!stats.count(k)) {
      order.push_back(k);
      ids[k] = {{"scenario", r["scenario"]}, {"model", r["model"]}, {"method", r["method"]}};
    }
    auto& s = stats[k];
    const json& m = r["metrics"];
    const json& ret = retrain.at(key3(r));
    double gap_sum = 0;
    for (const char* name : kMetrics) {
      const double v = m[name].get<double>();
      const double gap = std::fabs(v - ret[name].get<double>());
      s[name].add(v);
      s[std::string("gap_") + name].add(gap);
      gap_sum += gap;
    }
    s["gap_average"].add(gap_sum / 4.0);
    s["RTE_min"].add(r["RTE_s"].get<double>() / 60.0);
  }
  json rows = json::array();
  for (const std::string& k : order) {
    json row = ids[k];
    for (const auto& [name, st] : stats[k]) {
      row[name + "_mean"] = st.mean();
      row[name + "_std"] = st.std();
    }
    row["n_seeds"] = stats[k]["UA"].n;
    rows.push_back(row);
  }
  return rows;
}

std::string results_markdown(const json& results) {
  const json rows = summarize_runs(results);
  std::ostringstream md;
  const json& dense = results["dense"];
  const json& sparse = results["sparse"];
  md << "# lethe pipeline results\n\n"
     << "Model: " << dense["model"]["arch"].get<std::string>() << " width "
     << dense["model"]["width"] << "; data: " << results["data"].get<std::string>() << ".  \n"
     << "Dense: " << dense["recipe"]["epochs"] << " epochs, test accuracy "
     << fmt(dense["result"]["test_acc_best"].get<double>()) << "% (best by validation), "
     << fmt(dense["result"]["test_acc_last"].get<double>()) << "% (last).  \n"
     << "Sparse: OMP " << fmt(100.0 * sparse["rate"].get<double>(), 1) << "% (rewind to epoch "
     << sparse["rewind_epoch"] << ", " << sparse["recipe"]["epochs"]
     << " epochs), sparsity " << fmt(100.0 * sparse["result"]["sparsity"].get<double>())
     << "%, test accuracy " << fmt(sparse["result"]["test_acc_last"].get<double>()) << "%.  \n"
     << "Seeds: " << results["seeds"].dump() << " (mean ± std over seeds; the gap in "
     << "parentheses is |method − Retrain| on the same model, scenario and seed, averaged).\n\n"
     << "| scenario | model | method | UA | MIA-Efficacy | RA | TA | RTE (min) | avg gap |\n"
     << "|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : rows) {
    md << "| " << r["scenario"].get<std::string>() << " | " << r["model"].get<std::string>()
       << " | " << r["method"].get<std::string>();
    const bool several = r["n_seeds"].get<int>() > 1;
    for (const char* name : kMetrics) {
      const std::string n = name;
      md << " | " << fmt(r[n + "_mean"].get<double>());
      if (several) md << " ± " << fmt(r[n + "_std"].get<double>());
      md << " (" << fmt(r["gap_" + n + "_mean"].get<double>()) << ")";
    }
    md << " | " << fmt(r["RTE_min_mean"].get<double>()) << " | "
       << fmt(r["gap_average_mean"].get<double>()) << " |\n";
  }
  const json& st = results["stages"];
  md << "\nStages: " << st["total"] << " in all, " << st["computed"] << " computed in this call, "
     << st["cached"] << " reused from the cache. \"original\" is the model before unlearning "
     << "(reference only). Machine: " << results["machine"]["cpu"].get<std::string>() << ", "
     << compute_place(results["settings"]) << ".\n";
  if (results.contains("warning")) md << "\n**" << results["warning"].get<std::string>() << "**\n";
  return md.str();
}

std::string results_csv(const json& results) {
  std::ostringstream csv;
  csv << "scenario,model,method,n_seeds";
  for (const char* name : kMetrics)
    csv << "," << name << "_mean," << name << "_std,gap_" << name;
  csv << ",RTE_min,gap_average\n";
  for (const json& r : summarize_runs(results)) {
    csv << r["scenario"].get<std::string>() << "," << r["model"].get<std::string>() << ","
        << r["method"].get<std::string>() << "," << r["n_seeds"];
    for (const char* name : kMetrics) {
      const std::string n = name;
      csv << "," << fmt(r[n + "_mean"].get<double>(), 4) << ","
          << fmt(r[n + "_std"].get<double>(), 4) << ","
          << fmt(r["gap_" + n + "_mean"].get<double>(), 4);
    }
    csv << "," << fmt(r["RTE_min_mean"].get<double>(), 4) << ","
        << fmt(r["gap_average_mean"].get<double>(), 4) << "\n";
  }
  return csv.str();
}

bool write_plot(const std::string& dir, const json& results) {
  if (!gnuplot_available("pipeline")) return false;
  const json rows = summarize_runs(results);
  const std::vector<std::string> scenarios = results["scenarios"].get<std::vector<std::string>>();
  // One data file per scenario: method, then dense and sparse gap per metric.
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1600," << 380 * scenarios.size() << " font 'sans,10'\n"
     << "set output '" << (fs::path(dir) / "results.png").string() << "'\n"
     << "set style data histograms\nset style histogram clustered gap 1\n"
     << "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset grid ytics\n"
     << "set yrange [0:*]\nset key top left\nset xtics rotate by -30\n"
     << "set multiplot layout " << scenarios.size() << ",4 title 'Gap to Retrain "
     << "(lower is better): dense vs sparse'\n";
  const char* titles[] = {"UA", "MIA-Efficacy", "RA", "TA"};
  for (size_t s = 0; s < scenarios.size(); ++s) {
    std::ostringstream dat;
    dat << "method";
    for (const char* name : kMetrics) dat << " dense_" << name << " sparse_" << name;
    dat << "\n";
    std::map<std::string, std::map<std::string, json>> by;  // method -> model -> row
    std::vector<std::string> methods;
    for (const json& r : rows) {
      if (r["scenario"] != scenarios[s] || r["method"] == "retrain") continue;
      const std::string m = r["method"];
      if (!by.count(m)) methods.push_back(m);
      by[m][r["model"].get<std::string>()] = r;
    }
    for (const std::string& m : methods) {
      dat << m;
      for (const char* name : kMetrics)
        for (const char* model : {"dense", "sparse"}) {
          const json& r = by[m][model];
          dat << " " << (r.is_null() ? 0.0 : r["gap_" + std::string(name) + "_mean"].get<double>());
        }
      dat << "\n";
    }
    const std::string dat_path = (fs::path(dir) / ("plot_" + std::to_string(s) + ".dat")).string();
    write_text_atomic(dat_path, dat.str());
    for (int k = 0; k < 4; ++k)
      gp << "set title '" << scenarios[s] << ": " << titles[k] << " gap'\n"
         << "plot '" << dat_path << "' using " << 2 + 2 * k << ":xtic(1) title 'dense' lc rgb "
         << "'#4477aa', '' using " << 3 + 2 * k << " title 'sparse' lc rgb '#ee6677'\n";
  }
  gp << "unset multiplot\n";
  return run_gnuplot(dir, "results", gp.str(), "pipeline");
}

}  // namespace lethe::cli
