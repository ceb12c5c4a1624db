// Sparse conv2d (kernels/sparse/conv2d_sparse.cpp) against the dense plain-loop oracles run on
// w * mask: forward, backward-data and backward-weight (which must be exactly 0 off the
// pattern), at densities 50/10/5/1/0% (0: every row empty), on awkward shapes (odd sizes,
// batch 1, stride 2, 1x1 and 5x5 filters, many small images per task, image boundaries inside
// a chunk) and the ResNet-18 shapes, float and double; the pattern's CSR/CSC structure; and
// bit-identical repeats.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/conv2d.h"
#include "kernels/sparse/conv2d_sparse.h"
#include "kernels/sparse/conv2d_sparse_internal.h"
#include "testing/compare.h"

namespace {

using lethe::kernels::Conv2dShape;
using lethe::kernels::SparsePattern;
using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

Conv2dShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                 int64_t stride, int64_t pad) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = S, s.stride = stride, s.pad = pad;
  return s;
}

/// A seeded 0/1 mask with `density` of ones (exactly round(density * n) of them).
std::vector<uint8_t> random_mask(int64_t n, double density, uint32_t seed) {
  std::vector<uint8_t> m(static_cast<size_t>(n), 0);
  const int64_t ones = std::llround(density * static_cast<double>(n));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::shuffle(idx.begin(), idx.end(), std::mt19937(seed));
  for (int64_t i = 0; i < ones; ++i) m[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  return m;
}

template <typename T>
Tolerance tol_for(int64_t len) {
  const double e = 4.0 * std::numeric_limits<T>::epsilon() * static_cast<double>(len + 1);
  return {e, e};
}

template <typename T>
void check_against_masked_dense(const Conv2dShape& s, const std::vector<uint8_t>& mask,
                                uint32_t seed, const std::string& what) {
  const int64_t CRS = s.C * s.R * s.S, nx = s.N * s.C * s.H * s.W, ny = s.N * s.K * s.P() * s.Q();
  const auto x = random_vector<T>(nx, seed);
  const auto gy = random_vector<T>(ny, seed + 1);
  auto w = random_vector<T>(s.K * CRS, seed + 2);
  const auto bias = random_vector<T>(s.K, seed + 3);
  std::vector<T> wm(w.size());  // w * mask: what the dense kernels see
  for (size_t i = 0; i < w.size(); ++i) wm[i] = mask[i] ? w[i] : T(0);
  const SparsePattern pat = lethe::kernels::make_sparse_pattern(s.K, CRS, mask.data());
  const T nan = std::numeric_limits<T>::quiet_NaN();

  std::vector<T> ref(static_cast<size_t>(ny)), got(static_cast<size_t>(ny), nan);
  lethe::kernels::conv2d_forward_ref<T>(s, x.data(), wm.data(), bias.data(), ref.data());
  lethe::kernels::sparse_conv2d_forward_cpu<T>(s, pat, x.data(), w.data(), bias.data(), got.data());
  EXPECT_TRUE(all_close(ref, got, tol_for<T>(CRS), what + " forward"));

  std::vector<T> gx_ref(static_cast<size_t>(nx)), gx(static_cast<size_t>(nx), nan);
  lethe::kernels::conv2d_backward_data_ref<T>(s, gy.data(), wm.data(), gx_ref.data());
  lethe::kernels::sparse_conv2d_backward_data_cpu<T>(s, pat, gy.data(), w.data(), gx.data());
  EXPECT_TRUE(all_close(gx_ref, gx, tol_for<T>(s.K * s.R * s.S), what + " backward-data"));

  std::vector<T> gw_ref(w.size()), gb_ref(static_cast<size_t>(s.K));
  std::vector<T> gw(w.size(), nan), gb(static_cast<size_t>(s.K), nan);
  lethe::kernels::conv2d_backward_weight_ref<T>(s, x.data(), gy.data(), gw_ref.data(),
                                                gb_ref.data());
  for (size_t i = 0; i < gw_ref.size(); ++i) gw_ref[i] = mask[i] ? gw_ref[i] : T(0);
  lethe::kernels::sparse_conv2d_backward_weight_cpu<T>(s, pat, x.data(), gy.data(), gw.data(),
                                                       gb.data());
  EXPECT_TRUE(all_close(gw_ref, gw, tol_for<T>(s.N * s.P() * s.Q()), what + " backward-weight"));
  EXPECT_TRUE(all_close(gb_ref, gb, tol_for<T>(s.N * s.P() * s.Q()), what + " bias gradient"));
  for (size_t i = 0; i < gw.size(); ++i)
    if (!mask[i]) {
      ASSERT_EQ(gw[i], T(0)) << what << ": gradient at pruned weight " << i;
    }
}

template <typename T>
void check_against_masked_dense(const Conv2dShape& s, double density, uint32_t seed,
                                const std::string& what) {
  check_against_masked_dense<T>(s, random_mask(s.K * s.C * s.R * s.S, density, seed + 4), seed, what);
}

struct Case {
  const char* name;
  Conv2dShape s;
};

const Case kCases[] = {
    {"odd_3x3_pad1_batch1", make(1, 3, 7, 9, 5, 3, 3, 1, 1)},
    {"odd_3x3_stride2", make(2, 5, 9, 7, 6, 3, 3, 2, 1)},
    {"pointwise", make(3, 8, 5, 5, 7, 1, 1, 1, 0)},
    {"pointwise_stride2_shortcut", make(2, 6, 8, 8, 10, 1, 1, 2, 0)},
    {"5x5_pad2", make(2, 3, 6, 6, 4, 5, 5, 1, 2)},
    {"rect_filter_pad0", make(2, 4, 6, 7, 3, 3, 2, 1, 0)},
    {"many_small_images", make(9, 4, 3, 3, 5, 3, 3, 1, 1)},      // 9 positions: 8 images a task
    {"chunk_splits_images", make(5, 3, 5, 6, 4, 3, 3, 1, 1)},    // 30 positions per image
    {"band_of_one_image", make(1, 4, 17, 13, 3, 3, 3, 1, 1)},    // 221 positions: 4 chunks
    {"resnet_layer4_shape", make(2, 64, 4, 4, 64, 3, 3, 1, 1)},
    {"many_tasks_stride2", make(64, 4, 32, 32, 8, 3, 3, 2, 1)},
    {"many_tasks_flat", make(64, 8, 8, 8, 8, 3, 3, 1, 1)},
};

TEST(SparseConv2d, MatchesMaskedDenseAtEveryDensity) {
  uint32_t seed = 100;
  for (const Case& c : kCases)
    for (double d : {0.5, 0.1, 0.05, 0.01, 0.0}) {
      const std::string what = std::string(c.name) + " density " + std::to_string(d);
      check_against_masked_dense<float>(c.s, d, seed, what + " float");
      check_against_masked_dense<double>(c.s, d, seed, what + " double");
      seed += 7;
    }
}

TEST(SparseConv2d, FullDensityEqualsDense) {
  check_against_masked_dense<float>(make(2, 16, 8, 8, 16, 3, 3, 1, 1), 1.0, 5, "dense");
}

TEST(SparseConv2d, ResNet18Shapes) {
  // The 3x3 convs of each stage (width 0.25 channel counts) at batch 3, 5% dense.
  const Case shapes[] = {
      {"layer1", make(3, 16, 32, 32, 16, 3, 3, 1, 1)},
      {"layer2_down", make(3, 16, 32, 32, 32, 3, 3, 2, 1)},
      {"layer3", make(3, 64, 8, 8, 64, 3, 3, 1, 1)},
      {"layer4", make(3, 128, 4, 4, 128, 3, 3, 1, 1)},
  };
  uint32_t seed = 900;
  for (const Case& c : shapes) check_against_masked_dense<float>(c.s, 0.05, seed++, c.name);
}

#if defined(__AVX512F__)
TEST(SparseConv2d, TiledFormMatchesMaskedDense) {
  // Shapes and densities where the AVX-512 path stages inputs in tiles (tiled_spmm) for the
  // forward and backward-data products: sources not a multiple of the 64-source block, last
  // position blocks of 16, 32 and 48 positions in 64-wide tiles and 16, 96, 48 in 128-wide
  // ones (L = 400, 352, 304), a short last task, stride 2 (4 phase planes as rows), each at
  // both tile widths. Every case checks that the tiled form really ran.
  const Case shapes[] = {
      {"tail16", make(2, 24, 11, 13, 20, 3, 3, 1, 1)},
      {"tail32_two_images", make(3, 20, 11, 11, 24, 3, 3, 1, 1)},
      {"tail48_three_images", make(4, 40, 8, 8, 36, 3, 3, 1, 1)},
      {"stride2", make(2, 8, 12, 12, 64, 3, 3, 2, 1)},
  };
  uint32_t seed = 700;
  for (const Case& c : shapes)
    for (double d : {0.75, 0.5}) {
      const std::string what = std::string(c.name) + " density " + std::to_string(d);
      const int64_t CRS = c.s.C * c.s.R * c.s.S;
      const auto mask = random_mask(c.s.K * CRS, d, seed);
      const SparsePattern pat = lethe::kernels::make_sparse_pattern(c.s.K, CRS, mask.data());
      ASSERT_TRUE(lethe::kernels::sparse_detail::flat_ok(c.s)) << what;
      EXPECT_TRUE(lethe::kernels::sparse_detail::flat_forward_tiles(c.s, pat)) << what;
      EXPECT_TRUE(lethe::kernels::sparse_detail::flat_backward_data_tiles(c.s, pat)) << what;
      for (int64_t positions : {64, 128}) {
        lethe::kernels::sparse_detail::set_tile_positions(positions);
        check_against_masked_dense<float>(c.s, mask, seed, what + " tile " + std::to_string(positions));
      }
      lethe::kernels::sparse_detail::set_tile_positions(0);
      seed += 7;
    }
  // Rows empty in whole source blocks: even rows keep only the columns from 64 on (nothing in
  // the first block, which must still start their sums at 0), odd rows only the first 64.
  const Conv2dShape s16 = make(2, 16, 9, 10, 32, 3, 3, 1, 1);
  std::vector<uint8_t> blocks(static_cast<size_t>(32 * 144), 0);
  for (int64_t k = 0; k < 32; ++k)
    for (int64_t j = 0; j < 144; ++j) blocks[static_cast<size_t>(k * 144 + j)] = (k % 2 == 0) == (j >= 64);
  const SparsePattern pb = lethe::kernels::make_sparse_pattern(32, 144, blocks.data());
  EXPECT_TRUE(lethe::kernels::sparse_detail::flat_forward_tiles(s16, pb));
  EXPECT_TRUE(lethe::kernels::sparse_detail::flat_backward_data_tiles(s16, pb));
  check_against_masked_dense<float>(s16, blocks, 77, "rows empty in whole blocks");

  // Both block widths of the tiled form (128 positions where L1 is large, else 64) give the
  // same bits: the same sums in the same order.
  for (const Case& c : shapes) {
    const int64_t CRS = c.s.C * c.s.R * c.s.S;
    const auto mask = random_mask(c.s.K * CRS, 0.5, 31);
    const SparsePattern pat = lethe::kernels::make_sparse_pattern(c.s.K, CRS, mask.data());
    const auto x = random_vector<float>(c.s.N * c.s.C * c.s.H * c.s.W, 32);
    const auto w = random_vector<float>(c.s.K * CRS, 33);
    const auto gy = random_vector<float>(c.s.N * c.s.K * c.s.P() * c.s.Q(), 34);
    std::vector<float> y[2], gx[2];
    for (int i = 0; i < 2; ++i) {
      lethe::kernels::sparse_detail::set_tile_positions(i == 0 ? 64 : 128);
      y[i].resize(gy.size());
      gx[i].resize(x.size());
      lethe::kernels::sparse_conv2d_forward_cpu<float>(c.s, pat, x.data(), w.data(), nullptr,
                                                       y[i].data());
      lethe::kernels::sparse_conv2d_backward_data_cpu<float>(c.s, pat, gy.data(), w.data(),
                                                             gx[i].data());
    }
    lethe::kernels::sparse_detail::set_tile_positions(0);
    EXPECT_EQ(y[0], y[1]) << c.name;
    EXPECT_EQ(gx[0], gx[1]) << c.name;
  }

  // And the direct form below the threshold.
  const Conv2dShape s = make(2, 24, 11, 13, 20, 3, 3, 1, 1);
  const auto mask = random_mask(s.K * s.C * 9, 0.05, 1);
  const SparsePattern pat = lethe::kernels::make_sparse_pattern(s.K, s.C * 9, mask.data());
  EXPECT_FALSE(lethe::kernels::sparse_detail::flat_forward_tiles(s, pat));
  EXPECT_FALSE(lethe::kernels::sparse_detail::flat_backward_data_tiles(s, pat));
}
#endif

TEST(SparsePattern, CsrAndTransposeDescribeTheMask) {
  // 3 x 4 mask:  1 0 1 0 / 0 0 0 0 / 1 1 0 1
  const std::vector<uint8_t> m = {1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1};
  const SparsePattern p = lethe::kernels::make_sparse_pattern(3, 4, m.data());
  EXPECT_EQ(p.nnz(), 5);
  EXPECT_DOUBLE_EQ(p.density(), 5.0 / 12.0);
  EXPECT_EQ(p.row_ptr, (std::vector<int64_t>{0, 2, 2, 5}));
  EXPECT_EQ(p.col_idx, (std::vector<int32_t>{0, 2, 0, 1, 3}));
  EXPECT_EQ(p.t_ptr, (std::vector<int64_t>{0, 2, 3, 4, 5}));
  EXPECT_EQ(p.t_row, (std::vector<int32_t>{0, 2, 2, 0, 2}));
  EXPECT_EQ(p.t_src, (std::vector<int64_t>{0, 2, 3, 1, 4}));
}

TEST(SparseConv2d, RepeatedCallsAreBitIdentical) {
  const Conv2dShape s = make(4, 16, 8, 8, 32, 3, 3, 1, 1);
  const int64_t CRS = s.C * 9;
  const auto x = random_vector<float>(s.N * s.C * 64, 1);
  const auto gy = random_vector<float>(s.N * s.K * 64, 2);
  const auto w = random_vector<float>(s.K * CRS, 3);
  const auto mask = random_mask(s.K * CRS, 0.1, 4);
  const SparsePattern pat = lethe::kernels::make_sparse_pattern(s.K, CRS, mask.data());
  std::vector<float> a(w.size()), b(w.size());
  lethe::kernels::sparse_conv2d_backward_weight_cpu<float>(s, pat, x.data(), gy.data(), a.data(),
                                                           nullptr);
  lethe::kernels::sparse_conv2d_backward_weight_cpu<float>(s, pat, x.data(), gy.data(), b.data(),
                                                           nullptr);
  EXPECT_EQ(a, b);
}

template <typename T>
void check_fused_backward(const Conv2dShape& s, double density, uint32_t seed) {
  const int64_t CRS = s.C * s.R * s.S;
  const auto x = random_vector<T>(s.N * s.C * s.H * s.W, seed);
  const auto gy = random_vector<T>(s.N * s.K * s.P() * s.Q(), seed + 1);
  const auto w = random_vector<T>(s.K * CRS, seed + 2);
  const auto mask = random_mask(s.K * CRS, density, seed + 3);
  const SparsePattern pat = lethe::kernels::make_sparse_pattern(s.K, CRS, mask.data());
  std::vector<T> gx1(x.size()), gw1(w.size()), gb1(static_cast<size_t>(s.K));
  std::vector<T> gx2(x.size(), T(7)), gw2(w.size(), T(7)), gb2(static_cast<size_t>(s.K), T(7));
  lethe::kernels::sparse_conv2d_backward_data_cpu<T>(s, pat, gy.data(), w.data(), gx1.data());
  lethe::kernels::sparse_conv2d_backward_weight_cpu<T>(s, pat, x.data(), gy.data(), gw1.data(),
                                                       gb1.data());
  lethe::kernels::sparse_conv2d_backward_cpu<T>(s, pat, x.data(), gy.data(), w.data(), gx2.data(),
                                                gw2.data(), gb2.data());
  EXPECT_EQ(gx1, gx2);
  EXPECT_EQ(gw1, gw2);
  EXPECT_EQ(gb1, gb2);
}

TEST(SparseConv2d, FusedBackwardGivesTheBitsOfTheSeparateCalls) {
  // Stride 1 and 2, a short last task (5 images, 4 per task at 6x6), the tiled and the
  // direct forms, float (the AVX-512 path where built) and double (the im2col path).
  const Conv2dShape shapes[] = {make(3, 24, 11, 13, 20, 3, 3, 1, 1),
                                make(5, 16, 6, 6, 24, 3, 3, 1, 1),
                                make(2, 8, 12, 12, 32, 3, 3, 2, 1)};
  uint32_t seed = 900;
  for (const Conv2dShape& s : shapes)
    for (double d : {0.5, 0.05}) {
      check_fused_backward<float>(s, d, seed);
      check_fused_backward<double>(s, d, seed);
      seed += 11;
    }
}

TEST(SparseConv2d, PatternOfAnotherShapeIsRejected) {
  const std::vector<uint8_t> m(4 * 27, 1);
  const SparsePattern p = lethe::kernels::make_sparse_pattern(4, 27, m.data());
  const Conv2dShape s = make(1, 3, 5, 5, 5, 3, 3, 1, 1);  // K = 5, not 4
  std::vector<float> x(75), w(5 * 27), y(125);
  EXPECT_THROW(lethe::kernels::sparse_conv2d_forward_cpu<float>(s, p, x.data(), w.data(), nullptr,
                                                                y.data()),
               lethe::Error);
}

}  // namespace
