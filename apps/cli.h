// Command-line plumbing shared by every `lethe` subcommand: flags -> Config, presets, --help.
//
//   lethe <subcommand> [--config FILE] [--preset NAME] [--key value | --key=value | --flag]...
//
// Precedence: the subcommand's defaults < preset < config file < flags. Each subcommand
// lists its options (key, default, help); any other key is an error naming it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "framework/config.h"

namespace lethe::cli {

struct Option {
  std::string key, default_value, help;
};

struct Command {
  std::string name, summary;
  std::vector<Option> options;
  /// Named presets: each a config text (docs/design.md format) applied above the defaults.
  std::map<std::string, std::string> presets;
};

/// Parses argv (after the subcommand name). Returns false when --help was asked for (the
/// help text is then printed to stdout). The returned Config holds every option's value.
bool parse_args(const Command& cmd, const std::vector<std::string>& args, Config& out);

/// The help text of a subcommand (options with defaults, presets).
std::string help_text(const Command& cmd);

}  // namespace lethe::cli
