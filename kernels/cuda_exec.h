// How a CUDA kernel entry point runs: its stream, which kernel version, which math mode.
//
// Every family header (gemm.h, conv2d.h, ...) declares its CUDA entry points next to the CPU
// ones, float32 only, taking device pointers and a trailing `const CudaExec&`. The
// declarations exist in every build; the definitions (kernels/cuda/*.cu) only where nvcc was
// found (LETHE_WITH_CUDA), and nothing above the op layer calls them otherwise.
// Stream is cudaStream_t spelled without the CUDA headers, so CPU-only code can include this.
#pragma once

#include <cstdint>

struct CUstream_st;

namespace lethe::kernels {

using Stream = CUstream_st*;  ///< = cudaStream_t; nullptr is the default stream

/// FP32: plain fp32 FMA only (never tensor cores). TF32: tensor-core versions may be used.
enum class CudaMath : uint8_t { FP32, TF32 };

struct CudaExec {
  Stream stream = nullptr;
  /// 0 picks the family's default for `math`; 1..N forces that version (tests, benchmarks).
  int version = 0;
  CudaMath math = CudaMath::FP32;
};

/// LETHE_CUDA_SYNC=1 in the environment: synchronise after every launch so that a fault is
/// blamed on the kernel that caused it (read once).
bool cuda_sync_mode();

}  // namespace lethe::kernels
