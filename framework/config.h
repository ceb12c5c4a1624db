// Config files: the format every `lethe <subcommand> --config FILE` reads (docs/design.md).
//
//   # a comment
//   model = resnet18          # keys are the long flag names without "--"
//   width = 0.25
//   [prune]                   # a section prefixes the keys below it: prune.rate
//   rate = 0.95
//   lr_schedule = "multistep:91,136"   # quotes optional; needed for '#' inside a value
//
// Flags override file values (`--prune.rate 0.9`), presets sit below both. Every key a
// command does not consume is an error, so a typo never silently falls back to a default.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace lethe {

class Config {
 public:
  /// Parses a file; errors name the file and line.
  static Config from_file(const std::string& path);
  /// Parses text (`origin` names it in errors).
  static Config from_string(const std::string& text, const std::string& origin = "config");

  /// Sets (or overrides) a key, e.g. from a command-line flag.
  void set(const std::string& key, const std::string& value, const std::string& origin = "flag");
  /// Copies every key of `other` over this one (other wins).
  void merge(const Config& other);
  bool has(const std::string& key) const { return values_.count(key) != 0; }

  // Typed getters: the value if present (marking the key used), else the default; a value
  // that does not parse throws an Error naming the key, its origin and the expected type.
  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_double(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;  ///< true/false/1/0/yes/no/on/off
  std::vector<std::string> get_list(const std::string& key,
                                    const std::vector<std::string>& def) const;  ///< comma-separated

  /// Keys never read by a getter (typos, or options of another command).
  std::vector<std::string> unused_keys() const;
  /// Throws an Error listing unused keys, if any.
  void check_all_used() const;
  /// All keys and values, sorted (for results JSON and the config hash of a stage).
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const std::string* find(const std::string& key) const;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> origins_;
  mutable std::set<std::string> used_;
};

}  // namespace lethe
