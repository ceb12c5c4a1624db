// conv2d oracles: the definitions in kernels/conv2d.h written as plain loops, one output
// element at a time, accumulating in double. They are slow on purpose and share no code
// with the fast path (kernels/cpu/conv2d.cpp): tests/kernels/test_conv2d.cpp checks the
// fast path against them.
//   forward:          y[n,k,p,q]  = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,h,w]
//   backward-data:    gx[n,c,h,w] = sum_{k,r,s} w[k,c,r,s] * gy[n,k,p,q]
//   backward-weight:  gw[k,c,r,s] = sum_{n,p,q} gy[n,k,p,q] * x[n,c,h,w],  gb[k] = sum gy[n,k,.,.]
// with h = p*stride + r - pad, w = q*stride + s - pad; positions outside the input are zero.
// Layouts: x NCHW, w KCRS, y/gy NKPQ.
#include <cstdint>

#include "kernels/check.h"
#include "kernels/conv2d.h"

namespace lethe::kernels {

namespace {

void check_ref_shape(const Conv2dShape& s, const char* op) {
  LETHE_CHECK(s.N >= 0 && s.C > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 &&
                  s.pad >= 0 && s.H + 2 * s.pad >= s.R && s.W + 2 * s.pad >= s.S,
              op, ": bad shape N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K,
              " R=", s.R, " S=", s.S, " stride=", s.stride, " pad=", s.pad);
}

}  // namespace

template <typename T>
void conv2d_forward_ref(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_ref_shape(s, "conv2d_forward_ref");
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double acc = bias ? static_cast<double>(bias[k]) : 0.0;
          for (int64_t c = 0; c < s.C; ++c)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t h = p * s.stride + r - s.pad, ww = q * s.stride + t - s.pad;
                if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;  // zero padding
                acc += static_cast<double>(w[((k * s.C + c) * s.R + r) * s.S + t]) *
                       static_cast<double>(x[((n * s.C + c) * s.H + h) * s.W + ww]);
              }
          y[((n * s.K + k) * P + p) * Q + q] = static_cast<T>(acc);
        }
}

template <typename T>
void conv2d_backward_data_ref(const Conv2dShape& s, const T* gy, const T* w, T* gx) {
  check_ref_shape(s, "conv2d_backward_data_ref");
  const int64_t P = s.P(), Q = s.Q();
  // Gather form: each input position collects every (k, r, s) tap whose output position
  // (p, q) lands on it; p = (h + pad - r) / stride must be whole and inside [0, P).
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t ww = 0; ww < s.W; ++ww) {
          double acc = 0.0;
          for (int64_t k = 0; k < s.K; ++k)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t ph = h + s.pad - r, qw = ww + s.pad - t;
                if (ph < 0 || qw < 0 || ph % s.stride != 0 || qw % s.stride != 0) continue;
                const int64_t p = ph / s.stride, q = qw / s.stride;
                if (p >= P || q >= Q) continue;
                acc += static_cast<double>(w[((k * s.C + c) * s.R + r) * s.S + t]) *
                       static_cast<double>(gy[((n * s.K + k) * P + p) * Q + q]);
              }
          gx[((n * s.C + c) * s.H + h) * s.W + ww] = static_cast<T>(acc);
        }
}

template <typename T>
void conv2d_backward_weight_ref(const Conv2dShape& s, const T* x, const T* gy, T* gw, T* gb) {
  check_ref_shape(s, "conv2d_backward_weight_ref");
  const int64_t P = s.P(), Q = s.Q();
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          double acc = 0.0;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t p = 0; p < P; ++p)
              for (int64_t q = 0; q < Q; ++q) {
                const int64_t h = p * s.stride + r - s.pad, ww = q * s.stride + t - s.pad;
                if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;
                acc += static_cast<double>(gy[((n * s.K + k) * P + p) * Q + q]) *
                       static_cast<double>(x[((n * s.C + c) * s.H + h) * s.W + ww]);
              }
          gw[((k * s.C + c) * s.R + r) * s.S + t] = static_cast<T>(acc);
        }
  if (gb == nullptr) return;
  for (int64_t k = 0; k < s.K; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t i = 0; i < P * Q; ++i) acc += static_cast<double>(gy[(n * s.K + k) * P * Q + i]);
    gb[k] = static_cast<T>(acc);
  }
}

#define LETHE_CONV2D_REF(T)                                                                  \
  template void conv2d_forward_ref<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data_ref<T>(const Conv2dShape&, const T*, const T*, T*);     \
  template void conv2d_backward_weight_ref<T>(const Conv2dShape&, const T*, const T*, T*, T*);
LETHE_CONV2D_REF(float)
LETHE_CONV2D_REF(double)
#undef LETHE_CONV2D_REF

}  // namespace lethe::kernels
