// safetensors reader and writer: lethe's checkpoint format (SPEC §10), byte-compatible with
// the Hugging Face safetensors library, independent of lethe's Tensor class.
//
// File layout:
//   [8 bytes]  N, little-endian uint64: the header length
//   [N bytes]  UTF-8 JSON object, padded with spaces to a multiple of 8 bytes:
//              {"__metadata__": {"key": "value", ...},
//               "<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [b, e]}, ...}
//   [rest]     the byte buffer; tensor <name> occupies buffer[b, e), little-endian, row-major,
//              and the tensors tile the buffer exactly (no gaps, no overlap, nothing after).
//
// The writer lays tensors out as the safetensors library does: by descending element size,
// then by name. That keeps every tensor aligned to its element size inside the buffer (so
// zero-copy readers can map it) and makes files deterministic: the same tensors and metadata
// give the same bytes whatever order they were passed in. Writes are atomic (temp file, fsync,
// rename, fsync of the directory), so a crash or a rejected write never damages an existing
// checkpoint. The reader validates everything and reports a problem in one sentence that names
// the file, since a corrupt checkpoint is bad user input, not a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lethe::io {

/// One tensor read from a file; `data` holds exactly product(shape) * dtype_size(dtype) bytes.
struct StTensor {
  std::string name;
  std::string dtype;  ///< safetensors dtype string: "F32", "F64", "I32", "I64", "U8", "BOOL", ...
  std::vector<int64_t> shape;  ///< empty for a 0-d scalar
  std::vector<uint8_t> data;   ///< little-endian, row-major
};

/// A tensor to write, borrowed: `data` must hold `nbytes` bytes and outlive the write call.
struct StTensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

/// The `__metadata__` map: string keys to string values (the format allows nothing else).
using StMetadata = std::map<std::string, std::string>;

/// Writes `tensors` and `metadata` to `path` atomically: a temp file in the same directory,
/// fsync, rename over `path`, fsync of the directory. Throws lethe::Error (and leaves any
/// existing file at `path` untouched, with no temp file behind) on a duplicate name, a name
/// starting with "__", an unknown dtype, nbytes that disagree with shape and dtype, or an I/O
/// failure.
void write_safetensors(const std::string& path, const std::vector<StTensorView>& tensors,
                       const StMetadata& metadata);

/// A whole file in memory.
struct SafetensorsFile {
  StMetadata metadata;
  std::vector<StTensor> tensors;  ///< in the order their data appears in the file
  /// The tensor called `name`, or nullptr.
  const StTensor* find(const std::string& name) const;
};

/// Reads and fully validates `path`; throws lethe::Error with one sentence naming the file and
/// the defect (missing, truncated, bad header, bad offsets, unknown dtype, ...).
SafetensorsFile read_safetensors(const std::string& path);

/// Bytes per element of a safetensors dtype string ("F32" -> 4, "BOOL" -> 1); throws
/// lethe::Error listing the known dtypes for anything else.
size_t dtype_size(const std::string& dtype);

}  // namespace lethe::io
