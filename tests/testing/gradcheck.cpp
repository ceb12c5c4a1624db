#include "testing/gradcheck.h"

#include <cmath>
#include <sstream>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "testing/compare.h"

namespace lethe::testing {

Tensor random_param(const Shape& shape, uint32_t seed, double lo, double hi) {
  Tensor t = Tensor::from_vector(random_vector<double>(shape_numel(shape), seed, lo, hi), shape);
  t.set_requires_grad(true);
  return t;
}

namespace {
double weighted_sum(const Tensor& out, const Tensor& r) {
  const double* o = out.data<double>();
  const double* w = r.data<double>();
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += o[i] * w[i];
  return s;
}
}  // namespace

::testing::AssertionResult gradcheck(const std::string& what, const OpFn& f,
                                     std::vector<Tensor> inputs, GradcheckOptions opt) {
  for (Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) t.zero_grad();
  }
  Tensor out = f(inputs);
  if (out.dtype() != DType::F64)
    return ::testing::AssertionFailure() << what << ": gradcheck needs float64 outputs";
  Tensor r = Tensor::from_vector(random_vector<double>(out.numel(), 4242, -1.0, 1.0), out.shape());
  ops::sum(ops::mul(out, r)).backward();

  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const Tensor g = x.grad();
    if (!g.defined())
      return ::testing::AssertionFailure() << what << ": input " << k << " got no gradient";
    const int64_t n = x.numel();
    const int64_t step = n > opt.max_elems ? (n + opt.max_elems - 1) / opt.max_elems : 1;
    double* xv = x.data<double>();
    const double* gv = g.data<double>();
    for (int64_t i = (static_cast<int64_t>(k) * 7) % step; i < n; i += step) {
      const double saved = xv[i];
      double lp, lm;
      {
        autograd::NoGradGuard ng;
        xv[i] = saved + opt.h;
        lp = weighted_sum(f(inputs), r);
        xv[i] = saved - opt.h;
        lm = weighted_sum(f(inputs), r);
      }
      xv[i] = saved;
      const double numeric = (lp - lm) / (2 * opt.h);
      if (!(std::fabs(numeric - gv[i]) <= opt.atol + opt.rtol * std::fabs(numeric)))
        return ::testing::AssertionFailure()
               << what << ": input " << k << " " << shape_str(x.shape()) << " element " << i
               << ": analytic " << gv[i] << " vs numeric " << numeric;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace lethe::testing
