#include "framework/nn.h"

#include <cmath>

#include "framework/autograd.h"
#include "framework/dispatch.h"
#include "framework/init.h"
#include "framework/ops.h"
#include "framework/settings.h"
#include "kernels/sparse/conv2d_sparse.h"
#ifdef LETHE_WITH_CUDA
#include "kernels/conv2d.h"
#include "kernels/sparse/conv2d_sparse_cuda.h"
#endif

namespace lethe::nn {

// ---- Module -------------------------------------------------------------------------------

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  for (auto& nt : named_buffers()) out.push_back(nt);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

namespace {
/// Replaces t's storage by a copy on dev, keeping the TensorImpl (and so every handle).
void move_in_place(Tensor& t, Device dev) {
  if (!t.defined() || t.device() == dev) return;
  LETHE_CHECK(t.is_contiguous(), "Module::to: ", t.str(), " is not contiguous");
  const Tensor moved = t.to(dev);
  t.impl()->storage = moved.impl()->storage;
  t.impl()->offset = 0;
  t.impl()->grad.reset();
}
}  // namespace

void Module::to(Device dev) {
  for (auto& [name, t] : params_) move_in_place(t, dev);
  for (auto& [name, t] : buffers_)
    if (t.dtype() == DType::F32 || t.dtype() == DType::F64) move_in_place(t, dev);
  move_own_tensors(dev);
  for (auto& [name, child] : children_) child->to(dev);
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, t);
  return t;
}

// ---- layers -------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t pad_, bool b)
    : stride(stride_), pad(pad_) {
  LETHE_CHECK(in > 0 && out > 0 && kernel > 0, "Conv2d(", in, ", ", out, ", ", kernel,
              "): sizes must be positive");
  weight = register_parameter("weight", Tensor::zeros({out, in, kernel, kernel}));
  if (b) bias = register_parameter("bias", Tensor::zeros({out}));
}

void Conv2d::reset_parameters(Generator& gen) {
  init::layer_default_(weight, bias, gen);
}

void Conv2d::set_mask(const Tensor& mask) {
  if (mask.defined()) {
    LETHE_CHECK(mask.dtype() == DType::U8 && mask.shape() == weight.shape(),
                "Conv2d mask must be uint8 ", shape_str(weight.shape()), ", got ", mask.str());
    LETHE_CHECK(mask.device() == weight.device(), "Conv2d mask on ", mask.device().str(),
                " but weight on ", weight.device().str());
  }
  mask_ = mask;
  pattern_.reset();
  cuda_pattern_.reset();
}

void Conv2d::move_own_tensors(Device dev) {
  move_in_place(mask_, dev);  // the pattern (host CSR) depends on the values only: kept
  cuda_pattern_.reset();      // its device copy is re-uploaded where it is needed next
}

std::shared_ptr<const kernels::SparsePattern> Conv2d::sparse_pattern() {
  if (!mask_.defined()) return nullptr;
  if (!pattern_) {
    const Tensor m = mask_.device().is_cpu() ? mask_ : mask_.to(Device::cpu());
    pattern_ = std::make_shared<const kernels::SparsePattern>(kernels::make_sparse_pattern(
        weight.size(0), weight.numel() / weight.size(0), m.data<uint8_t>()));
  }
  return pattern_;
}

Tensor Conv2d::forward(const Tensor& x) {
  const SparseMode mode = execution_settings().sparse;
  if (mask_.defined() && x.device().is_cpu() && mode != SparseMode::Off) {
    auto pat = sparse_pattern();
    const kernels::Conv2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0),
                                 weight.size(2), weight.size(3), stride, pad};
    if (mode == SparseMode::On || kernels::sparse_conv2d_pays_off(s, pat->density())) {
      last_path_ = "sparse";
      return ops::conv2d_sparse(x, weight, bias, stride, pad, std::move(pat));
    }
  }
#ifdef LETHE_WITH_CUDA
  // On the GPU only `sparse = on` takes the sparse kernels: `auto` keeps the dense ones until
  // the three sparse products are measured against them end to end (docs/sparse.md).
  if (mask_.defined() && x.device().is_cuda() && mode == SparseMode::On) {
    auto pat = sparse_pattern();
    if (!cuda_pattern_ || cuda_pattern_->device != x.device().index)
      cuda_pattern_ = kernels::SparsePatternCuda::upload(*pat, x.device().index);
    last_path_ = std::string("cuda sparse ") +
                 kernels::sparse_conv2d_cuda_version_name(
                     kernels::sparse_conv2d_cuda_resolved_version(detail::cuda_exec()));
    return ops::conv2d_sparse(x, weight, bias, stride, pad, std::move(pat), cuda_pattern_);
  }
#endif
  last_path_ = "dense";
#ifdef LETHE_WITH_CUDA
  if (x.device().is_cuda()) {  // which GPU kernels: the run log names them per layer
    last_path_ = execution_settings().conv == ConvBackend::CuDNN
                     ? "cuda cudnn"
                     : std::string("cuda ") + kernels::conv2d_cuda_version_name(
                                                  kernels::conv2d_cuda_resolved_version(
                                                      detail::conv_cuda_exec()));
  }
#endif
  const Tensor w = mask_.defined() ? ops::mul(weight, mask_) : weight;
  return ops::conv2d(x, w, bias, stride, pad);
}

BatchNorm2d::BatchNorm2d(int64_t channels, double eps_, double momentum_)
    : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", Tensor::full({channels}, 1.0));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::full({channels}, 1.0));
  // PyTorch stores a 0-d int64; lethe keeps int32 in memory and widens it in checkpoints.
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I32));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  const bool training = is_training();
  if (training) {
    // Counted on the host: it is a CPU-side scalar that no kernel reads.
    if (num_batches_tracked.device().is_cpu()) num_batches_tracked.data<int32_t>()[0] += 1;
  }
  return ops::batch_norm2d(x, weight, bias, running_mean, running_var, training, momentum, eps);
}

Linear::Linear(int64_t in, int64_t out, bool b) {
  LETHE_CHECK(in > 0 && out > 0, "Linear(", in, ", ", out, "): sizes must be positive");
  weight = register_parameter("weight", Tensor::zeros({out, in}));
  if (b) bias = register_parameter("bias", Tensor::zeros({out}));
}

void Linear::reset_parameters(Generator& gen) {
  init::layer_default_(weight, bias, gen);
}

Tensor Linear::forward(const Tensor& x) { return ops::linear(x, weight, bias); }

Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p) : kernel(k), stride(s < 0 ? k : s), pad(p) {}
Tensor MaxPool2d::forward(const Tensor& x) { return ops::max_pool2d(x, kernel, stride, pad); }

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p) : kernel(k), stride(s < 0 ? k : s), pad(p) {}
Tensor AvgPool2d::forward(const Tensor& x) { return ops::avg_pool2d(x, kernel, stride, pad); }

Tensor GlobalAvgPool::forward(const Tensor& x) { return ops::global_avg_pool(x); }

Tensor Flatten::forward(const Tensor& x) { return ops::flatten(x); }

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : layers_) h = m->forward(h);
  return h;
}

}  // namespace lethe::nn
