#include "framework/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "framework/ops.h"

namespace lethe::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, std::shared_ptr<Node> node) {
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

namespace {

// Post-order depth-first walk from the root node: every node comes after all nodes that
// consume its output, so the reversed list is a valid order to run backward in. Iterative,
// so a deep network cannot overflow the stack.
std::vector<Node*> build_tape(Node* root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      Node* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

// Sums a gradient into a leaf's .grad. The first gradient is cloned: backward functions may
// return the same tensor for several inputs (add), and .grad must never alias another one.
void accumulate_leaf(const Tensor& leaf, const Tensor& g) {
  Tensor current = leaf.grad();
  if (!current.defined()) {
    Tensor copy = g.clone();
    const_cast<Tensor&>(leaf).set_grad(copy);
  } else {
    ops::add_inplace(current, g);
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_output) {
  LETHE_CHECK(root.requires_grad(), "backward() on a tensor that does not require gradients ",
              "(did the computation run under NoGradGuard, or on inputs without gradients?)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    LETHE_CHECK(root.numel() == 1, "backward() without a gradient needs a one-element ",
                "output, got ", root.str());
    seed = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  LETHE_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(),
              "backward(): gradient ", seed.str(), " does not match output ", root.str());
  if (root.is_leaf()) {
    accumulate_leaf(root, seed);
    return;
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = seed;
  const std::vector<Node*> tape = build_tape(root.grad_fn().get());
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
    Node* node = *it;
    auto found = grads.find(node);
    if (found == grads.end()) continue;  // no gradient flows through this node
    const Tensor g = std::move(found->second);
    grads.erase(found);  // free the activation gradient as soon as it is consumed
    std::vector<Tensor> in_grads = node->backward(g);
    LETHE_CHECK(in_grads.size() == node->inputs.size(), node->name(),
                " backward returned ", in_grads.size(), " gradients for ",
                node->inputs.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Tensor& in = node->inputs[i];
      Tensor& gi = in_grads[i];
      if (!gi.defined() || !in.defined() || !in.requires_grad()) continue;
      LETHE_CHECK(gi.shape() == in.shape(), node->name(), " backward: gradient ", gi.str(),
                  " for input ", i, " of shape ", shape_str(in.shape()));
      if (in.is_leaf()) {
        accumulate_leaf(in, gi);
        continue;
      }
      Tensor& slot = grads[in.grad_fn().get()];
      // Out of place: gi or slot may be shared with another input's gradient.
      slot = slot.defined() ? ops::add_nograd(slot, gi) : gi;
    }
  }
}

}  // namespace lethe::autograd
