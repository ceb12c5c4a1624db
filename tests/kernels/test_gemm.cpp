// gemm_cpu (OpenBLAS) against gemm_ref (triple loop): all four transpose combinations,
// non-square shapes, leading dimensions wider than the rows they hold, alpha != 1, beta = 0
// over a C full of NaN (BLAS must not read it) and beta = 1 (accumulate), in float and double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "testing/compare.h"

namespace {

using lethe::testing::all_close;
using lethe::testing::random_vector;
using lethe::testing::Tolerance;

struct GemmCase {
  int64_t M, N, K;
  int64_t pad;  // extra columns in every leading dimension
};

template <typename T>
Tolerance tol_for(int64_t K) {
  // Error grows with the length of each dot product; inputs are in [-1, 1].
  const double eps = std::numeric_limits<T>::epsilon();
  return {4.0 * eps * static_cast<double>(K + 1), 4.0 * eps * static_cast<double>(K + 1)};
}

template <typename T>
void check_gemm(const GemmCase& g, bool ta, bool tb, T alpha, T beta, bool nan_c) {
  // Stored shapes: A is M x K (K x M when transposed), B is K x N (N x K when transposed).
  const int64_t a_rows = ta ? g.K : g.M, a_cols = ta ? g.M : g.K;
  const int64_t b_rows = tb ? g.N : g.K, b_cols = tb ? g.K : g.N;
  const int64_t lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.N + g.pad;
  const auto A = random_vector<T>(a_rows * lda, 11);
  const auto B = random_vector<T>(b_rows * ldb, 12);
  auto C0 = random_vector<T>(g.M * ldc, 13);
  if (nan_c) C0.assign(C0.size(), std::numeric_limits<T>::quiet_NaN());
  auto ref = C0, got = C0;
  lethe::kernels::gemm_ref<T>(ta, tb, g.M, g.N, g.K, alpha, A.data(), lda, B.data(), ldb, beta,
                              ref.data(), ldc);
  lethe::kernels::gemm_cpu<T>(ta, tb, g.M, g.N, g.K, alpha, A.data(), lda, B.data(), ldb, beta,
                              got.data(), ldc);
  // Compare only the M x N block; the padding columns must be left as they were.
  std::vector<T> ref_block, got_block, pad_before, pad_after;
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const int64_t e = i * ldc + j;
      if (j < g.N) {
        ref_block.push_back(ref[e]);
        got_block.push_back(got[e]);
      } else if (!nan_c) {
        pad_before.push_back(C0[e]);
        pad_after.push_back(got[e]);
      }
    }
  const std::string what = "gemm M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) +
                           " K=" + std::to_string(g.K) + " ta=" + std::to_string(ta) +
                           " tb=" + std::to_string(tb) + " beta=" + std::to_string(beta);
  EXPECT_TRUE(all_close(ref_block, got_block, tol_for<T>(g.K), what));
  EXPECT_TRUE(all_close(pad_before, pad_after, Tolerance{0, 0}, what + " (padding untouched)"));
}

template <typename T>
class GemmTest : public ::testing::Test {};
using GemmTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTest, GemmTypes);

const GemmCase kCases[] = {
    {1, 1, 1, 0},    {5, 3, 7, 0},       {37, 23, 19, 3},
    {64, 17, 130, 5}, {3, 100, 64, 1},   {150, 210, 170, 7},  // big enough to thread
};

TYPED_TEST(GemmTest, MatchesReferenceAllTransposesBetaZeroOverNaN) {
  using T = TypeParam;
  for (const auto& g : kCases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) check_gemm<T>(g, ta, tb, T(1.5), T(0), /*nan_c=*/true);
}

TYPED_TEST(GemmTest, MatchesReferenceAllTransposesBetaOne) {
  using T = TypeParam;
  for (const auto& g : kCases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) check_gemm<T>(g, ta, tb, T(1), T(1), /*nan_c=*/false);
}

TYPED_TEST(GemmTest, MatchesReferenceFractionalAlphaBeta) {
  using T = TypeParam;
  for (const auto& g : kCases) check_gemm<T>(g, true, false, T(-0.5), T(0.25), false);
}

TYPED_TEST(GemmTest, HandComputed) {
  using T = TypeParam;
  // [1 2 3; 4 5 6] * [7 8; 9 10; 11 12] = [58 64; 139 154]; with beta = 1 onto C = [1 1; 1 1].
  const std::vector<T> A = {1, 2, 3, 4, 5, 6}, B = {7, 8, 9, 10, 11, 12};
  std::vector<T> C = {1, 1, 1, 1};
  lethe::kernels::gemm_cpu<T>(false, false, 2, 2, 3, T(1), A.data(), 3, B.data(), 2, T(1),
                              C.data(), 2);
  EXPECT_TRUE(all_close(std::vector<T>{59, 65, 140, 155}, C, Tolerance{0, 0}, "gemm 2x3x2"));
  // The same product from A^T stored (3 x 2) and B^T stored (2 x 3), beta = 0.
  const std::vector<T> At = {1, 4, 2, 5, 3, 6}, Bt = {7, 9, 11, 8, 10, 12};
  lethe::kernels::gemm_cpu<T>(true, true, 2, 2, 3, T(1), At.data(), 2, Bt.data(), 3, T(0),
                              C.data(), 2);
  EXPECT_TRUE(all_close(std::vector<T>{58, 64, 139, 154}, C, Tolerance{0, 0}, "gemm^T 2x3x2"));
}

}  // namespace
