// Execution settings shared by every layer above the kernels (SPEC section 10): which math
// mode, conv backend and sparse path the ops use. One process-wide value, set once by the
// command line (flags / config keys `math_mode`, `conv_backend`, `sparse`) before any work,
// and written into every results JSON and run log.
#pragma once

#include <string>

namespace lethe {

enum class MathMode { FP32, TF32 };          ///< fp32 never uses tensor cores
enum class ConvBackend { Lethe, CuDNN };     ///< cuDNN only when asked; never a silent fallback
enum class SparseMode { Auto, On, Off };     ///< sparse execution of pruned layers

struct ExecutionSettings {
  MathMode math = MathMode::FP32;
  ConvBackend conv = ConvBackend::Lethe;
  SparseMode sparse = SparseMode::Auto;
};

/// The process-wide settings (defaults: fp32, lethe, auto).
const ExecutionSettings& execution_settings();
void set_execution_settings(const ExecutionSettings& s);

/// Parse the config/flag spellings ("fp32" | "tf32", "lethe" | "cudnn", "auto" | "on" | "off");
/// anything else throws lethe::Error naming the key and the valid values.
MathMode parse_math_mode(const std::string& s);
ConvBackend parse_conv_backend(const std::string& s);
SparseMode parse_sparse_mode(const std::string& s);
std::string to_string(MathMode m);
std::string to_string(ConvBackend b);
std::string to_string(SparseMode m);

}  // namespace lethe
