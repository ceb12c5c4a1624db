// Internal helpers shared by the ops_*.cpp files: validation messages that name the op,
// and the dtype/device switch that picks a kernel.
#pragma once

#include "framework/autograd.h"
#include "framework/tensor.h"

namespace lethe::detail {

/// Calls f(T{}) with T = float or double for the tensor's dtype.
template <typename F>
void dispatch_float(const char* op, DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    default: LETHE_CHECK(false, op, ": needs float32 or float64 input, got ", dtype_name(t));
  }
}

/// The device switch of every op: CPU runs `cpu`; CUDA ops come with the CUDA backend.
template <typename F>
void on_device(const char* op, Device dev, F&& cpu) {
  switch (dev.type) {
    case DeviceType::CPU: cpu(); return;
    case DeviceType::CUDA:
      LETHE_CHECK(false, op, ": no CUDA kernel in this build yet; move the tensors to the CPU");
  }
}

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
