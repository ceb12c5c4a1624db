// gemm_cuda (kernels/cuda/gemm.cu) against gemm_ref in double on the same float inputs: every
// version x every transpose combination, on the ResNet-18 CIFAR conv GEMMs as im2col
// products at batch 32 (stem, layer2, layer4), the classifier (512 -> 10 at batch 256) and
// awkward shapes (1x1x1, sizes just past a tile, M = 1, N = 1, padded leading dimensions,
// base pointers off 16-byte alignment); beta = 0 over a poisoned C, alpha/beta other than
// (1, 0), K = 0, M or N = 0, a problem taller than one grid, bad arguments, a non-default
// stream, bitwise repeatability, and that FP32 mode is fp32: at K = 4608 it meets kFp32Tol,
// which a simulated TF32 product of the same inputs fails.
// Inputs are uniform in +-K^(-1/4), so every output has a standard deviation of about 1/3
// whatever K (like a layer with fan-in scaled weights): the absolute + relative tolerances of
// cuda_harness.h then mean the same for every shape.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/check.h"
#include "kernels/gemm.h"
#include "testing/cuda_harness.h"

namespace {

using lethe::kernels::CudaExec;
using lethe::kernels::CudaMath;
using lethe::kernels::gemm_cuda;
using lethe::kernels::Stream;
using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::kTf32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;
using lethe::testing::Tolerance;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Shape {
  int64_t M, N, K;
  int64_t pad = 0;     // extra columns in every leading dimension
  int64_t offset = 0;  // floats before each matrix in its buffer (1: not 16-byte aligned)
};

struct Mode {
  int version;
  CudaMath math;
  Tolerance tol;
};
// Every version under the math mode it may run in; 0 is each mode's default (v2, v3).
const Mode kModes[] = {
    {0, CudaMath::FP32, kFp32Tol}, {1, CudaMath::FP32, kFp32Tol}, {2, CudaMath::FP32, kFp32Tol},
    {0, CudaMath::TF32, kTf32Tol}, {3, CudaMath::TF32, kTf32Tol},
};

std::string describe(const Shape& s, bool ta, bool tb, const Mode& m, float alpha, float beta) {
  std::ostringstream os;
  os << "gemm_cuda " << lethe::kernels::gemm_cuda_version_name(m.version)
     << (m.math == CudaMath::TF32 ? " (TF32)" : " (FP32)") << " M=" << s.M << " N=" << s.N
     << " K=" << s.K << " ta=" << ta << " tb=" << tb << " alpha=" << alpha << " beta=" << beta
     << " pad=" << s.pad << " offset=" << s.offset;
  return os.str();
}

/// One problem in logical form: op(A) M x K row-major, op(B) kept transposed (N x K) so the
/// reference reads both contiguously, and the initial C (M x ldc).
struct Problem {
  Shape s;
  int64_t ldc;
  std::vector<float> a, bt, c0;
};

Problem make_problem(const Shape& s, uint32_t seed) {
  const double r = s.K > 0 ? std::pow(static_cast<double>(s.K), -0.25) : 1.0;
  Problem p{s, s.N + s.pad, random_vector<float>(s.M * s.K, seed, -r, r),
            random_vector<float>(s.N * s.K, seed + 1, -r, r), {}};
  p.c0 = random_vector<float>(s.M * p.ldc, seed + 2);
  return p;
}

/// gemm_ref in double on bands of rows, one band per core (the big shapes are ~1e9
/// multiply-adds): the M x ldc matrix alpha * a * bt^T + beta * c0.
std::vector<double> reference(const Problem& p, const std::vector<float>& a,
                              const std::vector<float>& bt, double alpha, double beta) {
  const Shape& s = p.s;
  std::vector<double> c(p.c0.begin(), p.c0.end());
  if (s.M == 0) return c;
  const std::vector<double> ad(a.begin(), a.end()), btd(bt.begin(), bt.end());
  const int64_t cores = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
  const int64_t band = (s.M + cores - 1) / cores;
  std::vector<std::thread> pool;
  for (int64_t m0 = 0; m0 < s.M; m0 += band)
    pool.emplace_back([&, m0] {
      lethe::kernels::gemm_ref<double>(false, true, std::min(band, s.M - m0), s.N, s.K, alpha,
                                       ad.data() + m0 * s.K, s.K, btd.data(), s.K, beta,
                                       c.data() + m0 * p.ldc, p.ldc);
    });
  for (auto& t : pool) t.join();
  return c;
}

/// op(A) as gemm_cuda reads it: M x K, or K x M when transposed. Padding columns and the
/// offset prefix hold NaN, so a kernel reading outside the matrix poisons its result.
std::vector<float> store_a(const Problem& p, bool ta, int64_t* lda) {
  const Shape& s = p.s;
  const int64_t rows = ta ? s.K : s.M;
  *lda = (ta ? s.M : s.K) + s.pad;
  std::vector<float> v(s.offset + rows * *lda, kNaN);
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t k = 0; k < s.K; ++k)
      v[s.offset + (ta ? k * *lda + i : i * *lda + k)] = p.a[i * s.K + k];
  return v;
}
/// op(B) as gemm_cuda reads it: K x N, or N x K when transposed; NaN outside, as store_a.
std::vector<float> store_b(const Problem& p, bool tb, int64_t* ldb) {
  const Shape& s = p.s;
  const int64_t rows = tb ? s.N : s.K;
  *ldb = (tb ? s.K : s.N) + s.pad;
  std::vector<float> v(s.offset + rows * *ldb, kNaN);
  for (int64_t j = 0; j < s.N; ++j)
    for (int64_t k = 0; k < s.K; ++k)
      v[s.offset + (tb ? j * *ldb + k : k * *ldb + j)] = p.bt[j * s.K + k];
  return v;
}

/// C's buffer before the call: all 0xFF bytes (NaN, what DeviceBuffer::poison writes) when
/// beta == 0, else a NaN prefix then c0.
std::vector<float> c_before(const Problem& p, float beta) {
  if (beta == 0.f) {
    std::vector<float> v(p.s.offset + p.s.M * p.ldc);
    std::memset(v.data(), 0xFF, v.size() * sizeof(float));
    return v;
  }
  std::vector<float> v(p.s.offset, kNaN);
  v.insert(v.end(), p.c0.begin(), p.c0.end());
  return v;
}

/// Runs gemm_cuda on device copies of the stored operands; returns C's whole buffer.
std::vector<float> run_gemm(const Problem& p, const DeviceBuffer<float>& dA, int64_t lda,
                            const DeviceBuffer<float>& dB, int64_t ldb, bool ta, bool tb,
                            const Mode& m, float alpha, float beta, Stream stream = nullptr) {
  const Shape& s = p.s;
  const std::vector<float> before = c_before(p, beta);
  DeviceBuffer<float> dC(before);
  if (beta == 0.f) dC.poison();
  gemm_cuda(ta, tb, s.M, s.N, s.K, alpha, dA.get() + s.offset, lda, dB.get() + s.offset, ldb,
            beta, dC.get() + s.offset, p.ldc, CudaExec{stream, m.version, m.math});
  return dC.to_host();
}

/// The M x N block of got within tol of ref, and every other element of C's buffer (padding
/// columns, the offset prefix) bit for bit as it was before the call.
void expect_result(const Problem& p, const std::vector<double>& ref,
                   const std::vector<float>& before, const std::vector<float>& got,
                   Tolerance tol, const std::string& what) {
  const Shape& s = p.s;
  std::vector<double> ref_block;
  std::vector<float> got_block;
  ref_block.reserve(s.M * s.N);
  got_block.reserve(s.M * s.N);
  int64_t touched = 0;
  for (int64_t e = 0; e < static_cast<int64_t>(got.size()); ++e) {
    const int64_t rel = e - s.offset;
    if (rel >= 0 && rel % p.ldc < s.N) {
      ref_block.push_back(ref[rel]);
      got_block.push_back(got[e]);
    } else if (std::memcmp(&before[e], &got[e], sizeof(float)) != 0) {
      ++touched;
    }
  }
  EXPECT_TRUE(all_close(ref_block, got_block, tol, what));
  EXPECT_EQ(touched, 0) << what << ": elements outside C's M x N block were written";
}

/// Every transpose combination x every mode on one shape.
void check_shape(const Shape& s, float alpha, float beta, uint32_t seed = 7) {
  const Problem p = make_problem(s, seed);
  const std::vector<double> ref = reference(p, p.a, p.bt, alpha, beta);
  const std::vector<float> before = c_before(p, beta);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      int64_t lda = 0, ldb = 0;
      const DeviceBuffer<float> dA(store_a(p, ta, &lda)), dB(store_b(p, tb, &ldb));
      for (const Mode& m : kModes) {
        const auto got = run_gemm(p, dA, lda, dB, ldb, ta, tb, m, alpha, beta);
        expect_result(p, ref, before, got, m.tol, describe(s, ta, tb, m, alpha, beta));
      }
    }
}

bool fits_small(const Shape& s) { return s.M <= 128 && s.N <= 128 && s.K <= 128; }

/// The parity shapes; under LETHE_TEST_SMALL only those <= 128 in every dimension.
std::vector<Shape> parity_shapes() {
  const std::vector<Shape> all = {
      {1, 1, 1},
      {7, 13, 5, 1},
      {1, 100, 70},         // M = 1
      {100, 1, 70, 2},      // N = 1
      {33, 40, 17, 3},
      {64, 64, 64, 0, 1},   // vector-friendly sizes, misaligned bases: the scalar paths
      {128, 128, 128},      // exactly one tile: the float4 paths everywhere
      {16, 128, 8},
      {129, 65, 33},        // one past a tile in M
      {257, 300, 129, 5, 1},
      {256, 10, 512},       // linear 512 -> 10 at batch 256
      {64, 32768, 27},      // stem 3x3 3 -> 64 at batch 32: K = 3*9, N = 32*32*32
      {128, 8192, 1152},    // layer2 3x3 128 -> 128 at batch 32: K = 128*9, N = 32*16*16
      {512, 512, 4608},     // layer4 3x3 512 -> 512 at batch 32: K = 512*9, N = 32*4*4
  };
  std::vector<Shape> out;
  for (const Shape& s : all)
    if (!small_shapes_only() || fits_small(s)) out.push_back(s);
  return out;
}

TEST(GemmCuda, AllVersionsAllTransposesBetaZeroOverPoison) {
  LETHE_REQUIRE_GPU();
  for (const Shape& s : parity_shapes()) check_shape(s, 1.f, 0.f);
}

TEST(GemmCuda, AlphaBeta) {
  LETHE_REQUIRE_GPU();
  const struct {
    float alpha, beta;
  } cases[] = {{-0.5f, 0.25f}, {1.f, 1.f}, {1.5f, 0.f}};
  const std::vector<Shape> shapes = {{7, 13, 5, 1}, {33, 40, 17, 3}, {64, 64, 64, 0, 1},
                                     {128, 128, 128}};
  for (const auto& c : cases)
    for (const Shape& s : shapes) check_shape(s, c.alpha, c.beta, 21);
  if (!small_shapes_only()) {
    check_shape({129, 65, 33}, -0.5f, 0.25f, 22);
    check_shape({256, 10, 512}, 2.f, -1.f, 23);
  }
}

TEST(GemmCuda, HandComputedExactInEveryMode) {
  LETHE_REQUIRE_GPU();
  // [1 2 3; 4 5 6] * [7 8; 9 10; 11 12] = [58 64; 139 154]: small integers are exact in TF32
  // and every partial sum is exact in fp32, so all versions must match exactly.
  const DeviceBuffer<float> A(std::vector<float>{1, 2, 3, 4, 5, 6});
  const DeviceBuffer<float> B(std::vector<float>{7, 8, 9, 10, 11, 12});
  const DeviceBuffer<float> At(std::vector<float>{1, 4, 2, 5, 3, 6});
  const DeviceBuffer<float> Bt(std::vector<float>{7, 9, 11, 8, 10, 12});
  for (const Mode& m : kModes) {
    const CudaExec e{nullptr, m.version, m.math};
    const std::string name = lethe::kernels::gemm_cuda_version_name(m.version);
    DeviceBuffer<float> C(std::vector<float>{1, 1, 1, 1});
    gemm_cuda(false, false, 2, 2, 3, 1.f, A.get(), 3, B.get(), 2, 1.f, C.get(), 2, e);
    EXPECT_TRUE(all_close(std::vector<float>{59, 65, 140, 155}, C.to_host(), Tolerance{0, 0},
                          "gemm_cuda 2x3x2 beta=1 " + name));
    C.poison();
    gemm_cuda(true, true, 2, 2, 3, 1.f, At.get(), 2, Bt.get(), 3, 0.f, C.get(), 2, e);
    EXPECT_TRUE(all_close(std::vector<float>{58, 64, 139, 154}, C.to_host(), Tolerance{0, 0},
                          "gemm_cuda^T 2x3x2 beta=0 " + name));
  }
}

TEST(GemmCuda, EmptyProducts) {
  LETHE_REQUIRE_GPU();
  const std::vector<float> c0 = random_vector<float>(30, 5);
  const DeviceBuffer<float> A(std::vector<float>(64, 1.f)), B(std::vector<float>(64, 1.f));
  for (const Mode& m : kModes) {
    const CudaExec e{nullptr, m.version, m.math};
    const std::string name = lethe::kernels::gemm_cuda_version_name(m.version);
    // M == 0 or N == 0: nothing to do, C untouched.
    DeviceBuffer<float> C(c0);
    gemm_cuda(false, false, 0, 5, 3, 1.f, A.get(), 3, B.get(), 5, 0.f, C.get(), 5, e);
    gemm_cuda(false, false, 5, 0, 3, 1.f, A.get(), 3, B.get(), 1, 0.f, C.get(), 1, e);
    EXPECT_TRUE(all_close(c0, C.to_host(), Tolerance{0, 0}, "gemm_cuda M or N = 0 " + name));
    // K == 0: C = beta * C; A and B are never read (null here), as in BLAS.
    gemm_cuda(false, false, 5, 6, 0, 1.f, nullptr, 0, nullptr, 6, 0.5f, C.get(), 6, e);
    std::vector<float> half(c0);
    for (float& v : half) v *= 0.5f;
    EXPECT_TRUE(all_close(half, C.to_host(), Tolerance{0, 0}, "gemm_cuda K = 0 beta=0.5 " + name));
    C.poison();
    gemm_cuda(true, true, 5, 6, 0, 1.f, nullptr, 5, nullptr, 0, 0.f, C.get(), 6, e);
    EXPECT_TRUE(all_close(std::vector<float>(30, 0.f), C.to_host(), Tolerance{0, 0},
                          "gemm_cuda K = 0 beta=0 over NaN " + name));
  }
}

// The claim behind kFp32Tol: it is tight enough that a TF32 product fails it, so FP32 mode
// meeting it at K = 4608 (the deepest GEMM of ResNet-18) shows FP32 mode never used TF32.
TEST(GemmCuda, Fp32ModeIsNotTf32) {
  LETHE_REQUIRE_GPU();
  if (small_shapes_only()) GTEST_SKIP() << "K = 4608 is not a small shape";
  const Shape s{128, 128, 4608};
  const Problem p = make_problem(s, 31);
  const std::vector<double> ref = reference(p, p.a, p.bt, 1.0, 0.0);
  // TF32 as the tensor cores see it: each input rounded to 10 mantissa bits (nearest, ties
  // away from zero, like cvt.rna.tf32.f32), products and sums exact.
  const auto tf32 = [](std::vector<float> v) {
    for (float& x : v) {
      uint32_t u;
      std::memcpy(&u, &x, sizeof u);
      u = (u + 0x1000u) & 0xFFFFE000u;
      std::memcpy(&x, &u, sizeof u);
    }
    return v;
  };
  const std::vector<double> sim = reference(p, tf32(p.a), tf32(p.bt), 1.0, 0.0);
  EXPECT_FALSE(all_close(ref, sim, kFp32Tol, "simulated TF32"))
      << "kFp32Tol no longer tells a TF32 product from an fp32 one at K = 4608";
  int64_t lda = 0, ldb = 0;
  const DeviceBuffer<float> dA(store_a(p, false, &lda)), dB(store_b(p, false, &ldb));
  const std::vector<float> before = c_before(p, 0.f);
  for (int v : {0, 1, 2}) {
    const Mode m{v, CudaMath::FP32, kFp32Tol};
    const auto got = run_gemm(p, dA, lda, dB, ldb, false, false, m, 1.f, 0.f);
    expect_result(p, ref, before, got, kFp32Tol, describe(s, false, false, m, 1.f, 0.f));
  }
}

// gridDim.y is at most 65535: M = 65535 * 128 + 3 needs two launches of v2/v3 (bands of
// 65535 * 128 rows) and nine of v1 (bands of 65535 * 16).
TEST(GemmCuda, TallProblemSpansSeveralLaunches) {
  LETHE_REQUIRE_GPU();
  if (small_shapes_only()) GTEST_SKIP() << "M = 8388483 is not a small shape";
  check_shape({65535 * 128 + 3, 1, 1}, 1.f, 0.f, 41);
}

TEST(GemmCuda, NonDefaultStream) {
  LETHE_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  const Problem p = make_problem({100, 70, 50, 2}, 51);
  const std::vector<double> ref = reference(p, p.a, p.bt, 1.0, 0.0);
  const std::vector<float> before = c_before(p, 0.f);
  int64_t lda = 0, ldb = 0;
  const DeviceBuffer<float> dA(store_a(p, true, &lda)), dB(store_b(p, false, &ldb));
  for (const Mode& m : kModes) {
    const auto got = run_gemm(p, dA, lda, dB, ldb, true, false, m, 1.f, 0.f, stream);
    expect_result(p, ref, before, got, m.tol, describe(p.s, true, false, m, 1.f, 0.f) + " stream");
  }
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST(GemmCuda, BitwiseRepeatable) {
  LETHE_REQUIRE_GPU();
  const Shape s = small_shapes_only() ? Shape{100, 120, 128} : Shape{257, 300, 1000};
  const Problem p = make_problem(s, 61);
  int64_t lda = 0, ldb = 0;
  const DeviceBuffer<float> dA(store_a(p, false, &lda)), dB(store_b(p, true, &ldb));
  for (const Mode& m : kModes) {
    const auto first = run_gemm(p, dA, lda, dB, ldb, false, true, m, 1.f, 0.f);
    const auto second = run_gemm(p, dA, lda, dB, ldb, false, true, m, 1.f, 0.f);
    EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0)
        << describe(s, false, true, m, 1.f, 0.f) << ": two runs differ";
  }
}

TEST(GemmCuda, BadArgumentsThrow) {
  LETHE_REQUIRE_GPU();
  EXPECT_EQ(lethe::kernels::gemm_cuda_versions(), 3);
  EXPECT_STREQ(lethe::kernels::gemm_cuda_version_name(1), "v1_naive");
  EXPECT_STREQ(lethe::kernels::gemm_cuda_version_name(2), "v2_tiled");
  EXPECT_STREQ(lethe::kernels::gemm_cuda_version_name(3), "v3_tf32_wmma");
  EXPECT_THROW(lethe::kernels::gemm_cuda_version_name(4), lethe::Error);
  DeviceBuffer<float> A(16), B(16), C(16);
  const auto call = [&](int64_t M, int64_t lda, int64_t ldc, CudaExec e) {
    gemm_cuda(false, false, M, 4, 4, 1.f, A.get(), lda, B.get(), 4, 0.f, C.get(), ldc, e);
  };
  EXPECT_THROW(call(4, 4, 4, CudaExec{nullptr, -1, CudaMath::FP32}), lethe::Error);
  EXPECT_THROW(call(4, 4, 4, CudaExec{nullptr, 4, CudaMath::FP32}), lethe::Error);
  // v3 rounds to TF32: forcing it under FP32 math is refused, never silently run.
  EXPECT_THROW(call(4, 4, 4, CudaExec{nullptr, 3, CudaMath::FP32}), lethe::Error);
  EXPECT_THROW(call(-1, 4, 4, CudaExec{}), lethe::Error);
  EXPECT_THROW(call(4, 3, 4, CudaExec{}), lethe::Error);  // lda < K
  EXPECT_THROW(call(4, 4, 3, CudaExec{}), lethe::Error);  // ldc < N
  EXPECT_NO_THROW(call(4, 4, 4, CudaExec{}));
  EXPECT_NO_THROW(C.to_host());
}

}  // namespace
