// Internal helpers shared by the ops_*.cpp files: validation messages that name the op,
// and the dtype/device switch that picks a kernel.
#pragma once

#include "framework/autograd.h"
#include "framework/tensor.h"
#include "kernels/cuda_exec.h"

#ifdef LETHE_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace lethe::detail {

#ifdef LETHE_WITH_CUDA
/// An NVTX range named after the op around its CUDA launches, so Nsight Systems shows which
/// op issued which kernels (`nsys profile lethe bench --device cuda`). Free without a
/// profiler: NVTX v3 calls do nothing until a tool attaches.
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};
#endif

/// Calls f(T{}) with T = float or double for the tensor's dtype.
template <typename F>
void dispatch_float(const char* op, DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    default: LETHE_CHECK(false, op, ": needs float32 or float64 input, got ", dtype_name(t));
  }
}

/// The device switch of an op that has only a CPU kernel so far.
template <typename F>
void on_device(const char* op, Device dev, F&& cpu) {
  switch (dev.type) {
    case DeviceType::CPU: cpu(); return;
    case DeviceType::CUDA:
      LETHE_CHECK(false, op, ": no CUDA kernel for this op yet; move the tensors to the CPU");
  }
}

/// The device switch of every op: CPU runs `cpu`, CUDA runs `cuda`. In a CPU-only build the
/// `cuda` lambda is never called, so its body (which names kernels/cuda symbols that such a
/// build does not define) is never emitted.
template <typename F, typename G>
void on_device(const char* op, Device dev, F&& cpu, [[maybe_unused]] G&& cuda) {
  switch (dev.type) {
    case DeviceType::CPU: cpu(); return;
    case DeviceType::CUDA:
#ifdef LETHE_WITH_CUDA
    {
      const NvtxRange range(op);
      cuda();
      return;
    }
#else
      LETHE_CHECK(false, op, ": this lethe was built without CUDA");
#endif
  }
}

/// The CUDA kernels are float32 only (fp64 is for the CPU oracles and gradient checks).
inline void check_cuda_float(const char* op, DType t) {
  LETHE_CHECK(t == DType::F32, op, ": the CUDA kernels take float32, got ", dtype_name(t),
              "; convert on the CPU first");
}

/// How the CUDA kernels of an op run: the default stream, the default version, the math mode
/// of the process-wide execution settings (fp32 unless `math_mode = tf32`).
kernels::CudaExec cuda_exec();

/// cuda_exec() for the dense conv2d kernels, with the version of LETHE_CUDA_CONV_VERSION when
/// set (1..kernels::conv2d_cuda_versions(); 0 = the math mode's default): a benchmarking knob
/// that runs every GPU conv on one kernel version end to end.
kernels::CudaExec conv_cuda_exec();

inline void check_defined(const char* op, const Tensor& t, const char* what) {
  LETHE_CHECK(t.defined(), op, ": ", what, " is undefined");
  LETHE_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous, got ", t.str());
}

/// Same device and dtype as the reference tensor (the op's first input).
inline void check_like(const char* op, const Tensor& ref, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  LETHE_CHECK(t.device() == ref.device(), op, ": ", what, " is on ", t.device().str(),
              " but the input is on ", ref.device().str());
  LETHE_CHECK(t.dtype() == ref.dtype(), op, ": ", what, " is ", dtype_name(t.dtype()),
              " but the input is ", dtype_name(ref.dtype()));
}

inline void check_shape(const char* op, const Tensor& t, const Shape& want, const char* what) {
  LETHE_CHECK(t.shape() == want, op, ": ", what, " has shape ", shape_str(t.shape()),
              ", expected ", shape_str(want));
}

}  // namespace lethe::detail
