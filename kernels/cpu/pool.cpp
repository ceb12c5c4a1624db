// Pooling on the CPU (formulas in kernels/pool.h): max and average pooling forward and
// backward over NCHW with a square window, stride and zero padding; global average pooling;
// and the plain-loop oracles (*_ref) at the bottom.
// Layout: every (n, c) pair is an independent H x W plane (x) mapped to a P x Q plane (y,
// argmax), so plane nc starts at nc*H*W in x and at nc*P*Q in y.
// Threading: one OpenMP `parallel for` over the N*C planes (static schedule), switched on
// above kParallelMin input elements. A plane belongs to one thread, so the scatter in the
// backward passes needs no atomics and the results do not depend on the thread count.
// Fast path vs oracle: the fast path clips each window to the image once per output row /
// column and runs dense loops over the clipped range; the oracle visits every tap of the
// window and tests it against the image bounds, in double for the averages.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lethe::kernels {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 15;

// The clipped window [lo, hi) along one axis for output index o: the taps that fall inside
// the image. Padded taps are simply outside the range, so they never win a max and add 0
// to an average.
struct Span {
  int64_t lo, hi;
};
inline Span clip(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t extent) {
  const int64_t start = o * stride - pad;
  return {std::max<int64_t>(start, 0), std::min<int64_t>(start + kernel, extent)};
}

// The max-pool winner rule shared by the fast path and the oracle: strictly greater wins, so
// the first maximum in row-major window order is kept on ties; a NaN beats any number (and
// the first NaN stays), so a NaN input propagates as in PyTorch.
template <typename T>
inline bool beats(T v, T best) {
  return v > best || (std::isnan(v) && !std::isnan(best));
}

}  // namespace

template <typename T>
void maxpool2d_forward_cpu(const PoolShape& s, const T* x, T* y, int32_t* argmax) {
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W, NC = s.N * s.C;
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* xp = x + nc * HW;
    T* yp = y + nc * P * Q;
    int32_t* ap = argmax + nc * P * Q;
    for (int64_t p = 0; p < P; ++p) {
      const Span hs = clip(p, s.stride, s.pad, s.kernel, s.H);
      for (int64_t q = 0; q < Q; ++q) {
        const Span ws = clip(q, s.stride, s.pad, s.kernel, s.W);
        // A window wholly in the padding (only possible when pad >= kernel, which the op
        // layer rejects) yields -inf and argmax -1, which backward skips.
        T best = -std::numeric_limits<T>::infinity();
        int64_t arg = -1;
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t w = ws.lo; w < ws.hi; ++w) {
            const T v = xp[h * s.W + w];
            if (arg < 0 || beats(v, best)) {
              best = v;
              arg = h * s.W + w;
            }
          }
        yp[p * Q + q] = best;
        ap[p * Q + q] = static_cast<int32_t>(arg);
      }
    }
  }
}

template <typename T>
void maxpool2d_backward_cpu(const PoolShape& s, const T* gy, const int32_t* argmax, T* gx) {
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W, NC = s.N * s.C;
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    T* gxp = gx + nc * HW;
    std::fill(gxp, gxp + HW, T(0));
    const T* gyp = gy + nc * PQ;
    const int32_t* ap = argmax + nc * PQ;
    // += rather than =: overlapping windows (stride < kernel) can pick the same input.
    for (int64_t o = 0; o < PQ; ++o)
      if (ap[o] >= 0) gxp[ap[o]] += gyp[o];
  }
}

template <typename T>
void avgpool2d_forward_cpu(const PoolShape& s, const T* x, T* y) {
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W, NC = s.N * s.C;
  // count_include_pad: the divisor is always kernel^2, padded taps count as zeros.
  const T inv_area = T(1) / static_cast<T>(s.kernel * s.kernel);
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* xp = x + nc * HW;
    T* yp = y + nc * P * Q;
    for (int64_t p = 0; p < P; ++p) {
      const Span hs = clip(p, s.stride, s.pad, s.kernel, s.H);
      for (int64_t q = 0; q < Q; ++q) {
        const Span ws = clip(q, s.stride, s.pad, s.kernel, s.W);
        T acc = T(0);
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t w = ws.lo; w < ws.hi; ++w) acc += xp[h * s.W + w];
        yp[p * Q + q] = acc * inv_area;
      }
    }
  }
}

template <typename T>
void avgpool2d_backward_cpu(const PoolShape& s, const T* gy, T* gx) {
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W, NC = s.N * s.C;
  const T inv_area = T(1) / static_cast<T>(s.kernel * s.kernel);
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    T* gxp = gx + nc * HW;
    std::fill(gxp, gxp + HW, T(0));
    const T* gyp = gy + nc * P * Q;
    // Scatter each output's share over its clipped window; the share of padded taps is
    // dropped (it belongs to no input).
    for (int64_t p = 0; p < P; ++p) {
      const Span hs = clip(p, s.stride, s.pad, s.kernel, s.H);
      for (int64_t q = 0; q < Q; ++q) {
        const Span ws = clip(q, s.stride, s.pad, s.kernel, s.W);
        const T share = gyp[p * Q + q] * inv_area;
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t w = ws.lo; w < ws.hi; ++w) gxp[h * s.W + w] += share;
      }
    }
  }
}

template <typename T>
void global_avgpool_forward_cpu(int64_t NC, int64_t HW, const T* x, T* y) {
  if (HW == 0) return;
  const double inv = 1.0 / static_cast<double>(HW);
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* xp = x + nc * HW;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < HW; ++i) acc += static_cast<double>(xp[i]);
    y[nc] = static_cast<T>(acc * inv);
  }
}

template <typename T>
void global_avgpool_backward_cpu(int64_t NC, int64_t HW, const T* gy, T* gx) {
  if (HW == 0) return;
  const T inv = T(1) / static_cast<T>(HW);
#pragma omp parallel for schedule(static) if (NC * HW >= kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T g = gy[nc] * inv;
    T* gxp = gx + nc * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) gxp[i] = g;
  }
}

// ---- oracles: every tap of every window, bounds tested per tap --------------------------

template <typename T>
void maxpool2d_forward_ref(const PoolShape& s, const T* x, T* y, int32_t* argmax) {
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t arg = -1;
        for (int64_t r = 0; r < s.kernel; ++r)
          for (int64_t t = 0; t < s.kernel; ++t) {
            const int64_t h = p * s.stride - s.pad + r, w = q * s.stride - s.pad + t;
            if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
            const T v = x[(nc * s.H + h) * s.W + w];
            if (arg < 0 || beats(v, best)) {
              best = v;
              arg = h * s.W + w;
            }
          }
        y[(nc * P + p) * Q + q] = best;
        argmax[(nc * P + p) * Q + q] = static_cast<int32_t>(arg);
      }
}

template <typename T>
void maxpool2d_backward_ref(const PoolShape& s, const T* gy, const int32_t* argmax, T* gx) {
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W;
  for (int64_t i = 0; i < s.N * s.C * HW; ++i) gx[i] = T(0);
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t o = 0; o < PQ; ++o) {
      const int32_t a = argmax[nc * PQ + o];
      if (a >= 0) gx[nc * HW + a] += gy[nc * PQ + o];
    }
}

template <typename T>
void avgpool2d_forward_ref(const PoolShape& s, const T* x, T* y) {
  const int64_t P = s.P(), Q = s.Q();
  const double area = static_cast<double>(s.kernel * s.kernel);
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        double acc = 0.0;
        for (int64_t r = 0; r < s.kernel; ++r)
          for (int64_t t = 0; t < s.kernel; ++t) {
            const int64_t h = p * s.stride - s.pad + r, w = q * s.stride - s.pad + t;
            if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
            acc += static_cast<double>(x[(nc * s.H + h) * s.W + w]);
          }
        y[(nc * P + p) * Q + q] = static_cast<T>(acc / area);
      }
}

template <typename T>
void avgpool2d_backward_ref(const PoolShape& s, const T* gy, T* gx) {
  const int64_t P = s.P(), Q = s.Q();
  const double area = static_cast<double>(s.kernel * s.kernel);
  for (int64_t i = 0; i < s.N * s.C * s.H * s.W; ++i) gx[i] = T(0);
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const double share = static_cast<double>(gy[(nc * P + p) * Q + q]) / area;
        for (int64_t r = 0; r < s.kernel; ++r)
          for (int64_t t = 0; t < s.kernel; ++t) {
            const int64_t h = p * s.stride - s.pad + r, w = q * s.stride - s.pad + t;
            if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
            T& g = gx[(nc * s.H + h) * s.W + w];
            g = static_cast<T>(static_cast<double>(g) + share);
          }
      }
}

#define LETHE_INSTANTIATE(T)                                                              \
  template void maxpool2d_forward_cpu<T>(const PoolShape&, const T*, T*, int32_t*);        \
  template void maxpool2d_backward_cpu<T>(const PoolShape&, const T*, const int32_t*, T*); \
  template void avgpool2d_forward_cpu<T>(const PoolShape&, const T*, T*);                  \
  template void avgpool2d_backward_cpu<T>(const PoolShape&, const T*, T*);                 \
  template void global_avgpool_forward_cpu<T>(int64_t, int64_t, const T*, T*);             \
  template void global_avgpool_backward_cpu<T>(int64_t, int64_t, const T*, T*);            \
  template void maxpool2d_forward_ref<T>(const PoolShape&, const T*, T*, int32_t*);        \
  template void maxpool2d_backward_ref<T>(const PoolShape&, const T*, const int32_t*, T*); \
  template void avgpool2d_forward_ref<T>(const PoolShape&, const T*, T*);                  \
  template void avgpool2d_backward_ref<T>(const PoolShape&, const T*, T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
