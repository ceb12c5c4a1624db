#include "framework/settings.h"

#include <cstdlib>

#include "kernels/check.h"

namespace lethe {

namespace {
ExecutionSettings g_settings;
}

const ExecutionSettings& execution_settings() { return g_settings; }
void set_execution_settings(const ExecutionSettings& s) { g_settings = s; }

MathMode parse_math_mode(const std::string& s) {
  if (s == "fp32") return MathMode::FP32;
  if (s == "tf32") return MathMode::TF32;
  LETHE_CHECK(false, "math_mode '", s, "' is not one of: fp32, tf32");
}

ConvBackend parse_conv_backend(const std::string& s) {
  if (s == "lethe") return ConvBackend::Lethe;
  if (s == "cudnn") return ConvBackend::CuDNN;
  LETHE_CHECK(false, "conv_backend '", s, "' is not one of: lethe, cudnn");
}

SparseMode parse_sparse_mode(const std::string& s) {
  if (s == "auto") return SparseMode::Auto;
  if (s == "on") return SparseMode::On;
  if (s == "off") return SparseMode::Off;
  LETHE_CHECK(false, "sparse '", s, "' is not one of: auto, on, off");
}

std::string to_string(MathMode m) { return m == MathMode::FP32 ? "fp32" : "tf32"; }
std::string to_string(ConvBackend b) { return b == ConvBackend::Lethe ? "lethe" : "cudnn"; }
std::string to_string(SparseMode m) {
  return m == SparseMode::Auto ? "auto" : m == SparseMode::On ? "on" : "off";
}

}  // namespace lethe

#include "framework/dispatch.h"

namespace lethe::detail {

kernels::CudaExec cuda_exec() {
  kernels::CudaExec e;
  e.math = execution_settings().math == MathMode::TF32 ? kernels::CudaMath::TF32
                                                       : kernels::CudaMath::FP32;
  return e;
}

kernels::CudaExec conv_cuda_exec() {
  static const int version = [] {
    const char* v = std::getenv("LETHE_CUDA_CONV_VERSION");
    if (v == nullptr || *v == '\0') return 0;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    LETHE_CHECK(*end == '\0' && n >= 0 && n <= 99, "LETHE_CUDA_CONV_VERSION must be a kernel ",
                "version number (0 = default), got '", v, "'");
    return static_cast<int>(n);  // the kernels refuse versions they do not have
  }();
  kernels::CudaExec e = cuda_exec();
  e.version = version;
  return e;
}

}  // namespace lethe::detail
