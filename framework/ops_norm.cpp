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
using detail::check_cuda_float;
using detail::cuda_exec;
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
    }, [&] {
      check_cuda_float("batch_norm2d backward", gy.dtype());
      kernels::batchnorm_backward_cuda(
          s, training, x.data<float>(), gy.data<float>(),
          gamma.defined() ? gamma.data<float>() : nullptr, mean.data<float>(),
          invstd.data<float>(), gx.data<float>(), gg.defined() ? gg.data<float>() : nullptr,
          gb.defined() ? gb.data<float>() : nullptr, cuda_exec());
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
    }, [&] {
      check_cuda_float(name(), gy.dtype());
      kernels::maxpool2d_backward_cuda(s, gy.data<float>(), argmax.data<int32_t>(),
                                       gx.data<float>(), cuda_exec());
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
    }, [&] {
      check_cuda_float(name(), gy.dtype());
      kernels::avgpool2d_backward_cuda(s, gy.data<float>(), gx.data<float>(), cuda_exec());
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
    }, [&] {
      check_cuda_float(name(), gy.dtype());
      kernels::global_avgpool_backward_cuda(x.size(0) * x.size(1), x.size(2) * x.size(3),
                                            gy.data<float>(), gx.data<float>(), cuda_exec());
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
  }, [&] {
    check_cuda_float(op, x.dtype());
    const float* g = gamma.defined() ? gamma.data<float>() : nullptr;
    const float* b = beta.defined() ? beta.data<float>() : nullptr;
    const kernels::CudaExec e = cuda_exec();
    if (training) {
      kernels::batchnorm_forward_train_cuda(s, x.data<float>(), g, b, running_mean.data<float>(),
                                            running_var.data<float>(),
                                            static_cast<float>(momentum),
                                            static_cast<float>(eps), y.data<float>(),
                                            mean.data<float>(), invstd.data<float>(), e);
    } else {
      kernels::batchnorm_forward_eval_cuda(s, x.data<float>(), g, b, running_mean.data<float>(),
                                           running_var.data<float>(), static_cast<float>(eps),
                                           y.data<float>(), e);
      // The eval statistics for a backward, computed on the host as on the CPU path (C values,
      // a synchronising copy): only when a backward will need them, so inference and the
      // model's input normalisation never wait for the GPU here.
      if (autograd::needs_grad({&x, &gamma, &beta})) {
        std::vector<float> is = running_var.to_vector<float>();
        for (float& v : is) v = static_cast<float>(1.0 / std::sqrt(static_cast<double>(v) + eps));
        mean.copy_(running_mean);
        invstd.copy_(Tensor::from_vector(is, {C}));
      }
    }
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
  }, [&] {
    check_cuda_float(op, x.dtype());
    kernels::maxpool2d_forward_cuda(s, x.data<float>(), y.data<float>(), argmax.data<int32_t>(),
                                    cuda_exec());
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
  }, [&] {
    check_cuda_float(op, x.dtype());
    kernels::avgpool2d_forward_cuda(s, x.data<float>(), y.data<float>(), cuda_exec());
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
  }, [&] {
    check_cuda_float(op, x.dtype());
    kernels::global_avgpool_forward_cuda(x.size(0) * x.size(1), x.size(2) * x.size(3),
                                         x.data<float>(), y.data<float>(), cuda_exec());
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<GlobalAvgPoolBackward>();
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

}  // namespace lethe::ops
