// Forgetting scenarios: spec parsing, the forget/retain lists, the test set T.
#include "unlearn/forget_set.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "framework/atomic_file.h"
#include "framework/parse.h"
#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::unlearn {

namespace {

/// design.md: stream 3 is forget-set sampling.
constexpr uint64_t kForgetStream = 3;

const char* kForms = "class:C (a whole class), random:N (N random training images) or "
                     "file:PATH (one original index per line)";

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

/// Reads and validates an index file against the data and the training split.
std::vector<int64_t> read_index_file(const std::string& path, int64_t n_images,
                                     const std::vector<uint8_t>& in_split) {
  std::ifstream f(path);
  LETHE_CHECK(f.good(), "cannot read the forget index file ", path,
              " (it should hold one original training index per line)");
  std::vector<int64_t> out;
  std::vector<int64_t> first_line(static_cast<size_t>(n_images), 0);
  std::string line;
  for (int64_t lineno = 1; std::getline(f, line); ++lineno) {
    const size_t hash = line.find('#');
    const std::string text = trim(hash == std::string::npos ? line : line.substr(0, hash));
    if (text.empty()) continue;
    int64_t idx = 0;
    LETHE_CHECK(parse_int(text, &idx), path, ":", lineno, ": '", text,
                "' is not an integer (the file must hold one original training index per line)");
    LETHE_CHECK(idx >= 0 && idx < n_images, path, ":", lineno, ": index ", idx,
                " is outside the training images 0..", n_images - 1);
    LETHE_CHECK(in_split[static_cast<size_t>(idx)], path, ":", lineno, ": index ", idx,
                " is not in the training split (it is a validation image, or beyond "
                "--train-limit); forget sets come from the training split only");
    int64_t& seen = first_line[static_cast<size_t>(idx)];
    LETHE_CHECK(seen == 0, path, ":", lineno, ": index ", idx, " repeats line ", seen);
    seen = lineno;
    out.push_back(idx);
  }
  LETHE_CHECK(!out.empty(), "the forget index file ", path,
              " holds no index; an empty forget set is an error");
  return out;
}

}  // namespace

std::string ForgetSpec::kind_name() const {
  switch (kind) {
    case ForgetKind::Class: return "class";
    case ForgetKind::Random: return "random";
    case ForgetKind::File: return "file";
  }
  return "?";
}

std::string ForgetSpec::str() const {
  switch (kind) {
    case ForgetKind::Class: return "class:" + std::to_string(cls);
    case ForgetKind::Random: return "random:" + std::to_string(count);
    case ForgetKind::File: return "file:" + path;
  }
  return "?";
}

ForgetSpec parse_forget_spec(const std::string& text) {
  const size_t colon = text.find(':');
  LETHE_CHECK(colon != std::string::npos, "--forget '", text, "' is not a forget set; use ",
              kForms);
  const std::string kind = text.substr(0, colon), arg = text.substr(colon + 1);
  ForgetSpec s;
  if (kind == "class") {
    s.kind = ForgetKind::Class;
    LETHE_CHECK(parse_int(arg, &s.cls) && s.cls >= 0, "--forget '", text,
                "': the class must be a non-negative integer, e.g. class:0");
  } else if (kind == "random") {
    s.kind = ForgetKind::Random;
    LETHE_CHECK(parse_int(arg, &s.count) && s.count > 0, "--forget '", text,
                "': the count must be a positive integer, e.g. random:4500 (an empty forget "
                "set is an error)");
  } else if (kind == "file") {
    s.kind = ForgetKind::File;
    s.path = arg;
    LETHE_CHECK(!s.path.empty(), "--forget '", text, "': file: needs a path, e.g. file:forget.txt");
  } else {
    LETHE_CHECK(false, "--forget '", text, "': unknown kind '", kind, "'; use ", kForms);
  }
  return s;
}

ForgetSet make_forget_set(const ForgetSpec& spec, const data::Dataset& train,
                          const std::vector<int64_t>& train_split, uint64_t seed) {
  const int64_t n_images = train.size();
  std::vector<uint8_t> in_split(static_cast<size_t>(n_images), 0);
  for (int64_t i : train_split) {
    LETHE_CHECK(i >= 0 && i < n_images, "training split index ", i, " outside 0..", n_images - 1);
    in_split[static_cast<size_t>(i)] = 1;
  }
  ForgetSet fs;
  fs.spec = spec;
  fs.num_classes = train.num_classes;
  const int64_t split_n = static_cast<int64_t>(train_split.size());
  switch (spec.kind) {
    case ForgetKind::Class: {
      LETHE_CHECK(spec.cls >= 0 && spec.cls < train.num_classes, "--forget ", spec.str(),
                  ": the data set ", train.name, " has classes 0..", train.num_classes - 1);
      fs.forgotten_class = spec.cls;
      for (int64_t i : train_split)
        if (train.labels[static_cast<size_t>(i)] == spec.cls) fs.forget.push_back(i);
      LETHE_CHECK(!fs.forget.empty(), "--forget ", spec.str(), ": the training split holds no "
                  "image of class ", spec.cls, "; an empty forget set is an error");
      break;
    }
    case ForgetKind::Random: {
      LETHE_CHECK(spec.count < split_n, "--forget ", spec.str(), ": the training split has ",
                  split_n, " images, so at most ", split_n - 1,
                  " can be forgotten (something must be retained)");
      // A seeded permutation of the split's positions; its first N are the forget set, so
      // random:N for a larger N contains the one for a smaller N (same seed).
      Generator gen(seed, kForgetStream);
      const std::vector<int64_t> perm = gen.permutation(split_n);
      for (int64_t k = 0; k < spec.count; ++k)
        fs.forget.push_back(train_split[static_cast<size_t>(perm[static_cast<size_t>(k)])]);
      break;
    }
    case ForgetKind::File:
      fs.forget = read_index_file(spec.path, n_images, in_split);
      break;
  }
  std::sort(fs.forget.begin(), fs.forget.end());
  // Duplicates in the split itself would break "retain = split minus forget"; the split
  // functions never make any, so this only guards hand-made splits.
  LETHE_CHECK(std::adjacent_find(fs.forget.begin(), fs.forget.end()) == fs.forget.end(),
              "the training split lists an image twice");
  std::vector<uint8_t> forgotten(static_cast<size_t>(n_images), 0);
  for (int64_t i : fs.forget) forgotten[static_cast<size_t>(i)] = 1;
  for (int64_t i : train_split)
    if (!forgotten[static_cast<size_t>(i)]) fs.retain.push_back(i);
  std::sort(fs.retain.begin(), fs.retain.end());
  LETHE_CHECK(!fs.retain.empty(), "--forget ", spec.str(), " covers the whole training split; ",
              "nothing would be retained");
  return fs;
}

ForgetSet make_forget_set(const std::string& spec, const data::Dataset& train,
                          const std::vector<int64_t>& train_split, uint64_t seed) {
  return make_forget_set(parse_forget_spec(spec), train, train_split, seed);
}

std::vector<int64_t> test_set_indices(const data::Dataset& test, const ForgetSet& fs) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(test.size()));
  for (int64_t i = 0; i < test.size(); ++i)
    if (!fs.class_wise() || test.labels[static_cast<size_t>(i)] != fs.forgotten_class)
      out.push_back(i);
  return out;
}

void write_index_file(const std::string& path, const std::vector<int64_t>& indices) {
  std::ostringstream os;
  for (int64_t i : indices) os << i << "\n";
  write_text_atomic(path, os.str());
}

}  // namespace lethe::unlearn
