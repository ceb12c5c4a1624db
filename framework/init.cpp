#include "framework/init.h"

#include <cmath>

namespace lethe::init {

int64_t fan_in(const Tensor& w) {
  LETHE_CHECK(w.dim() >= 2, "fan_in needs a weight with at least 2 dimensions, got ", w.str());
  return w.numel() / w.size(0);
}

int64_t fan_out(const Tensor& w) {
  LETHE_CHECK(w.dim() >= 2, "fan_out needs a weight with at least 2 dimensions, got ", w.str());
  return w.numel() / w.size(1);
}

void uniform_(Tensor& t, double lo, double hi, Generator& gen) {
  LETHE_CHECK(t.device().is_cpu(), "initialise parameters on the CPU, then move them");
  if (t.dtype() == DType::F64)
    gen.fill_uniform(t.data<double>(), t.numel(), lo, hi);
  else
    gen.fill_uniform(t.data<float>(), t.numel(), lo, hi);
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  LETHE_CHECK(t.device().is_cpu(), "initialise parameters on the CPU, then move them");
  if (t.dtype() == DType::F64)
    gen.fill_normal(t.data<double>(), t.numel(), mean, std);
  else
    gen.fill_normal(t.data<float>(), t.numel(), mean, std);
}

void kaiming_normal_(Tensor& w, bool use_fan_out, Generator& gen) {
  const double fan = static_cast<double>(use_fan_out ? fan_out(w) : fan_in(w));
  normal_(w, 0.0, std::sqrt(2.0) / std::sqrt(fan), gen);
}

void kaiming_uniform_(Tensor& w, double a, Generator& gen) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in(w)));
  uniform_(w, -bound, bound, gen);
}

void layer_default_(Tensor& weight, Tensor& bias, Generator& gen) {
  kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(weight)));
    uniform_(bias, -bound, bound, gen);
  }
}

}  // namespace lethe::init
