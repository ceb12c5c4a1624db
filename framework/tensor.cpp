// Tensor, Storage and Device: creation, views, host/device copies.
#include "framework/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "framework/autograd.h"
#include "framework/cuda_allocator.h"
#include "framework/host_allocator.h"

#ifdef LETHE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace lethe {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::U8: return "uint8";
  }
  return "?";
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

int cuda_device_count() {
#ifdef LETHE_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

void set_current_device(Device dev) {
  if (dev.is_cpu()) return;
#ifdef LETHE_WITH_CUDA
  CUDA_CHECK(cudaSetDevice(dev.index));
#else
  LETHE_CHECK(false, "this lethe was built without CUDA; cannot use ", dev.str());
#endif
}

void synchronize(Device dev) {
  if (dev.is_cpu()) return;
#ifdef LETHE_WITH_CUDA
  CUDA_CHECK(cudaSetDevice(dev.index));
  CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

// ---- Storage ------------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    // 64-byte alignment: whole AVX-512 vectors and cache lines for the CPU kernels.
    data_ = host_alloc(nbytes);
    return;
  }
  data_ = cuda_alloc(nbytes, device.index);  // cached: no cudaMalloc in a steady loop
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    host_free(data_, nbytes_);
    return;
  }
  cuda_free(data_, nbytes_, device_.index);
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#ifdef LETHE_WITH_CUDA
  const cudaMemcpyKind kind = dst_dev.is_cpu()   ? cudaMemcpyDeviceToHost
                              : src_dev.is_cpu() ? cudaMemcpyHostToDevice
                                                 : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
#else
  LETHE_CHECK(false, "this lethe was built without CUDA; cannot copy between ", src_dev.str(),
              " and ", dst_dev.str());
#endif
}

// ---- Tensor -------------------------------------------------------------------------------

namespace {
Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  for (int64_t d : shape) LETHE_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), dev);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(0.0);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  LETHE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
              values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  LETHE_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for ", str());
  return impl()->shape[static_cast<size_t>(d)];
}

bool Tensor::is_contiguous() const { return impl()->strides == contiguous_strides(shape()); }

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " on " + device().str();
}

void Tensor::check_dtype(DType want) const {
  LETHE_CHECK(dtype() == want, "tensor ", str(), " accessed as ", dtype_name(want));
}

template <typename T>
T* Tensor::data() {
  check_dtype(dtype_of<T>());
  return static_cast<T*>(impl()->storage->data()) + impl()->offset;
}
template <typename T>
const T* Tensor::data() const {
  check_dtype(dtype_of<T>());
  return static_cast<const T*>(impl()->storage->data()) + impl()->offset;
}
#define LETHE_DATA(T)                  \
  template T* Tensor::data<T>();       \
  template const T* Tensor::data<T>() const;
LETHE_DATA(float)
LETHE_DATA(double)
LETHE_DATA(int32_t)
LETHE_DATA(uint8_t)
#undef LETHE_DATA

void* Tensor::raw_data() {
  return static_cast<char*>(impl()->storage->data()) + impl()->offset * dtype_size(dtype());
}
const void* Tensor::raw_data() const {
  return static_cast<const char*>(impl()->storage->data()) + impl()->offset * dtype_size(dtype());
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  check_dtype(dtype_of<T>());
  LETHE_CHECK(is_contiguous(), "to_vector needs a contiguous tensor, got ", str());
  std::vector<T> out(static_cast<size_t>(numel()));
  copy_bytes(out.data(), Device::cpu(), raw_data(), device(), nbytes());
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

double Tensor::item() const {
  LETHE_CHECK(numel() == 1, "item() needs a one-element tensor, got ", str());
  switch (dtype()) {
    case DType::F32: return to_vector<float>()[0];
    case DType::F64: return to_vector<double>()[0];
    case DType::I32: return to_vector<int32_t>()[0];
    case DType::U8: return to_vector<uint8_t>()[0];
  }
  return 0;
}

Tensor Tensor::to(Device dev) const {
  LETHE_CHECK(is_contiguous(), "to(", dev.str(), ") needs a contiguous tensor, got ", str());
  Tensor out = empty(shape(), dtype(), dev);
  copy_bytes(out.raw_data(), dev, raw_data(), device(), nbytes());
  return out;
}

namespace {
template <typename From, typename To>
void convert(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<To>(s[i]);
}
template <typename From>
void convert_from(const void* src, void* dst, DType to, int64_t n) {
  switch (to) {
    case DType::F32: convert<From, float>(src, dst, n); break;
    case DType::F64: convert<From, double>(src, dst, n); break;
    case DType::I32: convert<From, int32_t>(src, dst, n); break;
    case DType::U8: convert<From, uint8_t>(src, dst, n); break;
  }
}
}  // namespace

Tensor Tensor::to(DType t) const {
  LETHE_CHECK(device().is_cpu(), "dtype conversion runs on the CPU; move ", str(),
              " to the CPU first");
  LETHE_CHECK(is_contiguous(), "to(", dtype_name(t), ") needs a contiguous tensor");
  Tensor out = empty(shape(), t);
  const int64_t n = numel();
  switch (dtype()) {
    case DType::F32: convert_from<float>(raw_data(), out.raw_data(), t, n); break;
    case DType::F64: convert_from<double>(raw_data(), out.raw_data(), t, n); break;
    case DType::I32: convert_from<int32_t>(raw_data(), out.raw_data(), t, n); break;
    case DType::U8: convert_from<uint8_t>(raw_data(), out.raw_data(), t, n); break;
  }
  return out;
}

Tensor Tensor::clone() const { return to(device()); }

void Tensor::copy_(const Tensor& src) {
  LETHE_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_: source ", src.str(),
              " does not match destination ", str());
  LETHE_CHECK(is_contiguous() && src.is_contiguous(), "copy_ needs contiguous tensors");
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
}

void Tensor::fill_(double value) {
  const int64_t n = numel();
  if (device().is_cuda()) {
#ifdef LETHE_WITH_CUDA
    if (value == 0.0 && is_contiguous()) {  // all-zero bytes in every dtype: no host copy
      CUDA_CHECK(cudaMemsetAsync(raw_data(), 0, nbytes()));
      return;
    }
#endif
    // No device kernels in this layer: fill on the host and copy once.
    Tensor host = full(shape(), value, dtype());
    copy_(host);
    return;
  }
  LETHE_CHECK(is_contiguous(), "fill_ needs a contiguous tensor");
  switch (dtype()) {
    case DType::F32: std::fill_n(data<float>(), n, static_cast<float>(value)); break;
    case DType::F64: std::fill_n(data<double>(), n, value); break;
    case DType::I32: std::fill_n(data<int32_t>(), n, static_cast<int32_t>(value)); break;
    case DType::U8: std::fill_n(data<uint8_t>(), n, static_cast<uint8_t>(value)); break;
  }
}

Tensor Tensor::view(const Shape& new_shape) const {
  LETHE_CHECK(is_contiguous(), "view needs a contiguous tensor, got ", str());
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LETHE_CHECK(infer < 0, "view: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    LETHE_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in ",
                shape_str(new_shape), " for ", str());
    s[static_cast<size_t>(infer)] = numel() / known;
  }
  LETHE_CHECK(shape_numel(s) == numel(), "view: shape ", shape_str(new_shape),
              " does not match ", numel(), " elements of ", str());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = s;
  impl->strides = contiguous_strides(s);
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::narrow(int64_t start, int64_t len) const {
  LETHE_CHECK(dim() >= 1 && is_contiguous(), "narrow needs a contiguous tensor, got ", str());
  LETHE_CHECK(start >= 0 && len >= 0 && start + len <= size(0), "narrow(", start, ", ", len,
              ") out of range for ", str());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = shape();
  impl->shape[0] = len;
  impl->strides = contiguous_strides(impl->shape);
  impl->offset = impl_->offset + start * impl_->strides[0];
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor& Tensor::set_requires_grad(bool on) {
  LETHE_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor");
  LETHE_CHECK(!on || dtype() == DType::F32 || dtype() == DType::F64,
              "only floating-point tensors can require gradients, got ", str());
  impl()->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl()->grad); }
void Tensor::set_grad(const Tensor& g) { impl()->grad = g.impl_ptr(); }
void Tensor::zero_grad() { impl()->grad.reset(); }

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->requires_grad = false;
  impl->grad.reset();
  impl->grad_fn.reset();
  return Tensor(std::move(impl));
}

void Tensor::backward(const Tensor& grad_output) const { autograd::backward(*this, grad_output); }

}  // namespace lethe
