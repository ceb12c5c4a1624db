// What every command writes next to its results: the machine, the execution settings and
// the config, as JSON (docs/design.md "Results"), plus shared setup (threads, settings).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "framework/config.h"
#include "framework/tensor.h"

namespace lethe::cli {

/// CPU model, core count, OpenMP threads, GPU (null without one).
nlohmann::json machine_info();
/// "cpu", "cuda" (= cuda:0) or "cuda:N"; anything else throws with the valid spellings.
Device parse_device(const std::string& s);
/// Applies `threads` (0: all cores) and the execution-setting keys of `cfg`
/// (math-mode, conv-backend, sparse); returns them as JSON for the results. `device` must be
/// cpu unless allow_cuda (a command that runs on the GPU), then also a visible CUDA device.
nlohmann::json apply_settings(const Config& cfg, bool allow_cuda = false);
/// Where a run computes, from apply_settings' JSON: "2 threads" on the CPU, "cuda:0" on a GPU.
std::string compute_place(const nlohmann::json& settings);
/// Every key/value of the config (the run's complete recipe).
nlohmann::json config_json(const Config& cfg);
/// UTC time, ISO 8601.
std::string now_iso8601();
/// Writes results.json and summary.md into `dir` atomically.
void write_results(const std::string& dir, const nlohmann::json& results,
                   const std::string& markdown);

/// `v` with `prec` digits after the point ("%.*f"), for tables.
std::string fmt_fixed(double v, int prec = 2);

/// True when gnuplot is on the PATH; otherwise warns once on stderr ("[tag] warning: ...",
/// naming the package) and returns false: pictures are optional.
bool gnuplot_available(const std::string& tag);
/// Writes `script` to `dir`/`stem`.gp and runs gnuplot on it (stderr to `dir`/gnuplot.log);
/// callers check gnuplot_available() first. Returns false, after a warning naming the log,
/// when gnuplot fails.
bool run_gnuplot(const std::string& dir, const std::string& stem, const std::string& script,
                 const std::string& tag);

}  // namespace lethe::cli
