// Atomic file replacement, the protocol every file lethe writes goes through (checkpoints,
// results JSON, logs): write a temp file in the same directory, fsync it, rename it over the
// target, fsync the directory. A crash or error at any point leaves the old file intact;
// a failed write removes its temp file ("<path>.tmp-<pid>-<n>").
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lethe {

/// Replaces `path` with the concatenation of `chunks` (pointer, size), atomically.
/// Throws lethe::Error naming the path and the failed step.
void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, size_t>>& chunks);

/// Convenience for text files.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace lethe
