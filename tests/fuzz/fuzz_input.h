// Shared by the fuzz targets: the readers under test take a path (they check the file's size
// and read it in chunks, and that is the code to exercise), so each input is first written to
// a per-process scratch file, in /dev/shm when it exists so no disk is touched.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace lethe::fuzz {

/// Writes `data` to this process's scratch file `name` and returns its path.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    const fs::path shm = "/dev/shm";
    const fs::path d = (fs::is_directory(shm) ? shm : fs::temp_directory_path()) /
                       ("lethe_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  const fs::path p = dir / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p.string();
}

}  // namespace lethe::fuzz
