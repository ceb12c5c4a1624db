// Helpers for the data/ tests: a self-deleting temporary folder and writers of small CIFAR
// binary files with known contents, so readers and loaders are tested without the real data.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace lethe::testing {

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("lethe-data-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Pixel byte k (0..3071) of test image `id`: a fixed function so readers can be checked.
inline uint8_t test_pixel(int64_t id, int64_t k) {
  return static_cast<uint8_t>((id * 131 + k * 7 + (k >> 10) * 29) & 255);
}

/// Writes `n` records of `header` label bytes + 3072 pixels; record r (image id first + r)
/// has header bytes header_fn(id) and pixels test_pixel(id, k).
inline void write_records(const std::string& path, int64_t n, int64_t first,
                          const std::function<std::vector<uint8_t>(int64_t)>& header_fn) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint8_t> rec;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t id = first + r;
    rec = header_fn(id);
    for (int64_t k = 0; k < 3072; ++k) rec.push_back(test_pixel(id, k));
    out.write(reinterpret_cast<const char*>(rec.data()), static_cast<std::streamsize>(rec.size()));
  }
}

/// CIFAR-10 records with label id % 10.
inline void write_cifar10(const std::string& path, int64_t n, int64_t first = 0) {
  write_records(path, n, first, [](int64_t id) {
    return std::vector<uint8_t>{static_cast<uint8_t>(id % 10)};
  });
}

/// CIFAR-100 records with coarse label id % 20 and fine label id % 100.
inline void write_cifar100(const std::string& path, int64_t n, int64_t first = 0) {
  write_records(path, n, first, [](int64_t id) {
    return std::vector<uint8_t>{static_cast<uint8_t>(id % 20), static_cast<uint8_t>(id % 100)};
  });
}

}  // namespace lethe::testing
