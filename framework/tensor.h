// Tensor: a typed, shaped view of reference-counted device storage, plus autograd state.
//
// Layout: row-major ("NCHW contiguous" for activations). Views made by view()/reshape() and
// narrow() share the Storage of the tensor they come from (RAII: the storage lives as long
// as any view of it). Every op requires contiguous inputs; narrow() on dimension 0 of a
// contiguous tensor stays contiguous, which is how a batch is sliced without a copy.
// Devices: CPU and CUDA (when built with it); data moves between them only through an
// explicit to(device).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/check.h"

namespace lethe {

enum class DType : uint8_t { F32, F64, I32, U8 };
/// Bytes per element.
size_t dtype_size(DType t);
/// "float32", "float64", "int32", "uint8".
const char* dtype_name(DType t);
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

enum class DeviceType : uint8_t { CPU, CUDA };
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  std::string str() const;  ///< "cpu" or "cuda:0"
};
/// Number of CUDA devices visible (0 in a CPU-only build or without a GPU).
int cuda_device_count();
/// Makes `dev` the current CUDA device of the calling thread: kernels launch there (a no-op
/// for the CPU). Commands call it once, after parsing --device.
void set_current_device(Device dev);
/// Waits until every kernel queued on `dev` has finished (a no-op for the CPU); timing and
/// host reads of device results start after this.
void synchronize(Device dev);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  ///< "[32, 3, 32, 32]"
int64_t shape_numel(const Shape& s);

/// Owns nbytes of memory on one device; freed when the last Tensor using it goes away.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

struct Node;
class Tensor;

/// What a Tensor handle points to. Autograd state lives here so that every handle to the
/// same tensor sees the same .grad and grad_fn.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  ///< in elements
  Shape shape, strides;
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  ///< accumulated gradient (leaves only)
  std::shared_ptr<Node> grad_fn;     ///< the op that produced it (non-leaves only)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device dev = Device::cpu());
  /// Copies host values into a new CPU tensor of shape `shape` (numel must match).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl()->shape; }
  int64_t dim() const { return static_cast<int64_t>(impl()->shape.size()); }
  int64_t size(int64_t d) const;  ///< negative d counts from the end
  int64_t numel() const { return shape_numel(impl()->shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  DType dtype() const { return impl()->dtype; }
  Device device() const { return impl()->storage->device(); }
  bool is_contiguous() const;
  std::string str() const;  ///< "float32[32, 10] on cpu"

  // ---- data access (host pointers only for CPU tensors) ----
  template <typename T> T* data();
  template <typename T> const T* data() const;
  void* raw_data();
  const void* raw_data() const;
  /// Copies a CPU or CUDA tensor's values to a host vector (dtype must match T).
  template <typename T> std::vector<T> to_vector() const;
  /// The single value of a one-element tensor, converted to double.
  double item() const;

  // ---- copies and views ----
  Tensor to(Device dev) const;       ///< a copy on `dev` (no autograd)
  Tensor to(DType dtype) const;      ///< a converted copy (CPU, no autograd)
  Tensor clone() const;              ///< a contiguous copy (no autograd)
  /// Overwrites this tensor's values with src's (same shape and dtype; any devices).
  void copy_(const Tensor& src);
  void fill_(double value);
  void zero_() { fill_(0.0); }
  /// A view sharing storage with a new shape (one dimension may be -1). No autograd; use
  /// ops::reshape inside a differentiable computation.
  Tensor view(const Shape& shape) const;
  /// Rows [start, start+len) of dimension 0, sharing storage.
  Tensor narrow(int64_t start, int64_t len) const;

  // ---- autograd ----
  bool requires_grad() const { return impl()->requires_grad; }
  /// Marks a leaf as needing gradients (parameters); returns *this.
  Tensor& set_requires_grad(bool on);
  /// The accumulated gradient of a leaf (undefined until a backward reaches it).
  Tensor grad() const;
  void set_grad(const Tensor& g);
  /// Drops the accumulated gradient (the next backward starts a fresh one).
  void zero_grad();
  const std::shared_ptr<Node>& grad_fn() const { return impl()->grad_fn; }
  bool is_leaf() const { return impl()->grad_fn == nullptr; }
  /// The same data with no autograd history.
  Tensor detach() const;
  /// Back-propagates from this scalar (or with an explicit upstream gradient).
  void backward(const Tensor& grad_output = Tensor()) const;

  TensorImpl* impl() const {
    LETHE_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return impl_.get();
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  void check_dtype(DType want) const;
  std::shared_ptr<TensorImpl> impl_;
};

/// Copies nbytes between any two devices (host<->device through the CUDA runtime).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace lethe
