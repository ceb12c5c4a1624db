#include "framework/version.h"
namespace lethe {
std::string version() { return LETHE_VERSION; }
bool built_with_cuda() {
#ifdef LETHE_WITH_CUDA
  return true;
#else
  return false;
#endif
}
}  // namespace lethe
