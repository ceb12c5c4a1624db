// Elementwise ops, shape ops and reductions.
#include "framework/dispatch.h"
#include "framework/ops.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace lethe::ops {

using detail::check_defined;
using detail::check_cuda_float;
using detail::check_like;
using detail::cuda_exec;
using detail::dispatch_float;
using detail::on_device;

namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  LETHE_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ",
              shape_str(b.shape()), " differ (lethe does not broadcast)");
}

Tensor like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

/// gx = gy * (y > 0): relu and add_relu share it (y is the op's output).
Tensor relu_grad(const char* op, const Tensor& y, const Tensor& gy) {
  Tensor gx = like(gy);
  on_device(op, gy.device(), [&] {
    dispatch_float(op, gy.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::relu_backward_cpu<T>(gy.numel(), y.data<T>(), gy.data<T>(), gx.data<T>());
    });
  }, [&] {
    check_cuda_float(op, gy.dtype());
    kernels::relu_backward_cuda(gy.numel(), y.data<float>(), gy.data<float>(), gx.data<float>(),
                                cuda_exec());
  });
  return gx;
}

struct ReluBackward : Node {
  Tensor y;  // the output: y > 0 exactly where x > 0
  const char* name() const override { return "relu"; }
  std::vector<Tensor> backward(const Tensor& gy) override { return {relu_grad(name(), y, gy)}; }
};

struct AddReluBackward : Node {
  Tensor y;
  const char* name() const override { return "add_relu"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    Tensor g = relu_grad(name(), y, gy);
    return {g, g};
  }
};

struct AddBackward : Node {
  const char* name() const override { return "add"; }
  std::vector<Tensor> backward(const Tensor& gy) override { return {gy, gy}; }
};

Tensor mul_nograd(const Tensor& a, const Tensor& b) {
  Tensor y = like(a);
  on_device("mul", a.device(), [&] {
    dispatch_float("mul", a.dtype(), [&](auto t) {
      using T = decltype(t);
      if (b.dtype() == DType::U8)
        kernels::mask_mul_cpu<T>(a.numel(), a.data<T>(), b.data<uint8_t>(), y.data<T>());
      else
        kernels::mul_cpu<T>(a.numel(), a.data<T>(), b.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float("mul", a.dtype());
    if (b.dtype() == DType::U8)
      kernels::mask_mul_cuda(a.numel(), a.data<float>(), b.data<uint8_t>(), y.data<float>(),
                             cuda_exec());
    else
      kernels::mul_cuda(a.numel(), a.data<float>(), b.data<float>(), y.data<float>(), cuda_exec());
  });
  return y;
}

struct MulBackward : Node {
  const char* name() const override { return "mul"; }
  // inputs = {a, b}; with a uint8 mask b, only a gets a gradient (gy * mask).
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor &a = inputs[0], &b = inputs[1];
    Tensor ga = a.requires_grad() ? mul_nograd(gy, b) : Tensor();
    Tensor gb = b.requires_grad() ? mul_nograd(gy, a) : Tensor();
    return {ga, gb};
  }
};

Tensor scale_nograd(const Tensor& x, double alpha) {
  Tensor y = like(x);
  on_device("scale", x.device(), [&] {
    dispatch_float("scale", x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::scale_cpu<T>(x.numel(), static_cast<T>(alpha), x.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float("scale", x.dtype());
    kernels::scale_cuda(x.numel(), static_cast<float>(alpha), x.data<float>(), y.data<float>(),
                        cuda_exec());
  });
  return y;
}

struct ScaleBackward : Node {
  double alpha = 1;
  const char* name() const override { return "scale"; }
  std::vector<Tensor> backward(const Tensor& gy) override { return {scale_nograd(gy, alpha)}; }
};

struct ReshapeBackward : Node {
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    return {gy.view(inputs[0].shape())};
  }
};

/// A scalar's gradient broadcast to every element of x, times `factor` (sum: 1, mean: 1/n).
struct FillBackward : Node {
  double factor = 1;
  const char* name_ = "sum";
  const char* name() const override { return name_; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    return {Tensor::full(inputs[0].shape(), gy.item() * factor, gy.dtype(), gy.device())};
  }
};

Tensor reduce_all(const char* op, const Tensor& x, double factor) {
  check_defined(op, x, "input");
  double total = 0;
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      total = kernels::sum_cpu<T>(x.numel(), x.data<T>());
    });
  }, [&] {
    check_cuda_float(op, x.dtype());
    total = kernels::sum_cuda(x.numel(), x.data<float>(), cuda_exec());
  });
  Tensor y = Tensor::full({}, total * factor, x.dtype(), x.device());
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<FillBackward>();
    node->factor = factor;
    node->name_ = op;
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

}  // namespace

Tensor relu(const Tensor& x) {
  const char* op = "relu";
  check_defined(op, x, "input");
  Tensor y = like(x);
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::relu_forward_cpu<T>(x.numel(), x.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float(op, x.dtype());
    kernels::relu_forward_cuda(x.numel(), x.data<float>(), y.data<float>(), cuda_exec());
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<ReluBackward>();
    node->y = y.detach();  // a detached handle: no reference cycle through y's grad_fn
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  const char* op = "add";
  check_defined(op, a, "a");
  check_like(op, a, b, "b");
  check_same_shape(op, a, b);
  Tensor y = add_nograd(a, b);
  if (autograd::needs_grad({&a, &b})) {
    auto node = std::make_shared<AddBackward>();
    node->inputs = {a, b};
    autograd::record(y, node);
  }
  return y;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  const char* op = "add_relu";
  check_defined(op, a, "a");
  check_like(op, a, b, "b");
  check_same_shape(op, a, b);
  Tensor y = like(a);
  on_device(op, a.device(), [&] {
    dispatch_float(op, a.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::add_relu_cpu<T>(a.numel(), a.data<T>(), b.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float(op, a.dtype());
    kernels::add_relu_cuda(a.numel(), a.data<float>(), b.data<float>(), y.data<float>(),
                           cuda_exec());
  });
  if (autograd::needs_grad({&a, &b})) {
    auto node = std::make_shared<AddReluBackward>();
    node->y = y.detach();
    node->inputs = {a, b};
    autograd::record(y, node);
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  const char* op = "mul";
  check_defined(op, a, "a");
  check_defined(op, b, "b");
  check_same_shape(op, a, b);
  LETHE_CHECK(b.device() == a.device(), op, ": operands on ", a.device().str(), " and ",
              b.device().str());
  LETHE_CHECK(b.dtype() == a.dtype() || b.dtype() == DType::U8, op, ": b must be ",
              dtype_name(a.dtype()), " or a uint8 mask, got ", dtype_name(b.dtype()));
  Tensor y = mul_nograd(a, b);
  if (autograd::needs_grad({&a, &b})) {
    auto node = std::make_shared<MulBackward>();
    node->inputs = {a, b};
    autograd::record(y, node);
  }
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  check_defined("scale", x, "input");
  Tensor y = scale_nograd(x, alpha);
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<ScaleBackward>();
    node->alpha = alpha;
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

Tensor neg(const Tensor& x) { return scale(x, -1.0); }

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x, "input");
  Tensor y = x.view(shape);
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<ReshapeBackward>();
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  LETHE_CHECK(x.defined() && x.dim() >= 1, "flatten: needs a tensor with a batch dimension");
  return reshape(x, {x.size(0), -1});
}

Tensor sum(const Tensor& x) { return reduce_all("sum", x, 1.0); }

Tensor mean(const Tensor& x) {
  LETHE_CHECK(x.defined() && x.numel() > 0, "mean: empty input");
  return reduce_all("mean", x, 1.0 / static_cast<double>(x.numel()));
}

void add_inplace(Tensor& a, const Tensor& b) {
  check_like("add_inplace", a, b, "b");
  check_same_shape("add_inplace", a, b);
  on_device("add_inplace", a.device(), [&] {
    dispatch_float("add_inplace", a.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::axpy_cpu<T>(a.numel(), T(1), b.data<T>(), a.data<T>());
    });
  }, [&] {
    check_cuda_float("add_inplace", a.dtype());
    kernels::axpy_cuda(a.numel(), 1.0f, b.data<float>(), a.data<float>(), cuda_exec());
  });
}

Tensor add_nograd(const Tensor& a, const Tensor& b) {
  check_like("add", a, b, "b");
  check_same_shape("add", a, b);
  Tensor y = like(a);
  on_device("add", a.device(), [&] {
    dispatch_float("add", a.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::add_cpu<T>(a.numel(), a.data<T>(), b.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float("add", a.dtype());
    kernels::add_cuda(a.numel(), a.data<float>(), b.data<float>(), y.data<float>(), cuda_exec());
  });
  return y;
}

}  // namespace lethe::ops
