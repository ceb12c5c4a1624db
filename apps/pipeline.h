// The experiment behind `lethe pipeline` (issue 6): train dense -> OMP-prune -> for each
// scenario x {dense, sparse} x {original, methods} x seeds: unlearn + evaluate -> one results
// document (results.json) that pipeline_report turns into Markdown, CSV and a picture.
//
// Every stage lives in <out>/stages/<name>-<hash>/, the hash (FNV-1a, 64 bit) of the stage's
// own settings plus the hashes of its inputs, so a changed setting recomputes that stage and
// what depends on it and nothing else. A stage is finished when its done.json exists; that
// file is written atomically and last, so an interrupted stage is never mistaken for a
// finished one. Training stages (dense, prune) also resume mid-run from their
// last.safetensors (train::fit's exact resume); an interrupted unlearning stage starts over.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "apps/stages.h"
#include "framework/config.h"

namespace lethe::cli {

/// Stage counts of one call (a fully cached re-run computes none).
struct PipelineRun {
  int64_t stages_total = 0;
  int64_t stages_computed = 0;  ///< run in this call
  int64_t stages_cached = 0;    ///< found finished on disk
  nlohmann::json results;       ///< what results.json holds
};

/// Runs (or resumes) the experiment that `cfg` (cmd_pipeline's keys) describes on `d`, with
/// every stage under cfg["out"]/stages. `settings` is apply_settings' JSON (for the results).
PipelineRun run_experiment(const Config& cfg, const DataBundle& d, const nlohmann::json& settings);

}  // namespace lethe::cli
