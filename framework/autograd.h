// Reverse-mode autograd on a dynamic tape.
//
// Each differentiable op that sees an input requiring gradients records a Node on its
// output: the node keeps the inputs it differentiates with respect to and the small struct
// its backward kernels need (saved activations, argmax indices, batch statistics), nothing
// more. backward() orders the nodes reachable from the root topologically (the tape, built
// by a depth-first walk), then runs each node's backward once, in reverse, summing the
// gradients that reach a tensor from several uses. Leaves (parameters, inputs marked with
// set_requires_grad) accumulate into .grad across backward calls until zero_grad().
// Evaluation, SynFlow scoring and mask updates run under NoGradGuard and record nothing.
// Double backward is not supported (no method here needs it).
#pragma once

#include <memory>
#include <vector>

#include "framework/tensor.h"

namespace lethe {

/// One recorded op. Subclasses (in framework/ops_*.cpp) implement backward by calling the
/// named backward kernels of their op family.
struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  /// Given the gradient of this node's output, returns one gradient per entry of `inputs`
  /// (undefined where that input needs none).
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  /// The tensors this node differentiates with respect to.
  std::vector<Tensor> inputs;
};

namespace autograd {

/// Whether ops record nodes (thread-local; on by default).
bool grad_enabled();

/// Disables recording for its lifetime (restores the previous state).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

/// Attaches `node` (with its inputs set) as the producer of `out`.
void record(Tensor& out, std::shared_ptr<Node> node);

/// Runs backward from `root`. Without grad_output, root must have one element (the loss)
/// and its gradient is 1.
void backward(const Tensor& root, const Tensor& grad_output = Tensor());

}  // namespace autograd
}  // namespace lethe
