// batch_norm2d and pooling.
#include <cmath>

#include "framework/dispatch.h"
#include "framework/ops.h"
#include "kernels/batchnorm.h"
#include "kernels/pool.h"

namespace lethe::ops {

using detail::check_defined;
using detail::check_like;
using detail::check_shape;
using detail::dispatch_float;
using detail::on_device;

namespace {

struct BatchNormBackward : Node {
  kernels::BatchNormShape s;
  bool training = true;
  Tensor mean, invstd;  // [C]: batch statistics (training) or running ones (eval)
  const char* name() const override { return "batch_norm2d"; }
  // inputs = {x, gamma, beta}
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor &x = inputs[0], &gamma = inputs[1], &beta = inputs[2];
    // The kernel computes all three products in one pass over x and gy; keep only the
    // requested ones.
    Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor gg, gb;
    if (gamma.defined()) gg = Tensor::empty(gamma.shape(), x.dtype(), x.device());
    if (beta.defined()) gb = Tensor::empty(beta.shape(), x.dtype(), x.device());
    on_device("batch_norm2d backward", gy.device(), [&] {
      dispatch_float("batch_norm2d backward", gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::batchnorm_backward_cpu<T>(
            s, training, x.data<T>(), gy.data<T>(), gamma.defined() ? gamma.data<T>() : nullptr,
            mean.data<T>(), invstd.data<T>(), gx.data<T>(), gg.defined() ? gg.data<T>() : nullptr,
            gb.defined() ? gb.data<T>() : nullptr);
      });
    });
    return {x.requires_grad() ? gx : Tensor(), gg, gb};
  }
};

struct MaxPoolBackward : Node {
  kernels::PoolShape s;
  Tensor argmax;  // int32 [N,C,P,Q]
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty(inputs[0].shape(), gy.dtype(), gy.device());
    on_device(name(), gy.device(), [&] {
      dispatch_float(name(), gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::maxpool2d_backward_cpu<T>(s, gy.data<T>(), argmax.data<int32_t>(),
                                           gx.data<T>());
      });
    });
    return {gx};
  }
};

struct AvgPoolBackward : Node {
  kernels::PoolShape s;
  const char* name() const override { return "avg_pool2d"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor gx = Tensor::empty(inputs[0].shape(), gy.dtype(), gy.device());
    on_device(name(), gy.device(), [&] {
      dispatch_float(name(), gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::avgpool2d_backward_cpu<T>(s, gy.data<T>(), gx.data<T>());
      });
    });
    return {gx};
  }
};

struct GlobalAvgPoolBackward : Node {
  const char* name() const override { return "global_avg_pool"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor& x = inputs[0];
    Tensor gx = Tensor::empty(x.shape(), gy.dtype(), gy.device());
    on_device(name(), gy.device(), [&] {
      dispatch_float(name(), gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::global_avgpool_backward_cpu<T>(x.size(0) * x.size(1), x.size(2) * x.size(3),
                                                gy.data<T>(), gx.data<T>());
      });
    });
    return {gx};
  }
};

kernels::PoolShape pool_shape(const char* op, const Tensor& x, int64_t kernel, int64_t stride,
                              int64_t pad) {
  check_defined(op, x, "input");
  LETHE_CHECK(x.dim() == 4, op, ": expected input [N,C,H,W], got ", shape_str(x.shape()));
  LETHE_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= kernel, op, ": kernel ",
              kernel, ", stride ", stride, ", pad ", pad, " invalid (pad at most kernel/2)");
  kernels::PoolShape s{x.size(0), x.size(1), x.size(2), x.size(3), kernel, stride, pad};
  LETHE_CHECK(s.H + 2 * pad >= kernel && s.W + 2 * pad >= kernel, op, ": window ", kernel,
              " larger than input ", shape_str(x.shape()));
  return s;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                    Tensor& running_mean, Tensor& running_var, bool training, double momentum,
                    double eps) {
  const char* op = "batch_norm2d";
  check_defined(op, x, "input");
  LETHE_CHECK(x.dim() == 4, op, ": expected input [N,C,H,W], got ", shape_str(x.shape()));
  const int64_t C = x.size(1);
  for (auto [t, what] : {std::pair{&gamma, "weight"}, std::pair{&beta, "bias"}}) {
    if (!t->defined()) continue;
    check_like(op, x, *t, what);
    check_shape(op, *t, {C}, what);
  }
  check_like(op, x, running_mean, "running_mean");
  check_like(op, x, running_var, "running_var");
  check_shape(op, running_mean, {C}, "running_mean");
  check_shape(op, running_var, {C}, "running_var");
  const kernels::BatchNormShape s{x.size(0), C, x.size(2) * x.size(3)};
  LETHE_CHECK(!training || s.N * s.HW > 1, op, ": training mode needs more than one value ",
              "per channel, got input ", shape_str(x.shape()));

  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({C}, x.dtype(), x.device());
  Tensor invstd = Tensor::empty({C}, x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      const T* g = gamma.defined() ? gamma.data<T>() : nullptr;
      const T* b = beta.defined() ? beta.data<T>() : nullptr;
      if (training) {
        kernels::batchnorm_forward_train_cpu<T>(
            s, x.data<T>(), g, b, running_mean.data<T>(), running_var.data<T>(),
            static_cast<T>(momentum), static_cast<T>(eps), y.data<T>(), mean.data<T>(),
            invstd.data<T>());
      } else {
        kernels::batchnorm_forward_eval_cpu<T>(s, x.data<T>(), g, b, running_mean.data<T>(),
                                               running_var.data<T>(), static_cast<T>(eps),
                                               y.data<T>());
        // Backward in eval mode needs the statistics used here, as they were now.
        const T* rm = running_mean.data<T>();
        const T* rv = running_var.data<T>();
        T* m = mean.data<T>();
        T* is = invstd.data<T>();
        for (int64_t c = 0; c < C; ++c) {
          m[c] = rm[c];
          is[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(rv[c]) + eps));
        }
      }
    });
  });
  if (autograd::needs_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<BatchNormBackward>();
    node->s = s;
    node->training = training;
    node->mean = mean;
    node->invstd = invstd;
    node->inputs = {x, gamma, beta};
    autograd::record(y, node);
  }
  return y;
}

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  const char* op = "max_pool2d";
  const kernels::PoolShape s = pool_shape(op, x, kernel, stride, pad);
  Tensor y = Tensor::empty({s.N, s.C, s.P(), s.Q()}, x.dtype(), x.device());
  Tensor argmax = Tensor::empty(y.shape(), DType::I32, x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::maxpool2d_forward_cpu<T>(s, x.data<T>(), y.data<T>(), argmax.data<int32_t>());
    });
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<MaxPoolBackward>();
    node->s = s;
    node->argmax = argmax;
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  const char* op = "avg_pool2d";
  const kernels::PoolShape s = pool_shape(op, x, kernel, stride, pad);
  Tensor y = Tensor::empty({s.N, s.C, s.P(), s.Q()}, x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::avgpool2d_forward_cpu<T>(s, x.data<T>(), y.data<T>());
    });
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<AvgPoolBackward>();
    node->s = s;
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  const char* op = "global_avg_pool";
  check_defined(op, x, "input");
  LETHE_CHECK(x.dim() == 4, op, ": expected input [N,C,H,W], got ", shape_str(x.shape()));
  Tensor y = Tensor::empty({x.size(0), x.size(1)}, x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::global_avgpool_forward_cpu<T>(x.size(0) * x.size(1), x.size(2) * x.size(3),
                                             x.data<T>(), y.data<T>());
    });
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<GlobalAvgPoolBackward>();
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

}  // namespace lethe::ops
