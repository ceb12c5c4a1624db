// Parameter initialisers, PyTorch's formulas, drawn from lethe's counter-based Generator
// so that the same seed gives the same weights on every run.
#pragma once

#include "framework/rng.h"
#include "framework/tensor.h"

namespace lethe::init {

/// fan_in = C*R*S (dim 1 times the rest), fan_out = K*R*S, for a [K,C,...] or [O,I] weight.
int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);

void uniform_(Tensor& t, double lo, double hi, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
/// N(0, gain/sqrt(fan)) with gain sqrt(2) (ReLU); `use_fan_out` picks fan_out (SPEC's conv init).
void kaiming_normal_(Tensor& w, bool use_fan_out, Generator& gen);
/// U(-b, b), b = gain*sqrt(3/fan_in), gain = sqrt(2/(1+a^2)): PyTorch's default for Conv2d and
/// Linear weights with a = sqrt(5).
void kaiming_uniform_(Tensor& w, double a, Generator& gen);

/// PyTorch's default init of a Conv2d / Linear layer: kaiming_uniform(a = sqrt(5)) for the
/// weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias (when defined).
void layer_default_(Tensor& weight, Tensor& bias, Generator& gen);

}  // namespace lethe::init
