// CIFAR binary readers, data-folder resolution and normalisation constants (see dataset.h
// for the file layouts and the rule on which CIFAR-10 batch files must exist).
//
// Every failure on user data is one lethe::Error sentence that names the file and says what
// was expected, because the usual causes (a half-finished download, a CIFAR-100 file in a
// CIFAR-10 folder, a wrong --data-dir) are fixed by the user, not by reading a stack trace.
#include "data/dataset.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/synthetic.h"
#include "kernels/check.h"

namespace lethe::data {
namespace fs = std::filesystem;
namespace {

// Records read per fread-style chunk: bounded memory for the 150 MB CIFAR-100 train.bin.
constexpr int64_t kChunkRecords = 1024;

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

const char* pretty_name(const std::string& dataset) {
  if (dataset == "cifar10") return "CIFAR-10";
  if (dataset == "cifar100") return "CIFAR-100";
  return dataset.c_str();
}

// Fails with "<what> <path> is missing; <hint>" when path is not a regular file.
void require_file(const std::string& path, const std::string& dataset, const std::string& dir,
                  const std::string& what) {
  LETHE_CHECK(is_file(path), "the ", pretty_name(dataset), " file ", path, " is missing (",
              what, "); ", how_to_get_data(dataset, dir), ".");
}

void check_known(const std::string& dataset) {
  LETHE_CHECK(dataset == "cifar10" || dataset == "cifar100" || dataset == "synthetic",
              "unknown data set '", dataset, "'; expected cifar10, cifar100 or synthetic.");
}

}  // namespace

Normalization normalization_for(const std::string& dataset) {
  check_known(dataset);
  if (dataset == "cifar10") return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  if (dataset == "cifar100") return {{0.5071f, 0.4866f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};
  return synthetic_normalization();
}

int64_t num_classes_for(const std::string& dataset) {
  check_known(dataset);
  return dataset == "cifar100" ? 100 : 10;
}

int64_t append_records(const std::string& path, int64_t header_bytes, int64_t label_byte,
                       Dataset* out) {
  LETHE_CHECK(header_bytes > 0 && label_byte >= 0 && label_byte < header_bytes && out,
              "append_records: bad record layout (header ", header_bytes, ", label byte ",
              label_byte, ").");
  const int64_t record = header_bytes + kImageBytes;
  std::error_code ec;
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  LETHE_CHECK(!ec, "cannot read the size of ", path, " (", ec.message(), "); expected a ",
              pretty_name(out->name), " binary file of ", record, "-byte records.");
  LETHE_CHECK(size > 0, path, " is empty; expected ", pretty_name(out->name), " records of ",
              record, " bytes each.");
  LETHE_CHECK(size % record == 0, path, " is ", size, " bytes, not a whole number of ",
              record, "-byte ", pretty_name(out->name),
              " records; the file is truncated or of another layout.");
  std::ifstream in(path, std::ios::binary);
  LETHE_CHECK(in.good(), "cannot open ", path, " for reading; expected a ",
              pretty_name(out->name), " binary file.");

  const int64_t n = size / record;
  const int64_t first = out->size();
  out->images.resize(static_cast<size_t>((first + n) * kImageBytes));
  out->labels.resize(static_cast<size_t>(first + n));
  std::vector<char> buf(static_cast<size_t>(kChunkRecords * record));
  for (int64_t r0 = 0; r0 < n; r0 += kChunkRecords) {
    const int64_t m = std::min(kChunkRecords, n - r0);
    in.read(buf.data(), static_cast<std::streamsize>(m * record));
    LETHE_CHECK(in.gcount() == m * record, "reading ", path, " stopped after ",
                (r0 * record + in.gcount()), " of ", size, " bytes; expected the whole file.");
    for (int64_t r = 0; r < m; ++r) {
      const auto* rec = reinterpret_cast<const uint8_t*>(buf.data() + r * record);
      const int32_t label = rec[label_byte];
      LETHE_CHECK(label < out->num_classes, path, ": record ", r0 + r, " has label ", label,
                  ", but ", pretty_name(out->name), " labels lie in 0..",
                  out->num_classes - 1, "; the file is of another data set or corrupt.");
      const int64_t i = first + r0 + r;
      out->labels[static_cast<size_t>(i)] = label;
      std::copy(rec + header_bytes, rec + record, out->images.data() + i * kImageBytes);
    }
  }
  return n;
}

Dataset load_cifar10(const std::string& dir, Split split) {
  Dataset d;
  d.name = "cifar10";
  d.num_classes = 10;
  if (split == Split::Test) {
    const std::string path = join(dir, "test_batch.bin");
    require_file(path, d.name, dir, "the test set");
    append_records(path, 1, 0, &d);
    return d;
  }
  // The existence rule of dataset.h: a file is required while the previous one is full.
  bool previous_full = true;
  for (int k = 1; k <= 5; ++k) {
    const std::string name = "data_batch_" + std::to_string(k) + ".bin";
    const std::string path = join(dir, name);
    if (!is_file(path)) {
      LETHE_CHECK(k > 1, "the CIFAR-10 file ", path, " is missing (the first training batch); ",
                  how_to_get_data(d.name, dir), ".");
      LETHE_CHECK(!previous_full, "the CIFAR-10 file ", path,
                  " is missing although data_batch_", k - 1, ".bin holds a full batch of ",
                  kCifar10BatchRecords, " records, so a complete copy needs data_batch_1..5.bin; ",
                  how_to_get_data(d.name, dir), ".");
      for (int j = k + 1; j <= 5; ++j) {
        const std::string later = join(dir, "data_batch_" + std::to_string(j) + ".bin");
        LETHE_CHECK(!is_file(later), "the CIFAR-10 file ", path, " is missing but ", later,
                    " exists, so a batch file was lost; ", how_to_get_data(d.name, dir), ".");
      }
      break;
    }
    previous_full = append_records(path, 1, 0, &d) == kCifar10BatchRecords;
  }
  return d;
}

Dataset load_cifar100(const std::string& dir, Split split) {
  Dataset d;
  d.name = "cifar100";
  d.num_classes = 100;
  const bool train = split == Split::Train;
  const std::string path = join(dir, train ? "train.bin" : "test.bin");
  require_file(path, d.name, dir, train ? "the training set" : "the test set");
  append_records(path, 2, 1, &d);  // byte 0: coarse label, byte 1: fine label
  return d;
}

Dataset load_dataset(const std::string& name, const std::string& dir, Split split) {
  check_known(name);
  if (name == "cifar10") return load_cifar10(dir, split);
  if (name == "cifar100") return load_cifar100(dir, split);
  return make_synthetic_split(split);
}

bool cifar10_present(const std::string& dir) {
  return is_file(join(dir, "data_batch_1.bin")) && is_file(join(dir, "test_batch.bin"));
}

bool cifar100_present(const std::string& dir) {
  return is_file(join(dir, "train.bin")) && is_file(join(dir, "test.bin"));
}

bool dataset_present(const std::string& name, const std::string& dir) {
  check_known(name);
  if (name == "cifar10") return cifar10_present(dir);
  if (name == "cifar100") return cifar100_present(dir);
  return true;
}

std::string how_to_get_data(const std::string& dataset, const std::string& dir) {
  std::string s = "get it with `lethe download --dataset " + dataset + " --data-dir " + dir + "`";
  if (dataset == "cifar10")
    s += ", or without network from the offline copy with `python3 "
         "../shared/data/cifar10/unpack.py " + dir + "` (needs Pillow)";
  return s;
}

std::string resolve_data_dir(const std::string& flag_value, const std::string& dataset) {
  check_known(dataset);
  if (dataset == "synthetic") return "";
  std::string dir, origin;
  const char* env = std::getenv("LETHE_DATA");
  if (!flag_value.empty()) {
    dir = flag_value;
    origin = "given by --data-dir";
  } else if (env != nullptr && env[0] != '\0') {
    dir = env;
    origin = "given by the environment variable LETHE_DATA, as --data-dir is not set";
  } else {
    dir = "./data_cache/" + dataset;
    origin = "the default, as neither --data-dir nor LETHE_DATA is set";
  }
  std::error_code ec;
  LETHE_CHECK(fs::is_directory(dir, ec), "the ", pretty_name(dataset), " data folder ", dir,
              " (", origin, ") does not exist; ", how_to_get_data(dataset, dir),
              ", or point --data-dir or LETHE_DATA at a folder holding it.");
  return dir;
}

Dataset select_classes(const Dataset& data, const std::vector<int64_t>& classes,
                       std::vector<int64_t>* index_map) {
  LETHE_CHECK(!classes.empty(), "select_classes: the class list is empty");
  std::vector<int32_t> new_label(static_cast<size_t>(data.num_classes), -1);
  for (size_t k = 0; k < classes.size(); ++k) {
    const int64_t c = classes[k];
    LETHE_CHECK(c >= 0 && c < data.num_classes, "class ", c, " is not a class of ", data.name,
                " (0..", data.num_classes - 1, ")");
    LETHE_CHECK(new_label[static_cast<size_t>(c)] < 0, "class ", c, " is listed twice");
    new_label[static_cast<size_t>(c)] = static_cast<int32_t>(k);
  }
  Dataset out;
  out.name = data.name;
  out.num_classes = static_cast<int64_t>(classes.size());
  if (index_map) index_map->assign(static_cast<size_t>(data.size()), -1);
  for (int64_t i = 0; i < data.size(); ++i) {
    const int32_t l = new_label[static_cast<size_t>(data.labels[static_cast<size_t>(i)])];
    if (l < 0) continue;
    if (index_map) (*index_map)[static_cast<size_t>(i)] = out.size();
    out.images.insert(out.images.end(), data.image(i), data.image(i) + kImageBytes);
    out.labels.push_back(l);
  }
  return out;
}

std::vector<int64_t> map_indices(const std::vector<int64_t>& indices,
                                 const std::vector<int64_t>& index_map) {
  std::vector<int64_t> out;
  for (int64_t i : indices) {
    LETHE_CHECK(i >= 0 && i < static_cast<int64_t>(index_map.size()), "map_indices: index ", i,
                " out of range");
    const int64_t j = index_map[static_cast<size_t>(i)];
    if (j >= 0) out.push_back(j);
  }
  return out;
}

std::vector<int64_t> parse_class_list(const std::vector<std::string>& items, int64_t num_classes,
                                      const std::string& what) {
  std::vector<int64_t> out;
  const auto number = [&](const std::string& t) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LETHE_CHECK(used == t.size() && !t.empty() && v >= 0 && v < num_classes, "--", what, ": '",
                t, "' is not a class in 0..", num_classes - 1,
                " (write \"all\", classes \"3\" or ranges \"0-4\", comma-separated)");
    return v;
  };
  for (const std::string& item : items) {
    if (item == "all") {
      for (int64_t c = 0; c < num_classes; ++c) out.push_back(c);
      continue;
    }
    const size_t dash = item.find('-', 1);
    if (dash == std::string::npos) {
      out.push_back(number(item));
      continue;
    }
    const int64_t a = number(item.substr(0, dash)), b = number(item.substr(dash + 1));
    LETHE_CHECK(a <= b, "--", what, ": the range '", item, "' is empty");
    for (int64_t c = a; c <= b; ++c) out.push_back(c);
  }
  LETHE_CHECK(!out.empty(), "--", what, " lists no class");
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  LETHE_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), "--", what,
              " lists a class twice");
  return out;
}

}  // namespace lethe::data
