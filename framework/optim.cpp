#include "framework/optim.h"

#include "framework/dispatch.h"

namespace lethe {

SGD::SGD(std::vector<Tensor> params, SgdOptions options)
    : params_(std::move(params)), options_(options) {
  LETHE_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0,
              "SGD: lr, momentum and weight decay must be >= 0");
  LETHE_CHECK(!options.nesterov || options.momentum > 0, "SGD: Nesterov needs momentum > 0");
  for (const Tensor& p : params_) {
    LETHE_CHECK(p.defined() && p.is_leaf() && p.requires_grad(),
                "SGD: every parameter must be a leaf that requires gradients");
    buffers_.push_back(options.momentum > 0 ? Tensor::zeros(p.shape(), p.dtype(), p.device())
                                            : Tensor());
  }
  masks_.resize(params_.size());
}

void SGD::set_mask(const Tensor& param, const Tensor& mask) {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].same(param)) continue;
    if (mask.defined())
      LETHE_CHECK(mask.dtype() == DType::U8 && mask.shape() == param.shape() &&
                      mask.device() == param.device(),
                  "SGD: mask ", mask.str(), " does not match parameter ", param.str());
    masks_[i] = mask;
    return;
  }
  LETHE_CHECK(false, "SGD: set_mask for a tensor that is not one of its parameters");
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor& buf = buffers_[i];
    const Tensor& mask = masks_[i];
    // A parameter moved after the optimizer was built would hand a kernel pointers of the
    // wrong device: refuse it here with a sentence instead of a fault later.
    LETHE_CHECK(g.device() == p.device() && (!buf.defined() || buf.device() == p.device()) &&
                    (!mask.defined() || mask.device() == p.device()),
                "SGD: parameter ", i, " is on ", p.device().str(),
                " but its gradient, momentum buffer or mask is not; build the optimizer after "
                "Module::to");
    detail::on_device("sgd", p.device(), [&] {
      detail::dispatch_float("sgd", p.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::sgd_update_cpu<T>(p.numel(), options_, p.data<T>(), g.data<T>(),
                                   buf.defined() ? buf.data<T>() : nullptr,
                                   mask.defined() ? mask.data<uint8_t>() : nullptr);
      });
    }, [&] {
      detail::check_cuda_float("sgd", p.dtype());
      kernels::sgd_update_cuda(p.numel(), options_, p.data<float>(), g.data<float>(),
                               buf.defined() ? buf.data<float>() : nullptr,
                               mask.defined() ? mask.data<uint8_t>() : nullptr,
                               detail::cuda_exec());
    });
  }
  ++steps_;
  for (auto& hook : hooks_) hook();
}

void SGD::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

}  // namespace lethe
