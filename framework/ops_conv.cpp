// conv2d and linear: the GEMM-shaped ops.
#include "framework/dispatch.h"
#include "framework/ops.h"
#include "framework/settings.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_cudnn.h"
#include "kernels/linear.h"
#include "kernels/sparse/conv2d_sparse.h"
#ifdef LETHE_WITH_CUDA
#include "kernels/sparse/conv2d_sparse_cuda.h"
#endif

namespace lethe::ops {

using detail::check_defined;
using detail::check_cuda_float;
using detail::check_like;
using detail::cuda_exec;
using detail::dispatch_float;
using detail::on_device;

namespace {

// The three conv products on the GPU: lethe's kernels, or cuDNN when `conv_backend = cudnn`
// asks for it (never as a fallback). Scratch comes from the caching allocator. Defined in
// every build (the ops' CUDA lambdas name them); a CPU-only build never calls them.
#ifdef LETHE_WITH_CUDA
bool use_cudnn() {
  if (execution_settings().conv != ConvBackend::CuDNN) return false;
#ifndef LETHE_WITH_CUDNN
  LETHE_CHECK(false, "conv_backend = cudnn, but this lethe was built without cuDNN");
#endif
  return true;
}

Tensor scratch(size_t bytes, Device dev) {
  return Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8, dev);
}

void conv_forward_cuda(const kernels::Conv2dShape& s, const Tensor& x, const Tensor& w,
                       const Tensor& bias, Tensor& y) {
  const kernels::CudaExec e = detail::conv_cuda_exec();
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
  if (use_cudnn()) {
#ifdef LETHE_WITH_CUDNN
    const size_t ws = kernels::conv2d_cudnn_workspace_bytes(s, e);
    Tensor tmp = scratch(ws, x.device());
    kernels::conv2d_forward_cudnn(s, x.data<float>(), w.data<float>(), b, y.data<float>(),
                                  tmp.raw_data(), ws, e);
#endif
    return;
  }
  kernels::conv2d_forward_cuda(s, x.data<float>(), w.data<float>(), b, y.data<float>(), e);
}

void conv_backward_cuda(const kernels::Conv2dShape& s, const Tensor& x, const Tensor& w,
                        const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  const kernels::CudaExec e = detail::conv_cuda_exec();
  float* gbp = gb.defined() ? gb.data<float>() : nullptr;
  if (use_cudnn()) {
#ifdef LETHE_WITH_CUDNN
    const size_t ws = kernels::conv2d_cudnn_workspace_bytes(s, e);
    Tensor tmp = scratch(ws, gy.device());
    if (gx.defined())
      kernels::conv2d_backward_data_cudnn(s, gy.data<float>(), w.data<float>(), gx.data<float>(),
                                          tmp.raw_data(), ws, e);
    if (gw.defined())
      kernels::conv2d_backward_weight_cudnn(s, x.data<float>(), gy.data<float>(),
                                            gw.data<float>(), gbp, tmp.raw_data(), ws, e);
#endif
    return;
  }
  if (gx.defined())
    kernels::conv2d_backward_data_cuda(s, gy.data<float>(), w.data<float>(), gx.data<float>(), e);
  if (gw.defined()) {
    // Split-K partials of the long N*P*Q reduction.
    const size_t ws = kernels::conv2d_cuda_workspace_bytes(s, e);
    Tensor tmp = scratch(ws, gy.device());
    kernels::conv2d_backward_weight_cuda(s, x.data<float>(), gy.data<float>(), gw.data<float>(),
                                         gbp, tmp.raw_data(), ws, e);
  }
}
// Sparse conv on the GPU (kernels/sparse/conv2d_sparse_cuda.h, default version), scratch
// from the caching allocator.
void sparse_forward_cuda(const kernels::Conv2dShape& s, kernels::SparsePatternCuda& p,
                         const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  const kernels::CudaExec e = cuda_exec();
  const size_t ws = kernels::sparse_conv2d_cuda_workspace_bytes(s, p, e);
  Tensor tmp = scratch(ws, x.device());
  kernels::sparse_conv2d_forward_cuda(s, p, x.data<float>(), w.data<float>(),
                                      bias.defined() ? bias.data<float>() : nullptr,
                                      y.data<float>(), ws > 0 ? tmp.raw_data() : nullptr, ws, e);
}

void sparse_backward_cuda(const kernels::Conv2dShape& s, kernels::SparsePatternCuda& p,
                          const Tensor& x, const Tensor& w, const Tensor& gy, Tensor& gx,
                          Tensor& gw, Tensor& gb) {
  const kernels::CudaExec e = cuda_exec();
  const size_t ws = kernels::sparse_conv2d_cuda_workspace_bytes(s, p, e);
  Tensor tmp = scratch(ws, gy.device());
  void* wsp = ws > 0 ? tmp.raw_data() : nullptr;
  if (gx.defined())
    kernels::sparse_conv2d_backward_data_cuda(s, p, gy.data<float>(), w.data<float>(),
                                              gx.data<float>(), wsp, ws, e);
  if (gw.defined())
    kernels::sparse_conv2d_backward_weight_cuda(s, p, x.data<float>(), gy.data<float>(),
                                                gw.data<float>(),
                                                gb.defined() ? gb.data<float>() : nullptr, wsp,
                                                ws, e);
}
#else
void sparse_forward_cuda(const kernels::Conv2dShape&, kernels::SparsePatternCuda&, const Tensor&,
                         const Tensor&, const Tensor&, Tensor&) {
  LETHE_CHECK(false, "conv2d_sparse: this lethe was built without CUDA");
}
void sparse_backward_cuda(const kernels::Conv2dShape&, kernels::SparsePatternCuda&, const Tensor&,
                          const Tensor&, const Tensor&, Tensor&, Tensor&, Tensor&) {
  LETHE_CHECK(false, "conv2d_sparse backward: this lethe was built without CUDA");
}
void conv_forward_cuda(const kernels::Conv2dShape&, const Tensor&, const Tensor&, const Tensor&,
                       Tensor&) {
  LETHE_CHECK(false, "conv2d: this lethe was built without CUDA");
}
void conv_backward_cuda(const kernels::Conv2dShape&, const Tensor&, const Tensor&, const Tensor&,
                        Tensor&, Tensor&, Tensor&) {
  LETHE_CHECK(false, "conv2d: this lethe was built without CUDA");
}
#endif

struct Conv2dBackward : Node {
  kernels::Conv2dShape s;
  const char* name() const override { return "conv2d"; }
  // inputs = {x, w, bias}: backward-weight reads x, backward-data reads w.
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor &x = inputs[0], &w = inputs[1], &bias = inputs[2];
    Tensor gx, gw, gb;
    if (inputs[0].requires_grad()) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    const bool need_w = inputs[1].requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    if (need_w || need_b) gw = Tensor::empty(w.shape(), w.dtype(), w.device());
    if (need_b) gb = Tensor::empty(bias.shape(), bias.dtype(), bias.device());
    on_device("conv2d backward", gy.device(), [&] {
      dispatch_float("conv2d backward", gy.dtype(), [&](auto t) {
        using T = decltype(t);
        if (gx.defined())
          kernels::conv2d_backward_data_cpu<T>(s, gy.data<T>(), w.data<T>(), gx.data<T>());
        if (gw.defined())
          kernels::conv2d_backward_weight_cpu<T>(s, x.data<T>(), gy.data<T>(), gw.data<T>(),
                                                 gb.defined() ? gb.data<T>() : nullptr);
      });
    }, [&] {
      check_cuda_float("conv2d backward", gy.dtype());
      conv_backward_cuda(s, x, w, gy, gx, gw, gb);
    });
    if (!need_w) gw = Tensor();
    return {gx, gw, gb};
  }
};

struct Conv2dSparseBackward : Node {
  kernels::Conv2dShape s;
  std::shared_ptr<const kernels::SparsePattern> pattern;
  std::shared_ptr<kernels::SparsePatternCuda> cuda_pattern;  // CUDA tensors only
  const char* name() const override { return "conv2d_sparse"; }
  // inputs = {x, w, bias}, as Conv2dBackward.
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor &x = inputs[0], &w = inputs[1], &bias = inputs[2];
    Tensor gx, gw, gb;
    if (x.requires_grad()) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    const bool need_w = w.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    if (need_w || need_b) gw = Tensor::empty(w.shape(), w.dtype(), w.device());
    if (need_b) gb = Tensor::empty(bias.shape(), bias.dtype(), bias.device());
    on_device(
        "conv2d_sparse backward", gy.device(),
        [&] {
          dispatch_float("conv2d_sparse backward", gy.dtype(), [&](auto t) {
            using T = decltype(t);
            kernels::sparse_conv2d_backward_cpu<T>(
                s, *pattern, x.data<T>(), gy.data<T>(), w.data<T>(),
                gx.defined() ? gx.data<T>() : nullptr, gw.defined() ? gw.data<T>() : nullptr,
                gb.defined() ? gb.data<T>() : nullptr);
          });
        },
        [&] {
          check_cuda_float("conv2d_sparse backward", gy.dtype());
          sparse_backward_cuda(s, *cuda_pattern, x, w, gy, gx, gw, gb);
        });
    if (!need_w) gw = Tensor();
    return {gx, gw, gb};
  }
};

struct LinearBackward : Node {
  int64_t N = 0, I = 0, O = 0;
  const char* name() const override { return "linear"; }
  // inputs = {x, w, bias}
  std::vector<Tensor> backward(const Tensor& gy) override {
    const Tensor &x = inputs[0], &w = inputs[1], &bias = inputs[2];
    Tensor gx, gw, gb;
    if (inputs[0].requires_grad()) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (inputs[1].requires_grad()) gw = Tensor::empty(w.shape(), w.dtype(), w.device());
    if (bias.defined() && bias.requires_grad())
      gb = Tensor::empty(bias.shape(), bias.dtype(), bias.device());
    on_device("linear backward", gy.device(), [&] {
      dispatch_float("linear backward", gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::linear_backward_cpu<T>(N, I, O, x.data<T>(), w.data<T>(), gy.data<T>(),
                                        gx.defined() ? gx.data<T>() : nullptr,
                                        gw.defined() ? gw.data<T>() : nullptr,
                                        gb.defined() ? gb.data<T>() : nullptr);
      });
    }, [&] {
      check_cuda_float("linear backward", gy.dtype());
      kernels::linear_backward_cuda(N, I, O, x.data<float>(), w.data<float>(), gy.data<float>(),
                                    gx.defined() ? gx.data<float>() : nullptr,
                                    gw.defined() ? gw.data<float>() : nullptr,
                                    gb.defined() ? gb.data<float>() : nullptr, cuda_exec());
    });
    return {gx, gw, gb};
  }
};

/// Checks the operands of a conv2d-like op and returns its shape.
kernels::Conv2dShape conv2d_shape(const char* op, const Tensor& x, const Tensor& w,
                                  const Tensor& bias, int64_t stride, int64_t pad) {
  check_defined(op, x, "input");
  check_like(op, x, w, "weight");
  LETHE_CHECK(x.dim() == 4 && w.dim() == 4, op, ": expected input [N,C,H,W] and weight ",
              "[K,C,R,S], got ", shape_str(x.shape()), " and ", shape_str(w.shape()));
  LETHE_CHECK(x.size(1) == w.size(1), op, ": input has ", x.size(1), " channels but weight ",
              shape_str(w.shape()), " expects ", w.size(1));
  LETHE_CHECK(stride >= 1 && pad >= 0, op, ": stride ", stride, " / pad ", pad, " invalid");
  const kernels::Conv2dShape s{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0),
                               w.size(2), w.size(3), stride, pad};
  LETHE_CHECK(s.H + 2 * pad >= s.R && s.W + 2 * pad >= s.S, op, ": filter ",
              shape_str(w.shape()), " larger than padded input ", shape_str(x.shape()));
  if (bias.defined()) {
    check_like(op, x, bias, "bias");
    detail::check_shape(op, bias, {s.K}, "bias");
  }
  return s;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride,
              int64_t pad) {
  const char* op = "conv2d";
  const kernels::Conv2dShape s = conv2d_shape(op, x, w, bias, stride, pad);
  Tensor y = Tensor::empty({s.N, s.K, s.P(), s.Q()}, x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::conv2d_forward_cpu<T>(s, x.data<T>(), w.data<T>(),
                                     bias.defined() ? bias.data<T>() : nullptr, y.data<T>());
    });
  }, [&] {
    check_cuda_float(op, x.dtype());
    conv_forward_cuda(s, x, w, bias, y);
  });
  if (autograd::needs_grad({&x, &w, &bias})) {
    auto node = std::make_shared<Conv2dBackward>();
    node->s = s;
    node->inputs = {x, w, bias};
    autograd::record(y, node);
  }
  return y;
}

Tensor conv2d_sparse(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride,
                     int64_t pad, std::shared_ptr<const kernels::SparsePattern> pattern,
                     std::shared_ptr<kernels::SparsePatternCuda> cuda_pattern) {
  const char* op = "conv2d_sparse";
  const kernels::Conv2dShape s = conv2d_shape(op, x, w, bias, stride, pad);
  LETHE_CHECK(pattern != nullptr, op, ": no sparsity pattern");
  LETHE_CHECK(x.device().is_cpu() || cuda_pattern != nullptr, op,
              ": a tensor on ", x.device().str(), " needs the pattern uploaded to it");
  Tensor y = Tensor::empty({s.N, s.K, s.P(), s.Q()}, x.dtype(), x.device());
  on_device(
      op, x.device(),
      [&] {
        dispatch_float(op, x.dtype(), [&](auto t) {
          using T = decltype(t);
          kernels::sparse_conv2d_forward_cpu<T>(s, *pattern, x.data<T>(), w.data<T>(),
                                                bias.defined() ? bias.data<T>() : nullptr,
                                                y.data<T>());
        });
      },
      [&] {
        check_cuda_float(op, x.dtype());
        sparse_forward_cuda(s, *cuda_pattern, x, w, bias, y);
      });
  if (autograd::needs_grad({&x, &w, &bias})) {
    auto node = std::make_shared<Conv2dSparseBackward>();
    node->s = s;
    node->pattern = std::move(pattern);
    node->cuda_pattern = std::move(cuda_pattern);
    node->inputs = {x, w, bias};
    autograd::record(y, node);
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const char* op = "linear";
  check_defined(op, x, "input");
  check_like(op, x, w, "weight");
  LETHE_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), op,
              ": expected input [N,I] and weight [O,I], got ", shape_str(x.shape()), " and ",
              shape_str(w.shape()));
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  if (bias.defined()) {
    check_like(op, x, bias, "bias");
    detail::check_shape(op, bias, {O}, "bias");
  }
  Tensor y = Tensor::empty({N, O}, x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::linear_forward_cpu<T>(N, I, O, x.data<T>(), w.data<T>(),
                                     bias.defined() ? bias.data<T>() : nullptr, y.data<T>());
    });
  }, [&] {
    check_cuda_float(op, x.dtype());
    kernels::linear_forward_cuda(N, I, O, x.data<float>(), w.data<float>(),
                                 bias.defined() ? bias.data<float>() : nullptr, y.data<float>(),
                                 cuda_exec());
  });
  if (autograd::needs_grad({&x, &w, &bias})) {
    auto node = std::make_shared<LinearBackward>();
    node->N = N;
    node->I = I;
    node->O = O;
    node->inputs = {x, w, bias};
    autograd::record(y, node);
  }
  return y;
}

}  // namespace lethe::ops
