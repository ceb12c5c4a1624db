// SGD with momentum, optional Nesterov and weight decay, in PyTorch's order
// (kernels/optim.h has the formula), with pruning masks re-applied inside the same update:
// after every step a masked weight is exactly 0 again, so neither momentum nor weight decay
// can revive it. The learning rate is set from an LrSchedule by the training loop.
#pragma once

#include <functional>
#include <vector>

#include "framework/tensor.h"
#include "kernels/optim.h"

namespace lethe {

using SgdOptions = kernels::SgdParams;

class SGD {
 public:
  SGD(std::vector<Tensor> params, SgdOptions options);

  /// Updates every parameter that has a gradient (others are skipped, as PyTorch does),
  /// re-applies its mask, then runs the post-step hooks.
  void step();
  /// Drops the gradients of all parameters.
  void zero_grad();

  double lr() const { return options_.lr; }
  void set_lr(double lr) { options_.lr = lr; }
  const SgdOptions& options() const { return options_; }

  /// After every step, param *= mask (uint8 0/1 of the param's shape; undefined removes it).
  void set_mask(const Tensor& param, const Tensor& mask);
  /// Called after every step (e.g. to refresh a compressed sparse copy of the weights).
  void add_post_step_hook(std::function<void()> hook) { hooks_.push_back(std::move(hook)); }

  const std::vector<Tensor>& params() const { return params_; }
  /// Momentum buffers, one per parameter, zero until its first step; saved in checkpoints.
  std::vector<Tensor>& momentum_buffers() { return buffers_; }
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t n) { steps_ = n; }

 private:
  std::vector<Tensor> params_, buffers_, masks_;
  SgdOptions options_;
  std::vector<std::function<void()>> hooks_;
  int64_t steps_ = 0;
};

}  // namespace lethe
