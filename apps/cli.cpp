#include "apps/cli.h"

#include <iostream>
#include <set>
#include <sstream>

#include "kernels/check.h"

namespace lethe::cli {

std::string help_text(const Command& cmd) {
  std::ostringstream os;
  os << "usage: lethe " << cmd.name << " [--config FILE] [--preset NAME] [--key value ...]\n\n"
     << cmd.summary << "\n\noptions (default in brackets):\n";
  for (const Option& o : cmd.options) {
    os << "  --" << o.key;
    if (!o.default_value.empty()) os << " [" << o.default_value << "]";
    os << "\n      " << o.help << "\n";
  }
  if (!cmd.presets.empty()) {
    os << "\npresets:";
    for (const auto& [name, text] : cmd.presets) os << " " << name;
    os << "\n";
  }
  return os.str();
}

bool parse_args(const Command& cmd, const std::vector<std::string>& args, Config& out) {
  std::set<std::string> known;
  for (const Option& o : cmd.options) known.insert(o.key);

  Config flags;
  std::string config_file, preset;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << help_text(cmd);
      return false;
    }
    LETHE_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "lethe ", cmd.name,
                ": unexpected argument '", a, "' (options look like --key value)");
    std::string key = a.substr(2), value;
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    } else {
      value = "true";  // a bare --flag
    }
    if (key == "config") {
      config_file = value;
    } else if (key == "preset") {
      preset = value;
    } else {
      LETHE_CHECK(known.count(key), "unknown option --", key,
                  "; run 'lethe ", cmd.name, " --help' for the valid ones");
      flags.set(key, value, "--" + key);
    }
  }

  Config merged;
  for (const Option& o : cmd.options) merged.set(o.key, o.default_value, "default");
  if (!preset.empty()) {
    auto it = cmd.presets.find(preset);
    std::string names;
    for (const auto& [n, t] : cmd.presets) names += " " + n;
    // main() prefixes "lethe <command>: ", so the sentence starts bare.
    LETHE_CHECK(it != cmd.presets.end(), "unknown preset '", preset,
                "' (valid:", names.empty() ? " none" : names, ")");
    merged.merge(Config::from_string(it->second, "preset " + preset));
  }
  if (!config_file.empty()) merged.merge(Config::from_file(config_file));
  merged.merge(flags);
  for (const auto& [k, v] : merged.values())
    LETHE_CHECK(known.count(k), "unknown option '", k,
                "'; run 'lethe ", cmd.name, " --help' for the valid ones");
  out = merged;
  return true;
}

}  // namespace lethe::cli
