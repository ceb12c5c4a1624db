#pragma once
#include <string>
namespace lethe {
/// lethe's version string (from CMake's project version), written into checkpoint metadata.
std::string version();
/// True when this build has the CUDA backend compiled in (a GPU may still be absent).
bool built_with_cuda();
}  // namespace lethe
