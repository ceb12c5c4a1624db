// The op list: every differentiable operation lethe's models are built from.
//
// Each op follows the same four steps (../shared/docs/STYLE.md): validate shapes, dtypes and
// devices with a message naming the op; allocate the output; switch on the device to call
// kernels::<op>_forward_cpu (CUDA kernels: see the CUDA backend); record a tape node whose
// backward calls the named backward kernels. float32 everywhere, float64 on the CPU (for
// gradient checks). Activations are NCHW and contiguous.
#pragma once

#include <memory>
#include <vector>

#include "framework/tensor.h"

namespace lethe::kernels {
struct SparsePattern;
struct SparsePatternCuda;
}

namespace lethe::ops {

// ---- convolution and linear ----------------------------------------------------------------
/// x: [N,C,H,W], w: [K,C,R,S], bias: [K] or undefined -> [N,K,P,Q]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride, int64_t pad);
/// conv2d of a pruned weight through the sparse kernels (kernels/sparse/conv2d_sparse.h): only
/// w's entries on `pattern` are read, and w's gradient is 0 off it, so the result equals
/// conv2d(x, w * mask, ...) for the mask the pattern was built from. CUDA tensors take the
/// pattern as uploaded to their device (kernels/sparse/conv2d_sparse_cuda.h) in `cuda_pattern`.
Tensor conv2d_sparse(const Tensor& x, const Tensor& w, const Tensor& bias, int64_t stride,
                     int64_t pad, std::shared_ptr<const kernels::SparsePattern> pattern,
                     std::shared_ptr<kernels::SparsePatternCuda> cuda_pattern = nullptr);
/// x: [N,I], w: [O,I], bias: [O] or undefined -> [N,O]
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

// ---- normalisation and pooling ---------------------------------------------------------------
/// Batch norm over the channels of x [N,C,H,W]; gamma/beta [C] (undefined: affine=false).
/// training: normalise with batch statistics and update running_mean / running_var in place
/// (momentum as in PyTorch, unbiased variance for the running estimate); eval: use them.
Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                    Tensor& running_mean, Tensor& running_var, bool training,
                    double momentum = 0.1, double eps = 1e-5);
/// Square window `kernel`, `stride`, zero-size padding `pad` (never the max).
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
/// Average pooling; padding counts towards the divisor (PyTorch's count_include_pad).
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad = 0);
/// [N,C,H,W] -> [N,C], the mean over H*W.
Tensor global_avg_pool(const Tensor& x);

// ---- elementwise ------------------------------------------------------------------------------
Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);       ///< same shapes
Tensor add_relu(const Tensor& a, const Tensor& b);  ///< relu(a + b) in one pass (residual join)
/// a * b with b of a's shape: float (both get gradients) or a uint8 0/1 mask (a pruning mask:
/// no gradient for the mask, and the gradient of a is masked by the chain rule).
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);  ///< alpha * x
Tensor neg(const Tensor& x);                  ///< -x (gradient ascent's loss)

// ---- shape ------------------------------------------------------------------------------------
/// Same data, new shape (one -1 allowed); contiguous input.
Tensor reshape(const Tensor& x, const Shape& shape);
/// [N, ...] -> [N, rest]
Tensor flatten(const Tensor& x);

// ---- softmax and losses (rows of a [M,C] matrix) -------------------------------------------
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);
enum class Reduction { Mean, Sum, None };
/// Cross-entropy of logits [M,C] against int32 labels [M] in [0,C); label_smoothing as
/// PyTorch. Mean/Sum give a scalar, None the per-sample losses [M].
Tensor cross_entropy(const Tensor& logits, const Tensor& labels,
                     Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);

// ---- reductions -------------------------------------------------------------------------------
Tensor sum(const Tensor& x);   ///< scalar (shape [])
Tensor mean(const Tensor& x);  ///< scalar
/// sum_p sum_i |p_i| over a parameter list; subgradient sign(p), 0 at 0.
Tensor l1_norm(const std::vector<Tensor>& params);

// ---- helpers without autograd (gradient accumulation, metrics) ------------------------------
/// a += b, in place, never recorded.
void add_inplace(Tensor& a, const Tensor& b);
/// a + b, never recorded.
Tensor add_nograd(const Tensor& a, const Tensor& b);

}  // namespace lethe::ops
