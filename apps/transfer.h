// The experiment behind `lethe transfer` (SPEC section 9, issue 8): does a sparse (and
// unlearned) source model transfer as well as the dense one? A source model is trained on
// the source classes, OMP-pruned to each of --rates, optionally unlearned (--unlearn with
// --unlearn-forget, in the source's label space), then fine-tuned on the target task with a
// fresh classifier head, keeping its pruning mask; a model trained from scratch on the target
// with the same recipe is the reference. Offline default: CIFAR-10 classes 0-4 -> 5-9; with
// --target-dataset cifar100 (and --source-classes all --target-classes all), CIFAR-10 ->
// CIFAR-100. Stages are cached as in `lethe pipeline` (apps/stages.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "framework/config.h"

namespace lethe::cli {

/// Runs (or resumes) the experiment; `source` is the data the source classes come from and
/// `target` the target task's (the same bundle for a class split). Returns results.json's
/// document: {"runs": [{"source", "rate", "unlearn", "sparsity", "source_acc", "target_acc",
/// "target_best_val", "seconds"}, ...], "scratch": {...}, ...}.
nlohmann::json run_transfer(const Config& cfg, const DataBundle& source, const DataBundle& target,
                            const nlohmann::json& settings);

/// results.md's text: target accuracy per source model, and its difference to the dense one.
std::string transfer_markdown(const nlohmann::json& results);

}  // namespace lethe::cli
