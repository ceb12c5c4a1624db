#include "framework/config.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "kernels/check.h"

namespace lethe {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool valid_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

// Removes a trailing comment that is not inside quotes, then the quotes themselves.
std::string parse_value(const std::string& raw, const std::string& where) {
  std::string v = trim(raw);
  if (!v.empty() && v[0] == '"') {
    const size_t close = v.find('"', 1);
    LETHE_CHECK(close != std::string::npos, where, ": unterminated quoted value");
    const std::string rest = trim(v.substr(close + 1));
    LETHE_CHECK(rest.empty() || rest[0] == '#', where, ": unexpected text after the quoted value");
    return v.substr(1, close - 1);
  }
  const size_t hash = v.find('#');
  if (hash != std::string::npos) v = trim(v.substr(0, hash));
  return v;
}

}  // namespace

Config Config::from_string(const std::string& text, const std::string& origin) {
  Config c;
  std::istringstream in(text);
  std::string line, section;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = origin + ":" + std::to_string(lineno);
    LETHE_CHECK(line.find('\0') == std::string::npos, where, ": NUL byte in a config line");
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t[0] == '[') {
      LETHE_CHECK(t.back() == ']', where, ": a section header looks like [name]");
      section = trim(t.substr(1, t.size() - 2));
      LETHE_CHECK(section.empty() || valid_key(section), where, ": bad section name '", section,
                  "'");
      continue;
    }
    const size_t eq = t.find('=');
    LETHE_CHECK(eq != std::string::npos, where, ": expected 'key = value', got '", t, "'");
    const std::string key = trim(t.substr(0, eq));
    LETHE_CHECK(valid_key(key), where, ": bad key '", key,
                "' (letters, digits, '_', '-', '.' only)");
    const std::string full = section.empty() ? key : section + "." + key;
    LETHE_CHECK(!c.has(full), where, ": key '", full, "' given twice");
    c.set(full, parse_value(t.substr(eq + 1), where), where);
  }
  return c;
}

Config Config::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LETHE_CHECK(f.good(), "cannot open config file ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_string(ss.str(), path);
}

void Config::set(const std::string& key, const std::string& value, const std::string& origin) {
  LETHE_CHECK(valid_key(key), "bad config key '", key, "' (from ", origin, ")");
  values_[key] = value;
  origins_[key] = origin;
}

void Config::merge(const Config& other) {
  for (const auto& [k, v] : other.values_) set(k, v, other.origins_.at(k));
}

const std::string* Config::find(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return nullptr;
  used_.insert(key);
  return &it->second;
}

std::string Config::get_string(const std::string& key, const std::string& def) const {
  const std::string* v = find(key);
  return v ? *v : def;
}

int64_t Config::get_int(const std::string& key, int64_t def) const {
  const std::string* v = find(key);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  LETHE_CHECK(!v->empty() && *end == '\0' && errno == 0, "'", key, "' (from ",
              origins_.at(key), ") must be an integer, got '", *v, "'");
  return x;
}

double Config::get_double(const std::string& key, double def) const {
  const std::string* v = find(key);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  LETHE_CHECK(!v->empty() && *end == '\0' && errno == 0, "'", key, "' (from ",
              origins_.at(key), ") must be a number, got '", *v, "'");
  return x;
}

bool Config::get_bool(const std::string& key, bool def) const {
  const std::string* v = find(key);
  if (!v) return def;
  if (*v == "true" || *v == "1" || *v == "yes" || *v == "on") return true;
  if (*v == "false" || *v == "0" || *v == "no" || *v == "off") return false;
  LETHE_CHECK(false, "'", key, "' (from ", origins_.at(key), ") must be true or false, got '", *v,
              "'");
}

std::vector<std::string> Config::get_list(const std::string& key,
                                          const std::vector<std::string>& def) const {
  const std::string* v = find(key);
  if (!v) return def;
  std::vector<std::string> out;
  std::istringstream in(*v);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<std::string> Config::unused_keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_)
    if (!used_.count(k)) out.push_back(k);
  return out;
}

void Config::check_all_used() const {
  const std::vector<std::string> unused = unused_keys();
  if (unused.empty()) return;
  std::string list;
  for (const auto& k : unused) list += (list.empty() ? "" : ", ") + k + " (from " + origins_.at(k) + ")";
  LETHE_CHECK(false, "unknown option", unused.size() > 1 ? "s " : " ", list,
              "; see --help for the valid ones");
}

}  // namespace lethe
