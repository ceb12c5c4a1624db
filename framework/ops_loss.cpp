// softmax, log_softmax, cross-entropy and the L1 norm of a parameter list.
#include "framework/dispatch.h"
#include "framework/ops.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace lethe::ops {

using detail::check_defined;
using detail::check_like;
using detail::dispatch_float;
using detail::check_cuda_float;
using detail::cuda_exec;
using detail::on_device;

namespace {

void check_matrix(const char* op, const Tensor& x) {
  check_defined(op, x, "input");
  LETHE_CHECK(x.dim() == 2, op, ": expected [M,C] rows of logits, got ", shape_str(x.shape()));
}

struct SoftmaxBackward : Node {
  Tensor y;  // the output (detached): both backward formulas are written in terms of it
  bool log = false;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    const int64_t M = y.size(0), C = y.size(1);
    Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
    on_device(name(), gy.device(), [&] {
      dispatch_float(name(), gy.dtype(), [&](auto t) {
        using T = decltype(t);
        if (log)
          kernels::log_softmax_backward_cpu<T>(M, C, y.data<T>(), gy.data<T>(), gx.data<T>());
        else
          kernels::softmax_backward_cpu<T>(M, C, y.data<T>(), gy.data<T>(), gx.data<T>());
      });
    }, [&] {
      check_cuda_float(name(), gy.dtype());
      if (log)
        kernels::log_softmax_backward_cuda(M, C, y.data<float>(), gy.data<float>(),
                                           gx.data<float>(), cuda_exec());
      else
        kernels::softmax_backward_cuda(M, C, y.data<float>(), gy.data<float>(), gx.data<float>(),
                                       cuda_exec());
    });
    return {gx};
  }
};

Tensor softmax_impl(const Tensor& x, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_matrix(op, x);
  const int64_t M = x.size(0), C = x.size(1);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  on_device(op, x.device(), [&] {
    dispatch_float(op, x.dtype(), [&](auto t) {
      using T = decltype(t);
      if (log)
        kernels::log_softmax_forward_cpu<T>(M, C, x.data<T>(), y.data<T>());
      else
        kernels::softmax_forward_cpu<T>(M, C, x.data<T>(), y.data<T>());
    });
  }, [&] {
    check_cuda_float(op, x.dtype());
    if (log)
      kernels::log_softmax_forward_cuda(M, C, x.data<float>(), y.data<float>(), cuda_exec());
    else
      kernels::softmax_forward_cuda(M, C, x.data<float>(), y.data<float>(), cuda_exec());
  });
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<SoftmaxBackward>();
    node->y = y.detach();
    node->log = log;
    node->inputs = {x};
    autograd::record(y, node);
  }
  return y;
}

struct CrossEntropyBackward : Node {
  Tensor logp, labels;
  double smoothing = 0;
  Reduction reduction = Reduction::Mean;
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    const int64_t M = logp.size(0), C = logp.size(1);
    // Per-sample upstream gradient: the scalar's gradient spread over the batch
    // (divided by M for the mean), or the given per-sample one.
    Tensor gloss = reduction == Reduction::None
                       ? gy
                       : Tensor::full({M}, gy.item() / (reduction == Reduction::Mean ? M : 1),
                                      gy.dtype(), gy.device());
    Tensor glogits = Tensor::empty(logp.shape(), logp.dtype(), logp.device());
    on_device(name(), gy.device(), [&] {
      dispatch_float(name(), gy.dtype(), [&](auto t) {
        using T = decltype(t);
        kernels::cross_entropy_backward_cpu<T>(M, C, logp.data<T>(), labels.data<int32_t>(),
                                               static_cast<T>(smoothing), gloss.data<T>(),
                                               glogits.data<T>());
      });
    }, [&] {
      check_cuda_float(name(), gy.dtype());
      kernels::cross_entropy_backward_cuda(M, C, logp.data<float>(), labels.data<int32_t>(),
                                           static_cast<float>(smoothing), gloss.data<float>(),
                                           glogits.data<float>(), cuda_exec());
    });
    return {glogits};
  }
};

struct L1Backward : Node {
  const char* name() const override { return "l1_norm"; }
  std::vector<Tensor> backward(const Tensor& gy) override {
    const double g = gy.item();
    std::vector<Tensor> grads;
    for (const Tensor& p : inputs) {
      if (!p.requires_grad()) {
        grads.emplace_back();
        continue;
      }
      Tensor gp = Tensor::zeros(p.shape(), p.dtype(), p.device());
      on_device(name(), p.device(), [&] {
        dispatch_float(name(), p.dtype(), [&](auto t) {
          using T = decltype(t);
          kernels::sign_axpy_cpu<T>(p.numel(), static_cast<T>(g), p.data<T>(), gp.data<T>());
        });
      }, [&] {
        check_cuda_float(name(), p.dtype());
        kernels::sign_axpy_cuda(p.numel(), static_cast<float>(g), p.data<float>(),
                                gp.data<float>(), cuda_exec());
      });
      grads.push_back(gp);
    }
    return grads;
  }
};

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, Reduction reduction,
                     double label_smoothing) {
  const char* op = "cross_entropy";
  check_matrix(op, logits);
  check_defined(op, labels, "labels");
  const int64_t M = logits.size(0), C = logits.size(1);
  LETHE_CHECK(labels.dtype() == DType::I32 && labels.shape() == Shape{M}, op,
              ": labels must be int32 [", M, "], got ", labels.str());
  LETHE_CHECK(labels.device() == logits.device(), op, ": labels on ", labels.device().str(),
              " but logits on ", logits.device().str());
  LETHE_CHECK(M > 0, op, ": empty batch");
  LETHE_CHECK(label_smoothing >= 0 && label_smoothing <= 1, op, ": label_smoothing ",
              label_smoothing, " outside [0, 1]");
  Tensor loss = Tensor::empty({M}, logits.dtype(), logits.device());
  Tensor logp = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  auto check_labels = [&](const int32_t* lab) {
    for (int64_t i = 0; i < M; ++i)
      LETHE_CHECK(lab[i] >= 0 && lab[i] < C, op, ": label ", lab[i], " of sample ", i,
                  " outside [0, ", C, ")");
  };
  on_device(op, logits.device(), [&] {
    const int32_t* lab = labels.data<int32_t>();
    check_labels(lab);
    dispatch_float(op, logits.dtype(), [&](auto t) {
      using T = decltype(t);
      kernels::cross_entropy_forward_cpu<T>(M, C, logits.data<T>(), lab,
                                            static_cast<T>(label_smoothing), loss.data<T>(),
                                            logp.data<T>());
    });
  }, [&] {
    check_cuda_float(op, logits.dtype());
    check_labels(labels.to_vector<int32_t>().data());  // M ints: a small synchronous copy
    kernels::cross_entropy_forward_cuda(M, C, logits.data<float>(), labels.data<int32_t>(),
                                        static_cast<float>(label_smoothing), loss.data<float>(),
                                        logp.data<float>(), cuda_exec());
  });
  Tensor out = loss;
  if (reduction != Reduction::None) {
    autograd::NoGradGuard guard;  // the node below covers the reduction too
    const double total = sum(loss).item();
    out = Tensor::full({}, reduction == Reduction::Mean ? total / M : total, logits.dtype(),
                       logits.device());
  }
  if (autograd::needs_grad({&logits})) {
    auto node = std::make_shared<CrossEntropyBackward>();
    node->logp = logp;
    node->labels = labels;
    node->smoothing = label_smoothing;
    node->reduction = reduction;
    node->inputs = {logits};
    autograd::record(out, node);
  }
  return out;
}

Tensor l1_norm(const std::vector<Tensor>& params) {
  const char* op = "l1_norm";
  LETHE_CHECK(!params.empty(), op, ": empty parameter list");
  const Tensor& first = params.front();
  double total = 0;
  for (const Tensor& p : params) {
    check_like(op, first, p, "parameter");
    on_device(op, p.device(), [&] {
      dispatch_float(op, p.dtype(), [&](auto t) {
        using T = decltype(t);
        total += kernels::abs_sum_cpu<T>(p.numel(), p.data<T>());
      });
    }, [&] {
      check_cuda_float(op, p.dtype());
      total += kernels::abs_sum_cuda(p.numel(), p.data<float>(), cuda_exec());
    });
  }
  Tensor y = Tensor::full({}, total, first.dtype(), first.device());
  bool any = false;
  for (const Tensor& p : params) any = any || autograd::needs_grad({&p});
  if (any) {
    auto node = std::make_shared<L1Backward>();
    node->inputs = params;
    autograd::record(y, node);
  }
  return y;
}

}  // namespace lethe::ops
