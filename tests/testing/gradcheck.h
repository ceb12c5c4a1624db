// Finite-difference gradient check for framework ops (float64 on the CPU).
//
// For an op f and seeded inputs, the scalar L = sum(f(inputs) * R) with a fixed random R
// makes every output element matter with a different weight. The analytic gradient of L
// (one backward) is compared with central differences (L(x+h) - L(x-h)) / 2h for every
// element of every input that requires gradients (a seeded sample of at most
// `max_elems` per input, so large shapes stay fast).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "framework/tensor.h"

namespace lethe::testing {

struct GradcheckOptions {
  double h = 1e-6, atol = 1e-6, rtol = 1e-5;
  int64_t max_elems = 400;
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Returns success or a message naming `what`, the input, element, analytic and numeric values.
::testing::AssertionResult gradcheck(const std::string& what, const OpFn& f,
                                     std::vector<Tensor> inputs, GradcheckOptions opt = {});

/// A float64 CPU tensor of `shape` with seeded values in [lo, hi), requiring gradients.
Tensor random_param(const Shape& shape, uint32_t seed, double lo = -1.0, double hi = 1.0);

}  // namespace lethe::testing
