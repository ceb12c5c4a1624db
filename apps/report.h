// What every command writes next to its results: the machine, the execution settings and
// the config, as JSON (docs/design.md "Results"), plus shared setup (threads, settings).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "framework/config.h"

namespace lethe::cli {

/// CPU model, core count, OpenMP threads, GPU (null without one).
nlohmann::json machine_info();
/// Applies `threads` (0: all cores) and the execution-setting keys of `cfg`
/// (math-mode, conv-backend, sparse); returns them as JSON for the results.
nlohmann::json apply_settings(const Config& cfg);
/// Every key/value of the config (the run's complete recipe).
nlohmann::json config_json(const Config& cfg);
/// UTC time, ISO 8601.
std::string now_iso8601();
/// Writes results.json and summary.md into `dir` atomically.
void write_results(const std::string& dir, const nlohmann::json& results,
                   const std::string& markdown);

}  // namespace lethe::cli
