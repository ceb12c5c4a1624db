// The results of `lethe pipeline` as the paper's table: rows (scenario, model, method), columns
// UA, MIA-Efficacy, RA, TA (mean +- std over seeds, each with its gap to Retrain on the same
// model and scenario), RTE in minutes and the disparity average; written as Markdown, CSV and
// a gnuplot picture of the gaps (grouped bars, dense vs sparse, per method).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lethe::cli {

/// The table rows from results["runs"]: one object per (scenario, model, method) with
/// "<metric>_mean", "<metric>_std", "gap_<metric>_mean" (the per-seed gap |method - Retrain|
/// of the same seed, averaged), "gap_average_mean", "RTE_min_mean", "n_seeds".
nlohmann::json summarize_runs(const nlohmann::json& results);

/// results.md's text (table plus the dense / sparse models and stage counts).
std::string results_markdown(const nlohmann::json& results);
/// results.csv's text: one line per table row.
std::string results_csv(const nlohmann::json& results);

/// Writes results.png into `dir` with gnuplot (plus the .gp script and data it runs). Returns
/// false, after a warning on stderr, when gnuplot is missing or fails: the picture is optional.
bool write_plot(const std::string& dir, const nlohmann::json& results);

}  // namespace lethe::cli
