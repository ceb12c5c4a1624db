// The experiment behind `lethe backdoor` (SPEC section 9, issue 8): poison a seeded share of the
// training split with the trigger of data/backdoor.h, train a dense model on it, OMP-prune it
// to each sparsity of --rates (rewound and retrained on the same poisoned data), then for every
// model measure clean test accuracy and the attack success rate (ASR) before unlearning and
// after unlearning the poisoned images with each method (FT, GA, l1-sparse by default): the
// forget set is exactly the poisoned images, the retain set the clean rest of the split.
// Stages are cached as in `lethe pipeline` (apps/stages.h), so an interrupted run resumes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "framework/config.h"

namespace lethe::cli {

/// Runs (or resumes) the experiment `cfg` describes on `d`; returns results.json's document:
/// {"runs": [{"rate", "sparsity", "method", "clean_acc", "asr", "poison_fit", "RTE_s"}, ...],
/// "poison": {...}, "models": [...], ...}.
nlohmann::json run_backdoor(const Config& cfg, const DataBundle& d, const nlohmann::json& settings);

/// results.md's text: one row per sparsity, clean accuracy / ASR per method.
std::string backdoor_markdown(const nlohmann::json& results);
/// results.csv's text: one line per (sparsity, method).
std::string backdoor_csv(const nlohmann::json& results);
/// results.png (ASR and clean accuracy against sparsity, a line per method) with gnuplot;
/// false when gnuplot is missing or fails.
bool backdoor_plot(const std::string& dir, const nlohmann::json& results);

}  // namespace lethe::cli
