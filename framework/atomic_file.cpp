#include "framework/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "kernels/check.h"

namespace lethe {

namespace {

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Unique per process and call, in path's directory so the rename never crosses a file system.
std::string temp_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Writes all of [data, data+n) or returns false with errno set; retries short writes.
bool write_all(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, size_t>>& chunks) {
  const std::string tmp = temp_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  LETHE_CHECK(fd >= 0, "cannot write '", path, "': creating the temp file '", tmp, "' failed (",
              std::strerror(errno), "); check that the directory exists and is writable.");
  // From here on any failure removes the temp file, so the old file stays as it was.
  auto fail = [&](const char* step, bool close_fd) {
    const int err = errno;
    if (close_fd) ::close(fd);
    ::unlink(tmp.c_str());
    LETHE_CHECK(false, "cannot write '", path, "': ", step, " failed (", std::strerror(err),
                "); the existing file, if any, is unchanged.");
  };
  for (const auto& [data, n] : chunks)
    if (!write_all(fd, data, n)) fail("writing", true);
  if (::fsync(fd) != 0) fail("fsync of the temp file", true);
  if (::close(fd) != 0) fail("closing the temp file", false);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("renaming the temp file over it", false);
  // Persist the rename itself. Best effort: the new file is already complete and in place,
  // and some file systems refuse fsync on directories.
  const int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, {{text.data(), text.size()}});
}

}  // namespace lethe
