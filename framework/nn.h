// nn modules: a Module tree with stable dotted names, and the layers ResNet-18 / VGG-16 use.
//
// named_parameters() / named_buffers() walk the tree in registration order and name each
// tensor by its path ("layer2.0.conv1.weight"). Those names are the contract that pruning
// masks, checkpoints and unlearning share, so they follow PyTorch's exactly.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/rng.h"
#include "framework/tensor.h"

namespace lethe::kernels {
struct SparsePattern;
struct SparsePatternCuda;
}

namespace lethe::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  /// Parameters then buffers: what a checkpoint stores (PyTorch's state_dict names).
  NamedTensors state_dict() const;

  /// Train mode: BN uses batch statistics and updates its running ones. Recursive.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Drops every parameter's accumulated gradient.
  void zero_grad();
  /// Moves every parameter, floating-point buffer and layer-owned tensor (a Conv2d mask) to
  /// `dev` in place: every other handle to those tensors (a MaskSet, an optimizer's parameter
  /// list) sees the moved data. Gradients are dropped. An optimizer's own state (momentum) does
  /// not move: build the optimizer after to() (SGD::step refuses mixed devices). Integer buffers (num_batches_tracked) stay on the host:
  /// they are counters that no kernel reads. Recursive.
  void to(Device dev);
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 protected:
  /// Registers a parameter (it then requires gradients) and returns the same handle.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  /// Layers holding tensors outside params/buffers move them here (called by to()).
  virtual void move_own_tensors(Device) {}
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

/// 2-D convolution, square kernel. An optional uint8 mask (same shape as the weight)
/// multiplies the weight in every forward, so pruned weights contribute nothing and get
/// zero gradient. A masked layer on the CPU may instead run the sparse kernels
/// (ops::conv2d_sparse: same result, only the kept weights touched), chosen per forward by the
/// `sparse` execution setting: off (never), on (always), auto (when
/// kernels::sparse_conv2d_pays_off says so for the shape and the mask's density).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t pad = 0,
         bool bias = false);
  Tensor forward(const Tensor& x) override;
  /// PyTorch's default init: kaiming_uniform(a=sqrt(5)); bias U(+-1/sqrt(fan_in)).
  void reset_parameters(Generator& gen);
  void set_mask(const Tensor& mask);  ///< uint8, weight's shape; undefined clears it
  const Tensor& mask() const { return mask_; }
  /// The mask's nonzero structure, built on first use and dropped by set_mask; null when
  /// there is no mask.
  std::shared_ptr<const kernels::SparsePattern> sparse_pattern();
  /// The path the last forward took ("" before the first): "dense" or "sparse" on the CPU;
  /// "cuda <kernel>", "cuda cudnn" or "cuda sparse <kernel>" on the GPU.
  const std::string& last_path() const { return last_path_; }
  Tensor weight, bias;
  const int64_t stride, pad;

 private:
  Tensor mask_;
  std::shared_ptr<const kernels::SparsePattern> pattern_;
  // sparse_pattern() uploaded to the GPU the weight lives on; dropped by set_mask and moves.
  std::shared_ptr<kernels::SparsePatternCuda> cuda_pattern_;
  std::string last_path_;
  void move_own_tensors(Device dev) override;
};

/// Batch norm over channels, affine, eps 1e-5, momentum 0.1, PyTorch's buffers
/// (running_mean, running_var, num_batches_tracked).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;  ///< last: int32 [1]
  const double eps, momentum;
};

/// y = x w^T + b, w: [out, in].
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator& gen);  ///< PyTorch's default init
  Tensor weight, bias;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t pad = 0);
  Tensor forward(const Tensor& x) override;
  const int64_t kernel, stride, pad;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t pad = 0);
  Tensor forward(const Tensor& x) override;
  const int64_t kernel, stride, pad;
};

/// [N,C,H,W] -> [N,C]
class GlobalAvgPool : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// [N, ...] -> [N, rest]
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

/// Runs its children in order; they are named "0", "1", ... as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  Module& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace lethe::nn
