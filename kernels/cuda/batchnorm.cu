// batch_norm2d on CUDA, float32 (formulas in kernels/batchnorm.h), with fused epilogues:
//   y = act(bn(x) [+ residual]), act in {None, Relu, AddRelu} (BnEpilogue).
// Layout NCHW: the M = N*HW values of channel c are N contiguous runs of HW, run n at
// ((n*C + c)*HW). Vectorised along HW with float4 when HW % 4 == 0 and every per-element
// pointer is 16-byte aligned (then every run starts aligned), else one float at a time.
//
// Thread mapping: grid (C, K), block T threads (64..512, a multiple of 32). Blocks (c, 0..K-1)
// share channel c: block k visits the channel's vectors j = k*T + t, k*T + t + K*T, ...
// (vector j is element j % HWv of run j / HWv: consecutive threads read consecutive
// addresses along HW, so loads coalesce). A channel's statistics need every one of its K
// blocks, so for K > 1 those blocks form one thread-block cluster (sm_90) and combine their
// partial sums through distributed shared memory: no atomics, no workspace, no second
// kernel, and the order of every addition is fixed by the shape alone (deterministic).
//   v1: K = 1, one block per channel (the CPU's loop over channels, one block each).
//   v2 (default): K = 1..8, doubled while the grid stays within kTargetBlocks (one wave on an
//       H100) and each thread keeps >= 4 vectors; at the ResNet-18 CIFAR shapes (N = 256)
//       C = 64 gets 4 blocks per channel, C = 128 gets 2, C >= 256 one. Without cluster
//       support (device or compiled code below sm_90) v2 runs as v1.
// Why clusters rather than a two-kernel reduction: no partials buffer (no workspace argument,
// no cudaMalloc in a call) and y / gx are written by the same kernel that reduced.
//
// Kernels (one launch per call):
//   forward train: sums of d = x - shift and d^2 in double (shift = the channel's first value,
//     so E[d^2] - E[d]^2 does not cancel when |mean| >> std; as accurate here as the CPU's
//     two passes), cluster reduction, running statistics, then y = act(bn(x) [+ r]).
//   forward eval: elementwise with per-channel constants (no reduction).
//   backward: g = gy masked by y > 0 (fused ReLU; AddRelu also writes gresidual = g), sums of
//     g and g*(x - mean) in double, cluster reduction, then (training) gx from the
//     per-channel constants, reading g back from gresidual for AddRelu; in eval gx = g*k is
//     written in the first pass.
// Tested by tests/cuda/test_batchnorm_cuda.cpp, measured by bench/bench_batchnorm_cuda.cpp.
#include <cooperative_groups.h>

#include <cstdint>
#include <initializer_list>

#include "kernels/batchnorm.h"
#include "kernels/cuda/common.cuh"

namespace lethe::kernels {

namespace {

using cuda::block_sum;
using cuda::check_launch;
using cuda::stream_of;

constexpr int kMaxThreads = 512;
constexpr int kMaxCluster = 8;         // the portable cluster size limit of sm_90
constexpr int kUnroll = 4;             // vectors per thread per iteration of the main loop
// Grid size aimed at by v2: one wave of 2 blocks of 512 threads per SM of an H100 (132 SMs).
constexpr int64_t kTargetBlocks = 256;

// ---- helpers ---------------------------------------------------------------------------

/// V consecutive floats of one run, loaded / stored as one float4 when V == 4.
template <int V>
struct Pack {
  float v[V];
};

template <int V>
__device__ __forceinline__ Pack<V> load(const float* p, int64_t j) {
  if constexpr (V == 4) {
    const float4 t = reinterpret_cast<const float4*>(p)[j];
    return {{t.x, t.y, t.z, t.w}};
  } else {
    return {{p[j]}};
  }
}

template <int V>
__device__ __forceinline__ void store(float* p, int64_t j, const Pack<V>& a) {
  if constexpr (V == 4)
    reinterpret_cast<float4*>(p)[j] = make_float4(a.v[0], a.v[1], a.v[2], a.v[3]);
  else
    p[j] = a.v[0];
}

/// The channel geometry in vectors of V floats.
struct Geom {
  int64_t C;    ///< channels
  int64_t HWv;  ///< vectors per run (HW / V)
  int64_t Mv;   ///< vectors per channel (N * HWv)
};

/// Calls f(offset) for the vectors of channel blockIdx.x that this thread owns, offset in
/// vectors from the tensor start, in increasing j. Run index n and position i advance by
/// additions only (one division per thread, not per vector). The main loop takes kUnroll
/// vectors at a time so that their independent loads are in flight together (f is inlined
/// and the kernels' pointers are __restrict__, so the compiler may issue them first).
template <typename F>
__device__ __forceinline__ void for_each_vec(const Geom& g, F&& f) {
  const int64_t c = blockIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.y) * blockDim.x;
  int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= g.Mv) return;  // also covers Mv == 0, where HWv may be 0
  int64_t n = j / g.HWv, i = j % g.HWv;
  const int64_t dn = step / g.HWv, di = step % g.HWv;
  auto next_offset = [&] {  // the offset of (n, i), then advance both by one step
    const int64_t off = (n * g.C + c) * g.HWv + i;
    n += dn;
    i += di;
    if (i >= g.HWv) {  // di < HWv, so one carry is enough
      i -= g.HWv;
      ++n;
    }
    return off;
  };
  for (; j + (kUnroll - 1) * step < g.Mv; j += kUnroll * step) {
    int64_t off[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) off[u] = next_offset();
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f(off[u]);
  }
  for (; j < g.Mv; j += step) f(next_offset());
}

/// Sums (a, b) over the block, then over the K blocks of the channel's cluster; every thread
/// of every block of the cluster gets the same two values (same addition order everywhere).
__device__ __forceinline__ void channel_sum2(double& a, double& b, double* scratch,
                                             double2* partial) {
  a = block_sum(a, scratch);
  b = block_sum(b, scratch);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (gridDim.y > 1) {  // the launcher made (1, K, 1) clusters: one cluster per channel
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    if (threadIdx.x == 0) *partial = make_double2(a, b);
    // Barrier with release/acquire at cluster scope: every block's partial is visible.
    cluster.sync();
    a = 0.0;
    b = 0.0;
    for (unsigned r = 0; r < cluster.num_blocks(); ++r) {  // rank order: deterministic
      const double2 p = *cluster.map_shared_rank(partial, r);
      a += p.x;
      b += p.y;
    }
    // No block may exit (freeing its shared memory) while another still reads its partial.
    cluster.sync();
  }
#endif
}

/// The epilogue of the pass that writes y: v = ((x - m_hi) - m_lo)*a + b [+ r], then ReLU as
/// relu_forward_cpu (x < 0 ? 0 : x, so NaN passes). The mean is split into two floats
/// m_hi + m_lo: x - m_hi of two nearby floats is exact, so float keeps the accuracy of the
/// double mean even when |mean| >> std.
template <int V, BnEpilogue ACT>
__device__ __forceinline__ Pack<V> bn_epilogue(Pack<V> xv, const float* residual, int64_t j,
                                               float m_hi, float m_lo, float a, float b) {
  Pack<V> r{};
  if constexpr (ACT == BnEpilogue::AddRelu) r = load<V>(residual, j);
#pragma unroll
  for (int k = 0; k < V; ++k) {
    float v = ((xv.v[k] - m_hi) - m_lo) * a + b;
    if constexpr (ACT == BnEpilogue::AddRelu) v += r.v[k];
    if constexpr (ACT != BnEpilogue::None) v = v < 0.f ? 0.f : v;
    xv.v[k] = v;
  }
  return xv;
}

/// gy masked by the fused ReLU: gy where y > 0, else 0 (relu_backward_cpu's convention).
template <int V, BnEpilogue ACT>
__device__ __forceinline__ Pack<V> masked_grad(const float* gy, const float* y, int64_t j) {
  Pack<V> d = load<V>(gy, j);
  if constexpr (ACT != BnEpilogue::None) {
    const Pack<V> out = load<V>(y, j);
#pragma unroll
    for (int k = 0; k < V; ++k) d.v[k] = out.v[k] > 0.f ? d.v[k] : 0.f;
  }
  return d;
}

// ---- kernels ---------------------------------------------------------------------------

// Forward, training. x, y, residual: N*C*HW; gamma, beta, running_*, save_*: C. M = N*HW >= 1.
template <int V, BnEpilogue ACT>
__global__ void __launch_bounds__(kMaxThreads, 2)
    bn_forward_train_kernel(Geom g, int64_t M, const float* __restrict__ x,
                            const float* __restrict__ gamma, const float* __restrict__ beta,
                            const float* __restrict__ residual, float* __restrict__ running_mean,
                            float* __restrict__ running_var, float momentum, float eps,
                            float* __restrict__ y, float* __restrict__ save_mean,
                            float* __restrict__ save_invstd) {
  __shared__ double scratch[32];
  __shared__ double2 partial;
  const int64_t c = blockIdx.x;
  // Phase 1: shifted sums. The shift is the channel's first value (n = 0, i = 0), the same
  // for every block of the cluster; d = x - shift is exact in double.
  const double shift = static_cast<double>(x[c * g.HWv * V]);
  double s1 = 0.0, s2 = 0.0;
  for_each_vec(g, [&](int64_t j) {
    const Pack<V> xv = load<V>(x, j);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const double d = static_cast<double>(xv.v[k]) - shift;
      s1 += d;
      s2 += d * d;
    }
  });
  // Phase 2: the channel's sums, then mean and the biased variance (clamped: rounding may
  // leave a tiny negative where all values are equal).
  channel_sum2(s1, s2, scratch, &partial);
  const double Md = static_cast<double>(M);
  const double mean = shift + s1 / Md;
  const double var_b = fmax((s2 - s1 * (s1 / Md)) / Md, 0.0);
  const double invstd = 1.0 / sqrt(var_b + static_cast<double>(eps));
  if (blockIdx.y == 0 && threadIdx.x == 0) {
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    // Running statistics with the unbiased variance; M == 1 keeps the biased one (0).
    const double m = static_cast<double>(momentum);
    const double var_u = M > 1 ? var_b * Md / (Md - 1.0) : var_b;
    if (running_mean)
      running_mean[c] =
          static_cast<float>((1.0 - m) * static_cast<double>(running_mean[c]) + m * mean);
    if (running_var)
      running_var[c] =
          static_cast<float>((1.0 - m) * static_cast<double>(running_var[c]) + m * var_u);
  }
  // Phase 3: y, per-channel constants folded in double and rounded once.
  const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
  const float a = static_cast<float>(gm * invstd);
  const float b = beta ? beta[c] : 0.f;
  const float m_hi = static_cast<float>(mean);
  const float m_lo = static_cast<float>(mean - static_cast<double>(m_hi));
  for_each_vec(g, [&](int64_t j) {
    store<V>(y, j, bn_epilogue<V, ACT>(load<V>(x, j), residual, j, m_hi, m_lo, a, b));
  });
}

// Forward, eval: elementwise with the running statistics (no reduction, no cluster).
template <int V, BnEpilogue ACT>
__global__ void __launch_bounds__(kMaxThreads, 2)
    bn_forward_eval_kernel(Geom g, const float* __restrict__ x, const float* __restrict__ gamma,
                           const float* __restrict__ beta, const float* __restrict__ residual,
                           const float* __restrict__ running_mean,
                           const float* __restrict__ running_var, float eps,
                           float* __restrict__ y) {
  const int64_t c = blockIdx.x;
  const double invstd =
      1.0 / sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
  const double gm = gamma ? static_cast<double>(gamma[c]) : 1.0;
  const float a = static_cast<float>(gm * invstd);
  const float b = beta ? beta[c] : 0.f;
  const float mu = running_mean[c];
  for_each_vec(g, [&](int64_t j) {
    store<V>(y, j, bn_epilogue<V, ACT>(load<V>(x, j), residual, j, mu, 0.f, a, b));
  });
}

// Backward, training or eval. x, y, gy, gx, gresidual: N*C*HW; the rest C.
template <int V, BnEpilogue ACT, bool TRAINING>
__global__ void __launch_bounds__(kMaxThreads, 2)
    bn_backward_kernel(Geom g, int64_t M, const float* __restrict__ x,
                       const float* __restrict__ y, const float* __restrict__ gy,
                       const float* __restrict__ gamma, const float* __restrict__ mean,
                       const float* __restrict__ invstd, float* __restrict__ gx,
                       float* __restrict__ ggamma, float* __restrict__ gbeta,
                       float* __restrict__ gresidual) {
  __shared__ double scratch[32];
  __shared__ double2 partial;
  const int64_t c = blockIdx.x;
  const float mu_f = mean[c];
  const double mu = static_cast<double>(mu_f), is = static_cast<double>(invstd[c]);
  const double gscale = (gamma ? static_cast<double>(gamma[c]) : 1.0) * is;  // gamma*invstd
  const float k = static_cast<float>(gscale);
  // The sums feed gx only in training; in eval only ggamma / gbeta need them (affine).
  const bool need_sums = TRAINING || (gamma != nullptr && (ggamma != nullptr || gbeta != nullptr));
  // Phase 1: g = the masked gradient (AddRelu: also gresidual), sums of g and g*(x - mean)
  // in double; in eval gx = g*gamma*invstd right away.
  double s_g = 0.0, s_gxc = 0.0;
  for_each_vec(g, [&](int64_t j) {
    const Pack<V> d = masked_grad<V, ACT>(gy, y, j);
    if constexpr (ACT == BnEpilogue::AddRelu) store<V>(gresidual, j, d);
    if (need_sums) {
      const Pack<V> xv = load<V>(x, j);
#pragma unroll
      for (int q = 0; q < V; ++q) {
        s_g += static_cast<double>(d.v[q]);
        s_gxc += static_cast<double>(d.v[q]) * (static_cast<double>(xv.v[q]) - mu);
      }
    }
    if constexpr (!TRAINING) {
      Pack<V> o;
#pragma unroll
      for (int q = 0; q < V; ++q) o.v[q] = d.v[q] * k;
      store<V>(gx, j, o);
    }
  });
  if (!need_sums) return;  // uniform over the grid: no block reaches the cluster barrier
  channel_sum2(s_g, s_gxc, scratch, &partial);
  // As the CPU: written only with affine (gamma); each only where its pointer is given.
  if (gamma && blockIdx.y == 0 && threadIdx.x == 0) {
    if (ggamma) ggamma[c] = static_cast<float>(s_gxc * is);  // sum g*xhat
    if (gbeta) gbeta[c] = static_cast<float>(s_g);
  }
  if constexpr (TRAINING) {
    // Phase 2: gx = gamma*invstd/M * (M*g - sum g - xhat * sum g*xhat), expanded as in
    // batchnorm_backward_cpu into gx = k*g + k2*(x - mean) + k0 with double constants.
    const double Md = static_cast<double>(M);
    const float k2 = static_cast<float>(-gscale * is * is * s_gxc / Md);
    const float k0 = static_cast<float>(-gscale * s_g / Md);
    for_each_vec(g, [&](int64_t j) {
      // AddRelu: g was stored in gresidual at this offset by this same thread in phase 1 (the
      // visiting order is the same), so reading it back saves the loads of y and gy.
      Pack<V> d;
      if constexpr (ACT == BnEpilogue::AddRelu)
        d = load<V>(gresidual, j);
      else
        d = masked_grad<V, ACT>(gy, y, j);
      const Pack<V> xv = load<V>(x, j);
      Pack<V> o;
#pragma unroll
      for (int q = 0; q < V; ++q) o.v[q] = k * d.v[q] + k2 * (xv.v[q] - mu_f) + k0;
      store<V>(gx, j, o);
    });
  }
}

// ---- launchers ---------------------------------------------------------------------------

/// Whether this process may launch the clusters of v2: a device of compute capability >= 9
/// running code compiled for >= sm_90 (PTX JIT-compiled from an older target has no cluster
/// code). Read once: the process is assumed to use one kind of GPU.
bool clusters_available() {
  static const bool ok = [] {
    cudaFuncAttributes fa{};
    int dev = 0, major = 0;
    if (cudaFuncGetAttributes(&fa, bn_backward_kernel<1, BnEpilogue::None, true>) !=
            cudaSuccess ||
        cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      cudaGetLastError();  // do not leave the error for the next check_launch
      return false;
    }
    return major >= 9 && fa.ptxVersion >= 90;
  }();
  return ok;
}

/// The launch shape: vector width, threads per block, blocks per channel, geometry.
struct Plan {
  int vec = 1;
  int threads = 64;
  int split = 1;  ///< K: blocks per channel (one cluster when > 1 and the kernel reduces)
  Geom g{};
};

bool aligned16(const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// @param ptrs the per-element (N*C*HW) pointers of the call; nullptr ones are ignored
/// @param may_split whether K > 1 is allowed (v2; clusters available when the kernel reduces)
Plan plan_for(const BatchNormShape& s, std::initializer_list<const float*> ptrs, bool may_split) {
  Plan p;
  bool vec = s.HW % 4 == 0;
  for (const float* q : ptrs) vec = vec && (q == nullptr || aligned16(q));
  p.vec = vec ? 4 : 1;
  p.g = {s.C, s.HW / p.vec, s.N * (s.HW / p.vec)};
  // Threads: enough for ~4 vectors per thread, a power of two in [64, 512].
  while (p.threads < kMaxThreads && p.threads * 4 < p.g.Mv) p.threads *= 2;
  // Blocks per channel: double while the grid stays within kTargetBlocks and every thread
  // keeps at least 4 vectors.
  if (may_split)
    while (p.split < kMaxCluster && s.C * p.split * 2 <= kTargetBlocks &&
           p.g.Mv >= int64_t{p.split} * 2 * p.threads * 4)
      p.split *= 2;
  return p;
}

/// Launches `kernel` on grid (C, K) x threads; with `cluster`, the K blocks of a channel form
/// one (1, K, 1) cluster.
template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), const Plan& p, bool cluster,
            cudaStream_t st, const A&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(p.g.C), static_cast<unsigned>(p.split), 1);
  cfg.blockDim = dim3(static_cast<unsigned>(p.threads), 1, 1);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = static_cast<unsigned>(p.split);
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = cluster && p.split > 1 ? 1 : 0;
  cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, args...);
  if (err != cudaSuccess && cfg.numAttrs > 0) {
    // A cluster that cannot be scheduled (e.g. a partitioned GPU): run as v1, one block per
    // channel, which needs no cluster and gives the same results up to rounding order.
    cudaGetLastError();
    cfg.gridDim.y = 1;
    cfg.numAttrs = 0;
    err = cudaLaunchKernelEx(&cfg, kernel, args...);
  }
  if (err != cudaSuccess) cudaGetLastError();  // reported here, not by a later check
  LETHE_CHECK(err == cudaSuccess, name, ": CUDA launch failed: ", cudaGetErrorString(err));
  check_launch(name, st);
}

void check_common(const char* op, const BatchNormShape& s, const CudaExec& e) {
  LETHE_CHECK(s.N >= 0 && s.C >= 0 && s.HW >= 0, op, ": negative shape N=", s.N, " C=", s.C,
              " HW=", s.HW);
  LETHE_CHECK(s.C <= 0x7fffffff, op, ": C=", s.C, " exceeds the grid limit");
  LETHE_CHECK(e.version >= 0 && e.version <= 2, op, ": unknown version ", e.version,
              " (1 = block per channel, 2 = cluster per channel)");
}

/// v2 (version 0 or 2) may split a channel over several blocks; v1 never does.
bool v2(const CudaExec& e) { return e.version != 1; }

// Picks the kernel instance for (vec, act) at run time: the templates are the cross product.
template <template <int, BnEpilogue> class K>
auto pick(int vec, BnEpilogue act) {
  switch (act) {
    case BnEpilogue::Relu:
      return vec == 4 ? K<4, BnEpilogue::Relu>::fn : K<1, BnEpilogue::Relu>::fn;
    case BnEpilogue::AddRelu:
      return vec == 4 ? K<4, BnEpilogue::AddRelu>::fn : K<1, BnEpilogue::AddRelu>::fn;
    default: return vec == 4 ? K<4, BnEpilogue::None>::fn : K<1, BnEpilogue::None>::fn;
  }
}
template <int V, BnEpilogue A>
struct TrainFwd {
  static constexpr auto fn = bn_forward_train_kernel<V, A>;
};
template <int V, BnEpilogue A>
struct EvalFwd {
  static constexpr auto fn = bn_forward_eval_kernel<V, A>;
};
template <int V, BnEpilogue A>
struct TrainBwd {
  static constexpr auto fn = bn_backward_kernel<V, A, true>;
};
template <int V, BnEpilogue A>
struct EvalBwd {
  static constexpr auto fn = bn_backward_kernel<V, A, false>;
};

}  // namespace

// ---- entry points --------------------------------------------------------------------------

void batchnorm_act_forward_train_cuda(const BatchNormShape& s, BnEpilogue act, const float* x,
                                      const float* gamma, const float* beta,
                                      const float* residual, float* running_mean,
                                      float* running_var, float momentum, float eps, float* y,
                                      float* save_mean, float* save_invstd, const CudaExec& e) {
  constexpr const char* op = "batchnorm_act_forward_train_cuda";
  check_common(op, s, e);
  LETHE_CHECK(act != BnEpilogue::AddRelu || residual != nullptr, op,
              ": AddRelu needs a residual");
  if (s.C == 0 || s.N * s.HW == 0) return;  // as the CPU: nothing to normalise
  const bool add = act == BnEpilogue::AddRelu;
  const bool cl = v2(e) && clusters_available();
  const Plan p = plan_for(s, {x, y, add ? residual : nullptr}, cl);
  launch("bn_forward_train_kernel", pick<TrainFwd>(p.vec, act), p, true, stream_of(e), p.g,
         s.N * s.HW, x, gamma, beta, add ? residual : nullptr, running_mean, running_var,
         momentum, eps, y, save_mean, save_invstd);
}

void batchnorm_act_forward_eval_cuda(const BatchNormShape& s, BnEpilogue act, const float* x,
                                     const float* gamma, const float* beta,
                                     const float* residual, const float* running_mean,
                                     const float* running_var, float eps, float* y,
                                     const CudaExec& e) {
  constexpr const char* op = "batchnorm_act_forward_eval_cuda";
  check_common(op, s, e);
  LETHE_CHECK(act != BnEpilogue::AddRelu || residual != nullptr, op,
              ": AddRelu needs a residual");
  if (s.C == 0 || s.N * s.HW == 0) return;
  const bool add = act == BnEpilogue::AddRelu;
  // No reduction: the blocks of a channel are independent and need no cluster.
  const Plan p = plan_for(s, {x, y, add ? residual : nullptr}, v2(e));
  launch("bn_forward_eval_kernel", pick<EvalFwd>(p.vec, act), p, false, stream_of(e), p.g, x,
         gamma, beta, add ? residual : nullptr, running_mean, running_var, eps, y);
}

void batchnorm_act_backward_cuda(const BatchNormShape& s, BnEpilogue act, bool training,
                                 const float* x, const float* y, const float* gy,
                                 const float* gamma, const float* mean, const float* invstd,
                                 float* gx, float* ggamma, float* gbeta, float* gresidual,
                                 const CudaExec& e) {
  constexpr const char* op = "batchnorm_act_backward_cuda";
  check_common(op, s, e);
  LETHE_CHECK(act == BnEpilogue::None || y != nullptr, op, ": a fused ReLU needs y");
  LETHE_CHECK(act != BnEpilogue::AddRelu || gresidual != nullptr, op,
              ": AddRelu needs gresidual");
  if (s.C == 0) return;
  // M == 0 still launches: the sums are 0 and ggamma / gbeta are written as on the CPU.
  const bool fused = act != BnEpilogue::None, add = act == BnEpilogue::AddRelu;
  const bool cl = v2(e) && clusters_available();
  const Plan p = plan_for(s, {x, gy, gx, fused ? y : nullptr, add ? gresidual : nullptr}, cl);
  auto kernel = training ? pick<TrainBwd>(p.vec, act) : pick<EvalBwd>(p.vec, act);
  launch("bn_backward_kernel", kernel, p, true, stream_of(e), p.g, s.N * s.HW, x,
         fused ? y : nullptr, gy, gamma, mean, invstd, gx, ggamma, gbeta,
         add ? gresidual : nullptr);
}

void batchnorm_forward_train_cuda(const BatchNormShape& s, const float* x, const float* gamma,
                                  const float* beta, float* running_mean, float* running_var,
                                  float momentum, float eps, float* y, float* save_mean,
                                  float* save_invstd, const CudaExec& e) {
  batchnorm_act_forward_train_cuda(s, BnEpilogue::None, x, gamma, beta, nullptr, running_mean,
                                   running_var, momentum, eps, y, save_mean, save_invstd, e);
}

void batchnorm_forward_eval_cuda(const BatchNormShape& s, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean,
                                 const float* running_var, float eps, float* y,
                                 const CudaExec& e) {
  batchnorm_act_forward_eval_cuda(s, BnEpilogue::None, x, gamma, beta, nullptr, running_mean,
                                  running_var, eps, y, e);
}

void batchnorm_backward_cuda(const BatchNormShape& s, bool training, const float* x,
                             const float* gy, const float* gamma, const float* mean,
                             const float* invstd, float* gx, float* ggamma, float* gbeta,
                             const CudaExec& e) {
  batchnorm_act_backward_cuda(s, BnEpilogue::None, training, x, nullptr, gy, gamma, mean,
                              invstd, gx, ggamma, gbeta, nullptr, e);
}

}  // namespace lethe::kernels
