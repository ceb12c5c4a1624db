// Process-wide switches of the CUDA kernels (kernels/cuda_exec.h).
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/common.cuh"

namespace lethe::kernels {

bool cuda_sync_mode() {
  static const bool on = [] {
    const char* v = std::getenv("LETHE_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
  }();
  return on;
}

}  // namespace lethe::kernels
