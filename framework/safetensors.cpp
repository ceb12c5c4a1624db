// safetensors reader/writer (format in safetensors.h). POSIX I/O throughout, because the
// atomic-write protocol needs fsync on the file and on its directory, which iostreams lack.
#include "framework/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>

#include "framework/atomic_file.h"
#include "kernels/check.h"

namespace lethe::io {
namespace {

// A header longer than this is certainly corruption: real headers are a few hundred bytes
// per tensor. The safetensors library uses the same bound.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  size_t size;
};
// The safetensors dtypes whose elements are whole bytes (sub-byte F4/F6 are not supported).
constexpr DtypeInfo kDtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2},     {"BF16", 2},    {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},      {"U64", 8},     {"U32", 4},
    {"U16", 2}, {"U8", 1},  {"BOOL", 1},    {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

// 0 for an unknown dtype.
size_t find_dtype_size(const std::string& dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (dtype == d.name) return d.size;
  return 0;
}

std::string known_dtypes() {
  std::string s;
  for (const DtypeInfo& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

// Number of bytes of a tensor of `shape` and element size `esize`, or false on a negative
// dimension or overflow past 2^63.
bool tensor_bytes(const std::vector<int64_t>& shape, size_t esize, uint64_t* bytes) {
  uint64_t n = esize;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const uint64_t ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ud)
      return false;
    n *= ud;
  }
  *bytes = n;
  return true;
}

// ---- writing -------------------------------------------------------------------------------

void put_u64_le(uint64_t v, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}


void validate_for_write(const std::string& path, const std::vector<StTensorView>& tensors) {
  std::set<std::string> names;
  for (const StTensorView& t : tensors) {
    LETHE_CHECK(!t.name.empty(), "write_safetensors '", path,
                "': a tensor has an empty name; every tensor needs a unique non-empty name.");
    LETHE_CHECK(t.name.rfind("__", 0) != 0, "write_safetensors '", path, "': tensor name '",
                t.name, "' starts with \"__\", which the format reserves for __metadata__.");
    LETHE_CHECK(names.insert(t.name).second, "write_safetensors '", path, "': tensor name '",
                t.name, "' appears twice; names must be unique.");
    const size_t esize = find_dtype_size(t.dtype);
    LETHE_CHECK(esize != 0, "write_safetensors '", path, "': tensor '", t.name,
                "' has unknown dtype '", t.dtype, "' (known: ", known_dtypes(), ").");
    uint64_t bytes = 0;
    LETHE_CHECK(tensor_bytes(t.shape, esize, &bytes), "write_safetensors '", path,
                "': tensor '", t.name, "' has invalid shape ", shape_str(t.shape),
                " (a negative dimension or a size that overflows).");
    LETHE_CHECK(bytes == t.nbytes, "write_safetensors '", path, "': tensor '", t.name,
                "' has nbytes=", t.nbytes, " but shape ", shape_str(t.shape), " of ", t.dtype,
                " needs ", bytes, " bytes.");
    LETHE_CHECK(t.nbytes == 0 || t.data != nullptr, "write_safetensors '", path,
                "': tensor '", t.name, "' has ", t.nbytes, " bytes but a null data pointer.");
  }
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  const size_t s = find_dtype_size(dtype);
  LETHE_CHECK(s != 0, "unknown safetensors dtype '", dtype, "' (known: ", known_dtypes(), ").");
  return s;
}

const StTensor* SafetensorsFile::find(const std::string& name) const {
  for (const StTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const std::vector<StTensorView>& tensors,
                       const StMetadata& metadata) {
  validate_for_write(path, tensors);

  // Layout: descending element size, then name (the safetensors library's order), so each
  // tensor starts at a multiple of its element size and the bytes do not depend on the
  // order of `tensors`.
  std::vector<const StTensorView*> order;
  for (const StTensorView& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const StTensorView* a, const StTensorView* b) {
    const size_t sa = find_dtype_size(a->dtype), sb = find_dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });

  // ordered_json keeps insertion order: __metadata__ first, then tensors in buffer order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const StTensorView* t : order) {
    header[t->name] = {{"dtype", t->dtype},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    LETHE_CHECK(false, "write_safetensors '", path,
                "': tensor names and metadata must be valid UTF-8 (", e.what(), ").");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  put_u64_le(text.size(), len);

  std::vector<std::pair<const void*, size_t>> chunks = {{len, sizeof len},
                                                        {text.data(), text.size()}};
  for (const StTensorView* t : order) chunks.emplace_back(t->data, t->nbytes);
  write_file_atomic(path, chunks);
}

// ---- reading -------------------------------------------------------------------------------

namespace {

// Reads exactly n bytes at `offset`, or returns false.
bool pread_all(int fd, void* out, size_t n, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, std::min<size_t>(n, size_t{1} << 30),
                              static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

// Closes the descriptor on every path out of read_safetensors, including throws.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// One tensor entry of the header, before its bytes are read.
struct Entry {
  StTensor tensor;
  uint64_t begin = 0, end = 0;
};

// Parses the header JSON, rejecting duplicate keys at any level (nlohmann would silently keep
// the last one, and a checkpoint with two "conv1.weight" entries is corrupt).
nlohmann::json parse_header(const std::string& path, const std::string& text) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys;  // keys seen in each open object
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& value) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty() &&
               !keys.back().insert(value.get<std::string>()).second && duplicate.empty()) {
      duplicate = value.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, callback);
  } catch (const json::exception& e) {
    LETHE_CHECK(false, "safetensors file '", path, "' has a header that is not valid JSON (",
                e.what(), "); the file is corrupt or not a safetensors file.");
  }
  LETHE_CHECK(duplicate.empty(), "safetensors file '", path, "' has the key '", duplicate,
              "' twice in its header; the file is corrupt.");
  LETHE_CHECK(header.is_object(), "safetensors file '", path,
              "' has a header that is not a JSON object; the file is corrupt.");
  return header;
}

StMetadata parse_metadata(const std::string& path, const nlohmann::json& meta) {
  LETHE_CHECK(meta.is_object(), "safetensors file '", path,
              "' has a __metadata__ entry that is not a JSON object of strings.");
  StMetadata out;
  for (const auto& [k, v] : meta.items()) {
    LETHE_CHECK(v.is_string(), "safetensors file '", path, "' has metadata key '", k,
                "' whose value is ", v.type_name(), ", but metadata values must be strings.");
    out[k] = v.get<std::string>();
  }
  return out;
}

// A non-negative JSON integer, or false.
bool get_u64(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v) {
  const std::string where = "safetensors file '" + path + "': tensor '" + name + "'";
  LETHE_CHECK(v.is_object(), where, " is described by ", v.type_name(),
              " instead of an object with dtype, shape and data_offsets.");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    LETHE_CHECK(v.contains(field), where, " is missing the '", field, "' field.");
  Entry e;
  e.tensor.name = name;
  const nlohmann::json& dtype = v["dtype"];
  LETHE_CHECK(dtype.is_string(), where, " has a dtype that is not a string.");
  e.tensor.dtype = dtype.get<std::string>();
  const size_t esize = find_dtype_size(e.tensor.dtype);
  LETHE_CHECK(esize != 0, where, " has unknown dtype '", e.tensor.dtype, "' (known: ",
              known_dtypes(), ").");
  const nlohmann::json& shape = v["shape"];
  LETHE_CHECK(shape.is_array(), where, " has a shape that is not an array.");
  for (const nlohmann::json& d : shape) {
    uint64_t ud = 0;
    LETHE_CHECK(get_u64(d, &ud) && ud <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                where, " has a shape entry ", d.dump(), " that is not a non-negative integer.");
    e.tensor.shape.push_back(static_cast<int64_t>(ud));
  }
  const nlohmann::json& offs = v["data_offsets"];
  LETHE_CHECK(offs.is_array() && offs.size() == 2 && get_u64(offs[0], &e.begin) &&
                  get_u64(offs[1], &e.end) && e.begin <= e.end,
              where, " has data_offsets ", offs.dump(),
              " instead of [begin, end] with 0 <= begin <= end.");
  uint64_t bytes = 0;
  LETHE_CHECK(tensor_bytes(e.tensor.shape, esize, &bytes), where, " has shape ",
              shape_str(e.tensor.shape), ", too large to address.");
  LETHE_CHECK(bytes == e.end - e.begin, where, " has data_offsets [", e.begin, ", ", e.end,
              "] spanning ", e.end - e.begin, " bytes, but shape ", shape_str(e.tensor.shape),
              " of ", e.tensor.dtype, " needs ", bytes, " bytes.");
  return e;
}

// Checks that the entries tile [0, buffer) exactly: in range, no overlap, no gap, no excess.
void check_layout(const std::string& path, std::vector<Entry>& entries, uint64_t buffer) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.tensor.name < b.tensor.name;
  });
  const std::string file = "safetensors file '" + path + "'";
  uint64_t expected = 0;
  const std::string* prev = nullptr;
  for (const Entry& e : entries) {
    LETHE_CHECK(e.end <= buffer, file, ": tensor '", e.tensor.name, "' ends at byte ", e.end,
                " of the data buffer, which holds only ", buffer,
                " bytes; the file is truncated or corrupt.");
    LETHE_CHECK(e.begin >= expected, file, ": tensor '", e.tensor.name,
                "' overlaps tensor '", (prev ? *prev : std::string()), "' (its data starts at ",
                e.begin, " before ", expected, "); the file is corrupt.");
    LETHE_CHECK(e.begin == expected, file, ": bytes ", expected, "..", e.begin,
                " of the data buffer belong to no tensor; the file is corrupt.");
    expected = e.end;
    prev = &e.tensor.name;
  }
  LETHE_CHECK(expected == buffer, file, " has ", buffer - expected,
              " trailing bytes after the last tensor's data; the file is corrupt.");
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  const std::string file = "safetensors file '" + path + "'";
  FdGuard guard{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  LETHE_CHECK(guard.fd >= 0, "cannot open ", file, " (", std::strerror(errno),
              "); check the path.");
  struct stat st {};
  LETHE_CHECK(::fstat(guard.fd, &st) == 0 && S_ISREG(st.st_mode), file,
              " is not a regular file.");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  LETHE_CHECK(size >= 8, file, " is ", size,
              " bytes long, too short for the 8-byte header length; it is truncated or not a "
              "safetensors file.");

  uint8_t len[8];
  LETHE_CHECK(pread_all(guard.fd, len, 8, 0), "cannot read ", file, " (",
              std::strerror(errno), ").");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  LETHE_CHECK(n <= kMaxHeaderBytes, file, " declares a header of ", n,
              " bytes (over 100 MB); it is corrupt or not a safetensors file.");
  LETHE_CHECK(n <= size - 8, file, " declares a header of ", n, " bytes but only ", size - 8,
              " bytes follow the length field; it is truncated or not a safetensors file.");

  std::string text(n, '\0');
  LETHE_CHECK(pread_all(guard.fd, text.data(), n, 8), "cannot read the header of ", file, " (",
              std::strerror(errno), ").");
  const nlohmann::json header = parse_header(path, text);

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata = parse_metadata(path, value);
    } else {
      entries.push_back(parse_entry(path, key, value));
    }
  }
  const uint64_t data_start = 8 + n;
  check_layout(path, entries, size - data_start);

  out.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    e.tensor.data.resize(e.end - e.begin);
    LETHE_CHECK(pread_all(guard.fd, e.tensor.data.data(), e.tensor.data.size(),
                          data_start + e.begin),
                "cannot read the data of tensor '", e.tensor.name, "' from ", file, " (",
                std::strerror(errno), ").");
    out.tensors.push_back(std::move(e.tensor));
  }
  return out;
}

}  // namespace lethe::io
