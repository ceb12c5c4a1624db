// Fuzz target: config files (Config::from_file) and what reads them: the typed getters on every
// key and the training recipe every training command derives from a config (training_recipe).
// Rejection with lethe::Error is expected; anything else is a finding.
#include <cstdint>
#include <string>

#include "apps/options.h"
#include "framework/config.h"
#include "kernels/check.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lethe;
  const std::string path = fuzz::write_input(data, size, "run.cfg");
  Config cfg;
  try {
    cfg = Config::from_file(path);
  } catch (const Error&) {
    return 0;
  }
  for (const auto& [key, value] : cfg.values()) {
    try { cfg.get_int(key, 0); } catch (const Error&) {}
    try { cfg.get_double(key, 0); } catch (const Error&) {}
    try { cfg.get_bool(key, false); } catch (const Error&) {}
    try { cfg.get_list(key, {}); } catch (const Error&) {}
  }
  try {
    cli::training_recipe(cfg);
  } catch (const Error&) {
  }
  return 0;
}
