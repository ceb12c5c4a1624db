// conv2d fast path against the plain-loop oracles (kernels/cpu/conv2d_ref.cpp), for all three
// products. The fast path has two implementations: the AVX-512 one (conv2d_avx512.cpp) takes
// float shapes with Q == ceil(W/stride) and P*Q % 16 == 0 (the flat_* and ResNet18 cases
// below), the generic im2col + OpenBLAS one (conv2d.cpp) everything else and all doubles.
//   - a parameterised list of awkward shapes (odd H/W, batch 1, stride 2 and 3, pad 0/1/2,
//     C and K not multiples of 8, 1x1 stride 1 and 2, rectangular and 5x5 filters, images big
//     enough to be cut into row bands, many small images batched into one tile), with and
//     without bias, in float and double;
//   - every distinct ResNet-18 (CIFAR) conv shape at batch 2;
//   - hand-computed cases, and bit-identical results across repeated calls.
// Outputs are pre-filled with NaN: the kernels must overwrite every element, never accumulate.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "testing/compare.h"

namespace {

using lethe::kernels::Conv2dShape;
using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

struct ConvCase {
  const char* name;
  Conv2dShape s;
};

Conv2dShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                 int64_t stride, int64_t pad) {
  Conv2dShape s;
  s.N = N;
  s.C = C;
  s.H = H;
  s.W = W;
  s.K = K;
  s.R = R;
  s.S = S;
  s.stride = stride;
  s.pad = pad;
  return s;
}

std::string describe(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  return std::string(c.name) + " (N" + std::to_string(s.N) + " C" + std::to_string(s.C) + " H" +
         std::to_string(s.H) + " W" + std::to_string(s.W) + " K" + std::to_string(s.K) + " R" +
         std::to_string(s.R) + " S" + std::to_string(s.S) + " stride" +
         std::to_string(s.stride) + " pad" + std::to_string(s.pad) + ")";
}

// Named output when gtest prints a parameter (instead of a byte dump).
void PrintTo(const ConvCase& c, std::ostream* os) { *os << describe(c); }

// Tolerance from the length of the longest dot product; inputs are uniform in [-1, 1].
template <typename T>
Tolerance tol_for(int64_t len) {
  const double e = 4.0 * std::numeric_limits<T>::epsilon() * static_cast<double>(len + 1);
  return {e, e};
}

template <typename T>
std::vector<T> nans(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
}

// Runs fast and reference versions of all three products on seeded inputs and compares.
template <typename T>
void check_all_products(const ConvCase& c) {
  const Conv2dShape& s = c.s;
  const int64_t P = s.P(), Q = s.Q();
  const int64_t nx = s.N * s.C * s.H * s.W, nw = s.K * s.C * s.R * s.S, ny = s.N * s.K * P * Q;
  const auto x = random_vector<T>(nx, 101), w = random_vector<T>(nw, 102);
  const auto b = random_vector<T>(s.K, 103), gy = random_vector<T>(ny, 104);
  const std::string what = describe(c) + (sizeof(T) == 4 ? " float" : " double");

  {
    // One oracle run; the with-bias expectation adds b[k] to it.
    auto ref = nans<T>(ny), ref_bias = nans<T>(ny);
    lethe::kernels::conv2d_forward_ref<T>(s, x.data(), w.data(), nullptr, ref.data());
    for (int64_t i = 0; i < ny; ++i) ref_bias[i] = ref[i] + b[(i / (P * Q)) % s.K];
    for (bool with_bias : {true, false}) {
      auto got = nans<T>(ny);
      lethe::kernels::conv2d_forward_cpu<T>(s, x.data(), w.data(), with_bias ? b.data() : nullptr,
                                            got.data());
      EXPECT_TRUE(all_close(with_bias ? ref_bias : ref, got, tol_for<T>(s.C * s.R * s.S),
                            what + (with_bias ? " forward+bias" : " forward")));
    }
  }
  {
    auto ref = nans<T>(nx), got = nans<T>(nx);
    lethe::kernels::conv2d_backward_data_ref<T>(s, gy.data(), w.data(), ref.data());
    lethe::kernels::conv2d_backward_data_cpu<T>(s, gy.data(), w.data(), got.data());
    EXPECT_TRUE(all_close(ref, got, tol_for<T>(s.K * s.R * s.S), what + " backward-data"));
  }
  {
    auto gw_ref = nans<T>(nw), gb_ref = nans<T>(s.K);
    lethe::kernels::conv2d_backward_weight_ref<T>(s, x.data(), gy.data(), gw_ref.data(),
                                                  gb_ref.data());
    for (bool with_bias : {true, false}) {
      auto gw = nans<T>(nw), gb = nans<T>(s.K);
      lethe::kernels::conv2d_backward_weight_cpu<T>(s, x.data(), gy.data(), gw.data(),
                                                    with_bias ? gb.data() : nullptr);
      EXPECT_TRUE(all_close(gw_ref, gw, tol_for<T>(s.N * P * Q),
                            what + (with_bias ? " backward-weight+bias" : " backward-weight")));
      if (with_bias)
        EXPECT_TRUE(all_close(gb_ref, gb, tol_for<T>(s.N * P * Q), what + " backward-bias"));
      else  // gb == nullptr: nothing written anywhere near it
        EXPECT_TRUE(std::isnan(static_cast<double>(gb[0]))) << what;
    }
  }
}

class Conv2dShapes : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dShapes, FloatMatchesReference) { check_all_products<float>(GetParam()); }
TEST_P(Conv2dShapes, DoubleMatchesReference) { check_all_products<double>(GetParam()); }

// Shapes chosen to hit every branch of the fast path: row-band tiles (large images, last band
// short), multi-image tiles (small images), the im2col-free 1x1 stride-1 case, strided gathers.
INSTANTIATE_TEST_SUITE_P(
    Awkward, Conv2dShapes,
    ::testing::Values(ConvCase{"odd7x5_pad1", make(2, 3, 7, 5, 5, 3, 3, 1, 1)},
                      ConvCase{"odd7x5_stride2_pad0", make(2, 3, 7, 5, 5, 3, 3, 2, 0)},
                      ConvCase{"batch1_stride2_pad1", make(1, 4, 9, 6, 6, 3, 3, 2, 1)},
                      ConvCase{"shortcut_1x1_stride2", make(3, 5, 7, 7, 7, 1, 1, 2, 0)},
                      ConvCase{"pointwise_1x1", make(2, 6, 5, 3, 4, 1, 1, 1, 0)},
                      ConvCase{"pointwise_1x1_small_images", make(5, 8, 3, 3, 8, 1, 1, 1, 0)},
                      ConvCase{"rect_filter_2x3", make(2, 3, 6, 7, 5, 2, 3, 1, 0)},
                      ConvCase{"filter5x5_stride3_pad2", make(2, 2, 11, 9, 3, 5, 5, 3, 2)},
                      ConvCase{"pad_wider_than_half_filter", make(1, 2, 3, 4, 3, 3, 3, 1, 2)},
                      ConvCase{"3x3_stride2_even", make(3, 8, 8, 8, 16, 3, 3, 2, 1)},
                      ConvCase{"large_image_row_bands", make(1, 3, 37, 29, 5, 3, 3, 1, 1)},
                      ConvCase{"large_images_batch3", make(3, 2, 33, 31, 3, 3, 3, 1, 1)},
                      ConvCase{"many_small_images", make(9, 16, 4, 4, 12, 3, 3, 1, 1)},
                      ConvCase{"small_images_stride2", make(7, 5, 5, 5, 9, 3, 3, 2, 1)},
                      // PQ % 16 == 0 and Q == ceil(W / stride): the AVX-512 float path.
                      ConvCase{"flat_4x4_pad1", make(3, 3, 4, 4, 5, 3, 3, 1, 1)},
                      ConvCase{"flat_odd_h_5x16", make(2, 3, 5, 16, 11, 3, 3, 1, 1)},
                      ConvCase{"flat_stride2_odd_w31", make(3, 3, 7, 31, 5, 3, 3, 2, 1)},
                      ConvCase{"flat_1x1_stride2", make(3, 5, 8, 8, 7, 1, 1, 2, 0)},
                      ConvCase{"flat_5x5_stride2_pad2", make(2, 3, 9, 32, 6, 5, 5, 2, 2)},
                      ConvCase{"flat_5x5_pad2", make(2, 2, 6, 16, 3, 5, 5, 1, 2)},
                      // backward-data through the forward kernel (stride 1, K <= 64, C >= 8)
                      ConvCase{"w025_layer1_16to16", make(3, 16, 32, 32, 16, 3, 3, 1, 1)},
                      ConvCase{"data_as_forward_5x5", make(2, 8, 6, 16, 12, 5, 5, 1, 2)}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

// Every distinct ResNet-18 CIFAR conv shape (width 1.0) at batch 2.
INSTANTIATE_TEST_SUITE_P(
    ResNet18, Conv2dShapes,
    ::testing::Values(ConvCase{"stem_3to64_h32", make(2, 3, 32, 32, 64, 3, 3, 1, 1)},
                      ConvCase{"layer1_64to64_h32", make(2, 64, 32, 32, 64, 3, 3, 1, 1)},
                      ConvCase{"layer2_64to128_s2_h32", make(2, 64, 32, 32, 128, 3, 3, 2, 1)},
                      ConvCase{"layer2_128to128_h16", make(2, 128, 16, 16, 128, 3, 3, 1, 1)},
                      ConvCase{"layer2_shortcut_64to128", make(2, 64, 32, 32, 128, 1, 1, 2, 0)},
                      ConvCase{"layer3_128to256_s2_h16", make(2, 128, 16, 16, 256, 3, 3, 2, 1)},
                      ConvCase{"layer3_256to256_h8", make(2, 256, 8, 8, 256, 3, 3, 1, 1)},
                      ConvCase{"layer3_shortcut_128to256", make(2, 128, 16, 16, 256, 1, 1, 2, 0)},
                      ConvCase{"layer4_256to512_s2_h8", make(2, 256, 8, 8, 512, 3, 3, 2, 1)},
                      ConvCase{"layer4_512to512_h4", make(2, 512, 4, 4, 512, 3, 3, 1, 1)},
                      ConvCase{"layer4_shortcut_256to512", make(2, 256, 8, 8, 512, 1, 1, 2, 0)}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

// Batches big enough for several backward-weight tiles: the stride-2 path once read every
// tile's phase planes from the first image's (found by the sparse-vs-dense training test).
INSTANTIATE_TEST_SUITE_P(
    ManyTiles, Conv2dShapes,
    ::testing::Values(ConvCase{"s2_narrow_batch16", make(16, 4, 32, 32, 8, 3, 3, 2, 1)},
                      ConvCase{"s2_layer2_batch8", make(8, 64, 32, 32, 128, 3, 3, 2, 1)},
                      ConvCase{"s2_layer3_batch16", make(16, 32, 16, 16, 64, 3, 3, 2, 1)}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

// ---- hand-computed cases ----------------------------------------------------------------

template <typename T>
class Conv2dHand : public ::testing::Test {};
using ConvTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Conv2dHand, ConvTypes);

// x = [1 2 3; 4 5 6; 7 8 9] (1x1x3x3), w = [1 2; 3 4] (1x1x2x2), stride 1, no padding.
TYPED_TEST(Conv2dHand, TwoByTwoFilterOnThreeByThree) {
  using T = TypeParam;
  const Conv2dShape s = make(1, 1, 3, 3, 1, 2, 2, 1, 0);
  const std::vector<T> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {1, 2, 3, 4}, b = {0.5};
  // y[p,q] = sum_{r,s} w[r,s] x[p+r,q+s]: y[0,0] = 1*1 + 2*2 + 3*4 + 4*5 = 37, then 47, 67, 77.
  auto y = nans<T>(4);
  lethe::kernels::conv2d_forward_cpu<T>(s, x.data(), w.data(), b.data(), y.data());
  EXPECT_TRUE(all_close(std::vector<T>{37.5, 47.5, 67.5, 77.5}, y, Tolerance{0, 0}, "forward"));

  // gy = [1 2; 3 4]: gx[h,w] = sum_{p,q} gy[p,q] w[h-p,w-q] ("full" correlation with w).
  const std::vector<T> gy = {1, 2, 3, 4};
  auto gx = nans<T>(9);
  lethe::kernels::conv2d_backward_data_cpu<T>(s, gy.data(), w.data(), gx.data());
  EXPECT_TRUE(all_close(std::vector<T>{1, 4, 4, 6, 20, 16, 9, 24, 16}, gx, Tolerance{0, 0},
                        "backward-data"));

  // gw[r,s] = sum_{p,q} gy[p,q] x[p+r,q+s] = [37 47; 67 77]; gb = 1+2+3+4 = 10.
  auto gw = nans<T>(4), gb = nans<T>(1);
  lethe::kernels::conv2d_backward_weight_cpu<T>(s, x.data(), gy.data(), gw.data(), gb.data());
  EXPECT_TRUE(all_close(std::vector<T>{37, 47, 67, 77}, gw, Tolerance{0, 0}, "backward-weight"));
  EXPECT_TRUE(all_close(std::vector<T>{10}, gb, Tolerance{0, 0}, "backward-bias"));
}

// The shortcut: 1x1 filter w = 2, stride 2 on the same 3x3 image reads the four corners.
TYPED_TEST(Conv2dHand, PointwiseStrideTwo) {
  using T = TypeParam;
  const Conv2dShape s = make(1, 1, 3, 3, 1, 1, 1, 2, 0);
  const std::vector<T> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {2};
  auto y = nans<T>(4);
  lethe::kernels::conv2d_forward_cpu<T>(s, x.data(), w.data(), nullptr, y.data());
  EXPECT_TRUE(all_close(std::vector<T>{2, 6, 14, 18}, y, Tolerance{0, 0}, "forward"));

  // Skipped input pixels get no gradient.
  const std::vector<T> gy = {1, 2, 3, 4};
  auto gx = nans<T>(9);
  lethe::kernels::conv2d_backward_data_cpu<T>(s, gy.data(), w.data(), gx.data());
  EXPECT_TRUE(all_close(std::vector<T>{2, 0, 4, 0, 0, 0, 6, 0, 8}, gx, Tolerance{0, 0},
                        "backward-data"));

  // gw = 1*1 + 2*3 + 3*7 + 4*9 = 64.
  auto gw = nans<T>(1), gb = nans<T>(1);
  lethe::kernels::conv2d_backward_weight_cpu<T>(s, x.data(), gy.data(), gw.data(), gb.data());
  EXPECT_TRUE(all_close(std::vector<T>{64}, gw, Tolerance{0, 0}, "backward-weight"));
  EXPECT_TRUE(all_close(std::vector<T>{10}, gb, Tolerance{0, 0}, "backward-bias"));
}

// Padding 1 around a 2x2 image with a 3x3 all-ones filter: each output sums its neighbours
// inside the image, here every pixel (1+2+3+4 = 10), and each input feeds all 4 outputs.
TYPED_TEST(Conv2dHand, PaddedThreeByThreeOnes) {
  using T = TypeParam;
  const Conv2dShape s = make(1, 1, 2, 2, 1, 3, 3, 1, 1);
  const std::vector<T> x = {1, 2, 3, 4}, w(9, T(1)), ones(4, T(1));
  auto y = nans<T>(4);
  lethe::kernels::conv2d_forward_cpu<T>(s, x.data(), w.data(), nullptr, y.data());
  EXPECT_TRUE(all_close(std::vector<T>{10, 10, 10, 10}, y, Tolerance{0, 0}, "forward"));
  auto gx = nans<T>(4);
  lethe::kernels::conv2d_backward_data_cpu<T>(s, ones.data(), w.data(), gx.data());
  EXPECT_TRUE(all_close(std::vector<T>{4, 4, 4, 4}, gx, Tolerance{0, 0}, "backward-data"));
  // gw[r,s] with gy = 1: sum_{p,q} x[p+r-1, q+s-1]. Tap row 0 only reaches image row 0 (from
  // p = 1), row 2 only image row 1, row 1 both; likewise for columns. So the corner taps see
  // one pixel (x[0,0] = 1 for tap (0,0)), the edge taps two, the centre all four.
  auto gw = nans<T>(9);
  lethe::kernels::conv2d_backward_weight_cpu<T>(s, x.data(), ones.data(), gw.data(), nullptr);
  EXPECT_TRUE(all_close(std::vector<T>{1, 3, 2, 4, 10, 6, 3, 7, 4}, gw, Tolerance{0, 0},
                        "backward-weight"));
}

// ---- determinism -------------------------------------------------------------------------

template <typename T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Two calls on the same inputs, with another shape in between to disturb the reused
// workspace, must agree to the bit (thread count unchanged).
TEST(Conv2dDeterminism, RepeatedCallsAreBitIdentical) {
  const Conv2dShape shapes[] = {make(4, 128, 16, 16, 128, 3, 3, 1, 1),  // row-band tiles
                                make(8, 256, 4, 4, 64, 3, 3, 1, 1),     // multi-image tiles
                                make(4, 32, 32, 32, 16, 1, 1, 2, 0)};   // strided 1x1
  const Conv2dShape other = make(3, 7, 9, 11, 5, 3, 3, 2, 1);
  for (const Conv2dShape& s : shapes) {
    const int64_t nx = s.N * s.C * s.H * s.W, nw = s.K * s.C * s.R * s.S,
                  ny = s.N * s.K * s.P() * s.Q();
    const auto x = random_vector<float>(nx, 7), w = random_vector<float>(nw, 8);
    const auto b = random_vector<float>(s.K, 9), gy = random_vector<float>(ny, 10);
    std::vector<float> y[2], gx[2], gw[2], gb[2];
    for (int rep = 0; rep < 2; ++rep) {
      y[rep] = nans<float>(ny);
      gx[rep] = nans<float>(nx);
      gw[rep] = nans<float>(nw);
      gb[rep] = nans<float>(s.K);
      lethe::kernels::conv2d_forward_cpu<float>(s, x.data(), w.data(), b.data(), y[rep].data());
      lethe::kernels::conv2d_backward_data_cpu<float>(s, gy.data(), w.data(), gx[rep].data());
      lethe::kernels::conv2d_backward_weight_cpu<float>(s, x.data(), gy.data(), gw[rep].data(),
                                                        gb[rep].data());
      // A different shape between the two repetitions.
      const auto ox = random_vector<float>(other.N * other.C * other.H * other.W, 1);
      const auto ow = random_vector<float>(other.K * other.C * other.R * other.S, 2);
      std::vector<float> oy(other.N * other.K * other.P() * other.Q());
      lethe::kernels::conv2d_forward_cpu<float>(other, ox.data(), ow.data(), nullptr, oy.data());
    }
    const std::string what = describe(ConvCase{"determinism", s});
    EXPECT_TRUE(bit_equal(y[0], y[1])) << what << " forward";
    EXPECT_TRUE(bit_equal(gx[0], gx[1])) << what << " backward-data";
    EXPECT_TRUE(bit_equal(gw[0], gw[1])) << what << " backward-weight";
    EXPECT_TRUE(bit_equal(gb[0], gb[1])) << what << " backward-bias";
  }
}

// No images: nothing to compute, but the weight and bias gradients are empty sums, zeros.
TEST(Conv2dEdges, EmptyBatchGivesZeroWeightGradient) {
  for (const Conv2dShape& s : {make(0, 16, 16, 16, 8, 3, 3, 1, 1),    // AVX-512 path
                               make(0, 3, 7, 5, 5, 3, 3, 2, 1)}) {  // generic path
    const int64_t nw = s.K * s.C * s.R * s.S;
    auto gw = nans<float>(nw), gb = nans<float>(s.K);
    std::vector<float> none(1);
    lethe::kernels::conv2d_backward_weight_cpu<float>(s, none.data(), none.data(), gw.data(),
                                                      gb.data());
    EXPECT_TRUE(all_close(std::vector<float>(nw, 0.f), gw, Tolerance{0, 0}, "gw, N = 0"));
    EXPECT_TRUE(all_close(std::vector<float>(s.K, 0.f), gb, Tolerance{0, 0}, "gb, N = 0"));
    lethe::kernels::conv2d_forward_cpu<float>(s, none.data(), gw.data(), nullptr, none.data());
    lethe::kernels::conv2d_backward_data_cpu<float>(s, none.data(), gw.data(), none.data());
  }
}

TEST(Conv2dErrors, RejectsBadShapes) {
  std::vector<float> buf(64);
  const Conv2dShape too_small = make(1, 1, 2, 2, 1, 3, 3, 1, 0);  // filter larger than input
  EXPECT_THROW(lethe::kernels::conv2d_forward_cpu<float>(too_small, buf.data(), buf.data(),
                                                         nullptr, buf.data()),
               lethe::Error);
  const Conv2dShape zero_stride = make(1, 1, 4, 4, 1, 3, 3, 0, 1);
  EXPECT_THROW(lethe::kernels::conv2d_backward_data_cpu<float>(zero_stride, buf.data(),
                                                               buf.data(), buf.data()),
               lethe::Error);
}

}  // namespace
