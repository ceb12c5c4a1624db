// Whole-string number parses for config values, spec strings and metadata: false on an empty
// string or any stray character (std::stoll would accept "12abc" and throw on "").
#pragma once

#include <charconv>
#include <cstdint>
#include <string_view>

namespace lethe {

inline bool parse_int(std::string_view s, int64_t* v) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

inline bool parse_double(std::string_view s, double* v) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace lethe
