// GEMM on the GPU (kernels/gemm.h): row-major C = alpha * op(A) * op(B) + beta * C, float32.
//   op(A): M x K, op(B): K x N, C: M x N; lda/ldb/ldc are the row strides of the stored
//   matrices (A is stored K x M when trans_a, B is stored N x K when trans_b). Every version
//   computes gemm_ref's formula:
//     op(A)(i,k) = trans_a ? A[k*lda + i] : A[i*lda + k]
//     op(B)(k,j) = trans_b ? B[j*ldb + k] : B[k*ldb + j]
//     C(i,j)     = alpha * sum_k op(A)(i,k) * op(B)(k,j) + (beta == 0 ? 0 : beta * C(i,j))
//   beta == 0 never reads C (it may hold NaN, as BLAS promises); K == 0 gives C = beta * C.
//
// Versions (e.version; 0 = v2 under CudaMath::FP32, v3 under CudaMath::TF32):
//   v1_naive      one thread per C element running the reference loop; 16 x 16 blocks.
//   v2_tiled      128 x 128 C tile per 256-thread block, each thread 8 x 8 outputs held in
//                 registers; op(A) and op(B) staged through double-buffered shared memory in
//                 k-slices of 8, loaded with float4 where alignment allows. fp32 FMA only.
//   v3_tf32_wmma  128 x 128 C tile per 256-thread block, 8 warps each 64 x 32 outputs as 4 x 2
//                 WMMA m16n16k8 TF32 fragments (fp32 accumulate); k-slices of 32 staged in
//                 shared memory, already rounded to TF32. Only under CudaMath::TF32.
// No atomics anywhere: each output is summed by one thread (v1, v2) or one warp (v3) in an
// order fixed by K alone, so results are bitwise repeatable.
// gridDim.y is capped at 65535, so taller problems run as several launches over row bands.
// Tested by tests/cuda/test_gemm_cuda.cpp, timed against cuBLAS by bench/bench_gemm_cuda.cpp.
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"

namespace lethe::kernels {
namespace cuda {
namespace {

constexpr int kVersions = 3;
constexpr int64_t kMaxGridY = 65535;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// Runs launch(m0, rows) over bands of at most 65535 * rows_per_block rows of C, so that
/// gridDim.y never exceeds its limit. The caller advances A (band_a) and C (m0 * ldc).
template <typename Launch>
void for_each_band(int64_t M, int64_t rows_per_block, Launch launch) {
  const int64_t band = kMaxGridY * rows_per_block;
  for (int64_t m0 = 0; m0 < M; m0 += band) launch(m0, std::min(band, M - m0));
}
/// op(A) row m0: row m0 of A, or column m0 when A is stored transposed.
const float* band_a(const float* A, bool ta, int64_t lda, int64_t m0) {
  if (A == nullptr || m0 == 0) return A;  // A is null when K == 0 (never read)
  return ta ? A + m0 : A + m0 * lda;
}

// ---- v1: one thread per C element -------------------------------------------------------
// threadIdx.x walks the columns j and threadIdx.y the rows i; with 16 x 16 blocks a warp is
// two rows of 16 consecutive j. Its C writes, and its B reads when B is not transposed, are
// coalesced 64-byte runs; its A reads hit two addresses (broadcasts). Nothing is reused
// through shared memory, so each multiply-add costs two global loads: the baseline.
__global__ void gemm_v1_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                              const float* __restrict__ A, int64_t lda,  // op(A): M x K
                              const float* __restrict__ B, int64_t ldb,  // op(B): K x N
                              float beta, float* __restrict__ C, int64_t ldc) {  // M x N
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (i >= M || j >= N) return;  // edge blocks overhang the matrix
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) {
    const float a = ta ? A[k * lda + i] : A[i * lda + k];
    const float b = tb ? B[j * ldb + k] : B[k * ldb + j];
    acc = fmaf(a, b, acc);
  }
  float* c = C + i * ldc + j;
  // beta == 0 must not read C: 0 * NaN would be NaN.
  *c = beta == 0.f ? alpha * acc : fmaf(beta, *c, alpha * acc);
}

// ---- v2: shared-memory tiles, register blocking, fp32 FMA --------------------------------
// A block owns a 128 x 128 tile of C. Per k-slice of 8 it stages op(A)[128 x 8] and
// op(B)[8 x 128] in shared memory, both stored k-major (S[k][m] and S[k][n]) so that, for
// each k, a thread reads its 8 A values and 8 B values as float4s and does 64 FMAs: an outer
// product. Every element loaded from global memory is reused 128 times instead of once.
// Thread t has tx = t % 16 (columns) and ty = t / 16 (rows); it owns rows
// {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and the same pattern of columns with tx. Splitting
// the 8 into two groups of 4, 64 apart, makes the float4 reads of a quarter-warp (8 threads)
// touch 8 consecutive float4s of one shared row: no bank conflicts.
constexpr int kV2Threads = 256;
constexpr int kV2Tile = 128;  // BM = BN
constexpr int kV2BK = 8;
// Row stride of a staged slice. The +4 breaks the bank pattern of the transposing stores in
// v2_stage (S[k][r] for k = 0..7, r = t/2): with 132 floats per row, rows k and k+4 start 16
// banks apart, so the two threads sharing r (t = 2r, 2r+1) write different banks. A multiple
// of 4 keeps every float4 access 16-byte aligned.
constexpr int kV2Ld = kV2Tile + 4;

/// Loads this thread's 4 elements of one operand's 128 x 8 slice (rows r0.., k-columns k0..)
/// into registers; elements outside the matrix read as 0, which adds nothing to the sums.
/// `kcontig`: element (r, k) is X[r*ld + k] (A not transposed, B transposed); otherwise it is
/// X[k*ld + r]. `vec`: ld % 4 == 0 and X 16-byte aligned, so 4 in-range elements along the
/// contiguous direction starting at a multiple of 4 form one aligned float4.
__device__ __forceinline__ void v2_load(const float* __restrict__ X, int64_t ld, int64_t R,
                                        int64_t K, int64_t r0, int64_t k0, bool kcontig,
                                        bool vec, float (&v)[4]) {
  const int t = threadIdx.x;
  if (kcontig) {
    // 128 rows of 8 contiguous k: two threads per row, 4 k each (one float4).
    const int64_t r = r0 + (t >> 1), k = k0 + (t & 1) * 4;
    const int64_t off = r * ld + k;
    if (vec && r < R && k + 4 <= K) {
      const float4 q = *reinterpret_cast<const float4*>(X + off);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {  // the matrix edge, or an unaligned layout: element by element, masked
#pragma unroll
      for (int q = 0; q < 4; ++q) v[q] = (r < R && k + q < K) ? X[off + q] : 0.f;
    }
  } else {
    // 8 rows (k) of 128 contiguous r: 32 threads per row, 4 r each.
    const int64_t k = k0 + (t >> 5), r = r0 + (t & 31) * 4;
    const int64_t off = k * ld + r;
    if (vec && k < K && r + 4 <= R) {
      const float4 q = *reinterpret_cast<const float4*>(X + off);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
#pragma unroll
      for (int q = 0; q < 4; ++q) v[q] = (k < K && r + q < R) ? X[off + q] : 0.f;
    }
  }
}

/// Writes the 4 elements v2_load fetched into the k-major slice S[k][r] (the same t -> (r, k)
/// mapping). A k-contiguous operand is transposed here, one scalar store per element.
__device__ __forceinline__ void v2_stage(float (*S)[kV2Ld], bool kcontig, const float (&v)[4]) {
  const int t = threadIdx.x;
  if (kcontig) {
    const int r = t >> 1, k = (t & 1) * 4;
#pragma unroll
    for (int q = 0; q < 4; ++q) S[k + q][r] = v[q];
  } else {
    const int k = t >> 5, r = (t & 31) * 4;
    *reinterpret_cast<float4*>(&S[k][r]) = make_float4(v[0], v[1], v[2], v[3]);
  }
}

__global__ void __launch_bounds__(kV2Threads)
    gemm_v2_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* __restrict__ A, int64_t lda,  // op(A): M x K
                  const float* __restrict__ B, int64_t ldb,  // op(B): K x N
                  float beta, float* __restrict__ C, int64_t ldc,  // M x N
                  bool vec_a, bool vec_b, bool vec_c) {
  // Two buffers per operand (16.5 KiB in all): the block computes on one while the next
  // slice is written into the other, so one barrier per k-slice suffices.
  __shared__ __align__(16) float As[2][kV2BK][kV2Ld];  // op(A) slice, As[k][m]
  __shared__ __align__(16) float Bs[2][kV2BK][kV2Ld];  // op(B) slice, Bs[k][n]
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kV2Tile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kV2Tile;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const bool a_kcontig = !ta, b_kcontig = tb;

  float acc[8][8] = {};
  float va[4], vb[4];

  // Prologue: slice 0 into buffer 0 (all zeros when K == 0; the loop below then never runs).
  v2_load(A, lda, M, K, m0, 0, a_kcontig, vec_a, va);
  v2_load(B, ldb, N, K, n0, 0, b_kcontig, vec_b, vb);
  v2_stage(As[0], a_kcontig, va);
  v2_stage(Bs[0], b_kcontig, vb);
  __syncthreads();  // slice 0 visible to every thread

  int buf = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kV2BK) {
    const bool has_next = k0 + kV2BK < K;
    // Issue the global loads of the next slice now; their latency hides behind the FMAs.
    if (has_next) {
      v2_load(A, lda, M, K, m0, k0 + kV2BK, a_kcontig, vec_a, va);
      v2_load(B, ldb, N, K, n0, k0 + kV2BK, b_kcontig, vec_b, vb);
    }
    // 8 outer products of 8 x 8 from shared memory into registers.
#pragma unroll
    for (int kk = 0; kk < kV2BK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read in the previous iteration, and every thread has passed
    // that iteration's barrier, so it is free to overwrite.
    if (has_next) {
      v2_stage(As[buf ^ 1], a_kcontig, va);
      v2_stage(Bs[buf ^ 1], b_kcontig, vb);
    }
    __syncthreads();  // next slice visible; nobody still reads this one when it is rewritten
    buf ^= 1;
  }

  // Epilogue: alpha * acc + beta * C, as float4 where the 4 columns lie inside C and C's rows
  // are 16-byte aligned, else element by element with the column masked.
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t row = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
    if (row >= M) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t col = n0 + h * 64 + tx * 4;
      float* c = C + row * ldc + col;
      float out[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) out[q] = alpha * acc[i][h * 4 + q];
      if (vec_c && col + 4 <= N) {
        if (beta != 0.f) {
          const float4 old = *reinterpret_cast<const float4*>(c);
          out[0] = fmaf(beta, old.x, out[0]);
          out[1] = fmaf(beta, old.y, out[1]);
          out[2] = fmaf(beta, old.z, out[2]);
          out[3] = fmaf(beta, old.w, out[3]);
        }
        *reinterpret_cast<float4*>(c) = make_float4(out[0], out[1], out[2], out[3]);
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q)
          if (col + q < N) c[q] = beta == 0.f ? out[q] : fmaf(beta, c[q], out[q]);
      }
    }
  }
}

// ---- v3: TF32 tensor cores through WMMA --------------------------------------------------
// A block owns a 128 x 128 tile of C; its 8 warps form a 2 x 4 grid, warp (wm, wn) owning
// rows wm*64.. and columns wn*32.. as 4 x 2 accumulator fragments of 16 x 16. Per k-slice of
// 32 the block stages op(A)[128 x 32] and op(B)[32 x 128] in shared memory in the orientation
// they have in global memory (so every global load and shared store is a plain float4 copy)
// and tells WMMA that orientation through the fragment layout: a transposed operand is just a
// col_major fragment. That layout is a type, hence the kernel template on (TA, TB).
// Each element is rounded to TF32 (cvt.rna: 10 mantissa bits, nearest, ties away) once, when
// staged, rather than by every warp after each fragment load.
constexpr int kV3Threads = 256;
constexpr int kV3Tile = 128;  // BM = BN
constexpr int kV3BK = 32;
constexpr int kV3Pad = 4;  // staggers shared rows across banks; ldm must stay a multiple of 4
// One staged operand: 128 rows x 32 (+4) when k-contiguous, 32 rows x 128 (+4) otherwise.
constexpr int kV3StageFloats = kV3Tile * (kV3BK + kV3Pad);  // 4608 >= 32 * 132
static_assert(kV3StageFloats >= kV3BK * (kV3Tile + kV3Pad), "stage buffer too small");
// Shared memory: 2 x 18 KiB, under the 48 KiB of static shared memory.

/// The stored tile of one operand: kcontig (element (r, k) at X[r*ld + k]): 128 rows r x 32
/// columns k; otherwise 32 rows k x 128 columns r. 4096 elements, 4 float4 per thread.
template <bool KContig>
struct V3Stage {
  static constexpr int kCols = KContig ? kV3BK : kV3Tile;  // contiguous direction
  static constexpr int kPerRow = kCols / 4;                 // float4s per stored row
  static constexpr int kLd = kCols + kV3Pad;                // shared row stride
};

/// Loads this thread's 4 float4s of the slice (rows r0.. of op(X) in the m/n direction,
/// columns k0.. in k) into registers; outside the matrix reads as 0.
template <bool KContig>
__device__ __forceinline__ void v3_load(const float* __restrict__ X, int64_t ld, int64_t R,
                                        int64_t K, int64_t r0, int64_t k0, bool vec,
                                        float4 (&v)[4]) {
  using St = V3Stage<KContig>;
  // Extent and origin of the stored matrix, rows x contiguous columns.
  const int64_t rows = KContig ? R : K, cols = KContig ? K : R;
  const int64_t row0 = KContig ? r0 : k0, col0 = KContig ? k0 : r0;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    // Consecutive threads take consecutive float4s of a stored row: coalesced.
    const int idx = threadIdx.x + p * kV3Threads;
    const int64_t gr = row0 + idx / St::kPerRow, gc = col0 + (idx % St::kPerRow) * 4;
    const int64_t off = gr * ld + gc;
    if (vec && gr < rows && gc + 4 <= cols) {
      v[p] = *reinterpret_cast<const float4*>(X + off);
    } else {
      float e[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) e[q] = (gr < rows && gc + q < cols) ? X[off + q] : 0.f;
      v[p] = make_float4(e[0], e[1], e[2], e[3]);
    }
  }
}

/// Stores what v3_load fetched into the shared slice (same mapping), rounded to TF32.
template <bool KContig>
__device__ __forceinline__ void v3_stage(float* S, const float4 (&v)[4]) {
  using St = V3Stage<KContig>;
  using nvcuda::wmma::__float_to_tf32;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int idx = threadIdx.x + p * kV3Threads;
    const int r = idx / St::kPerRow, c = (idx % St::kPerRow) * 4;
    *reinterpret_cast<float4*>(S + r * St::kLd + c) =
        make_float4(__float_to_tf32(v[p].x), __float_to_tf32(v[p].y),
                    __float_to_tf32(v[p].z), __float_to_tf32(v[p].w));
  }
}

template <bool TA, bool TB>
__global__ void __launch_bounds__(kV3Threads)
    gemm_v3_tf32_wmma(int64_t M, int64_t N, int64_t K, float alpha,
                      const float* __restrict__ A, int64_t lda,  // op(A): M x K
                      const float* __restrict__ B, int64_t ldb,  // op(B): K x N
                      float beta, float* __restrict__ C, int64_t ldc,  // M x N
                      bool vec_a, bool vec_b) {
  namespace wmma = nvcuda::wmma;
  // op(A) is k-contiguous when A is not transposed: staged as As[m][k], a row_major
  // fragment. Transposed, it is staged as As[k][m], which WMMA reads as col_major.
  // Likewise op(B): Bs[k][n] row_major when not transposed, Bs[n][k] col_major when it is.
  constexpr bool kAKc = !TA, kBKc = TB;
  using LayoutA = std::conditional_t<TA, wmma::col_major, wmma::row_major>;
  using LayoutB = std::conditional_t<TB, wmma::col_major, wmma::row_major>;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LayoutA>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LayoutB>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
  constexpr int kLdA = V3Stage<kAKc>::kLd, kLdB = V3Stage<kBKc>::kLd;

  // 128-byte alignment: load/store_matrix_sync need 32-byte aligned fragment pointers, and
  // every fragment origin below is a multiple of 32 bytes from the buffer start (checked:
  // 16 rows of 36 or 132 floats, k offsets of 8 floats, m/n offsets of 16 floats).
  __shared__ __align__(128) float As[kV3StageFloats];
  __shared__ __align__(128) float Bs[kV3StageFloats];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps, each 64 x 32 outputs
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kV3Tile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kV3Tile;

  FragC acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  float4 ra[4], rb[4];
  v3_load<kAKc>(A, lda, M, K, m0, 0, vec_a, ra);
  v3_load<kBKc>(B, ldb, N, K, n0, 0, vec_b, rb);

  for (int64_t k0 = 0; k0 < K; k0 += kV3BK) {
    v3_stage<kAKc>(As, ra);
    v3_stage<kBKc>(Bs, rb);
    __syncthreads();  // the slice is complete before any warp loads fragments from it
    // Prefetch the next slice into registers while the tensor cores work on this one.
    if (k0 + kV3BK < K) {
      v3_load<kAKc>(A, lda, M, K, m0, k0 + kV3BK, vec_a, ra);
      v3_load<kBKc>(B, ldb, N, K, n0, k0 + kV3BK, vec_b, rb);
    }
#pragma unroll
    for (int kk = 0; kk < kV3BK; kk += 8) {
      FragA fa[4];
      FragB fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = wm * 64 + i * 16;  // fragment origin: (m, kk)
        wmma::load_matrix_sync(fa[i], TA ? As + kk * kLdA + m : As + m * kLdA + kk, kLdA);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int n = wn * 32 + j * 16;  // fragment origin: (kk, n)
        wmma::load_matrix_sync(fb[j], TB ? Bs + n * kLdB + kk : Bs + kk * kLdB + n, kLdB);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // every warp is done with the slice before the next one is staged
  }

  // Epilogue. A fragment's element-to-lane mapping is unspecified, so each warp stores one
  // fragment at a time into its own 16 x 16 scratch (reusing As: the loop's last barrier
  // guarantees nobody reads it any more; with K == 0 nobody ever did) and then writes it out
  // with explicit coordinates: masked at the edges, alpha/beta applied, half a row per 16
  // lanes (coalesced).
  float* scratch = As + warp * 256;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();  // the whole fragment is in scratch before lanes read others' elements
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const int e = lane + 32 * q, r = e >> 4, c = e & 15;
        const int64_t row = m0 + wm * 64 + i * 16 + r, col = n0 + wn * 32 + j * 16 + c;
        if (row < M && col < N) {
          float* p = C + row * ldc + col;
          const float v = alpha * scratch[e];
          *p = beta == 0.f ? v : fmaf(beta, *p, v);
        }
      }
      __syncwarp();  // all lanes have read scratch before the next fragment overwrites it
    }
}

// ---- launchers: one per version, on a stream --------------------------------------------

struct GemmArgs {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

void launch_v1(const GemmArgs& g, cudaStream_t s) {
  const dim3 block(16, 16);
  for_each_band(g.M, 16, [&](int64_t m0, int64_t rows) {
    const dim3 grid(static_cast<unsigned>((g.N + 15) / 16),
                    static_cast<unsigned>((rows + 15) / 16));
    gemm_v1_naive<<<grid, block, 0, s>>>(g.ta, g.tb, rows, g.N, g.K, g.alpha,
                                         band_a(g.A, g.ta, g.lda, m0), g.lda, g.B, g.ldb,
                                         g.beta, g.C + m0 * g.ldc, g.ldc);
    check_launch("gemm_v1_naive", s);
  });
}

void launch_v2(const GemmArgs& g, cudaStream_t s) {
  for_each_band(g.M, kV2Tile, [&](int64_t m0, int64_t rows) {
    const float* a = band_a(g.A, g.ta, g.lda, m0);
    float* c = g.C + m0 * g.ldc;
    // float4 paths need 16-byte aligned rows: ld a multiple of 4 and an aligned base.
    const bool vec_a = g.lda % 4 == 0 && aligned16(a);
    const bool vec_b = g.ldb % 4 == 0 && aligned16(g.B);
    const bool vec_c = g.ldc % 4 == 0 && aligned16(c);
    const dim3 grid(static_cast<unsigned>((g.N + kV2Tile - 1) / kV2Tile),
                    static_cast<unsigned>((rows + kV2Tile - 1) / kV2Tile));
    gemm_v2_tiled<<<grid, kV2Threads, 0, s>>>(g.ta, g.tb, rows, g.N, g.K, g.alpha, a, g.lda,
                                              g.B, g.ldb, g.beta, c, g.ldc, vec_a, vec_b,
                                              vec_c);
    check_launch("gemm_v2_tiled", s);
  });
}

template <bool TA, bool TB>
void launch_v3_layout(const GemmArgs& g, cudaStream_t s) {
  for_each_band(g.M, kV3Tile, [&](int64_t m0, int64_t rows) {
    const float* a = band_a(g.A, TA, g.lda, m0);
    const bool vec_a = g.lda % 4 == 0 && aligned16(a);
    const bool vec_b = g.ldb % 4 == 0 && aligned16(g.B);
    const dim3 grid(static_cast<unsigned>((g.N + kV3Tile - 1) / kV3Tile),
                    static_cast<unsigned>((rows + kV3Tile - 1) / kV3Tile));
    gemm_v3_tf32_wmma<TA, TB><<<grid, kV3Threads, 0, s>>>(rows, g.N, g.K, g.alpha, a, g.lda,
                                                          g.B, g.ldb, g.beta,
                                                          g.C + m0 * g.ldc, g.ldc, vec_a, vec_b);
    check_launch("gemm_v3_tf32_wmma", s);
  });
}

void launch_v3(const GemmArgs& g, cudaStream_t s) {
  if (g.ta)
    g.tb ? launch_v3_layout<true, true>(g, s) : launch_v3_layout<true, false>(g, s);
  else
    g.tb ? launch_v3_layout<false, true>(g, s) : launch_v3_layout<false, false>(g, s);
}

}  // namespace
}  // namespace cuda

int gemm_cuda_versions() { return cuda::kVersions; }

const char* gemm_cuda_version_name(int v) {
  switch (v) {
    case 0: return "default";
    case 1: return "v1_naive";
    case 2: return "v2_tiled";
    case 3: return "v3_tf32_wmma";
    default: break;
  }
  LETHE_CHECK(false, "gemm_cuda_version_name: version ", v, " does not exist; valid: 0..",
              cuda::kVersions);
  return "";
}

void gemm_cuda(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const CudaExec& e) {
  LETHE_CHECK(e.version >= 0 && e.version <= cuda::kVersions, "gemm_cuda: version ", e.version,
              " does not exist; use 0 (the default for the math mode) or 1..", cuda::kVersions);
  LETHE_CHECK(e.version != 3 || e.math == CudaMath::TF32,
              "gemm_cuda: version 3 (v3_tf32_wmma) rounds inputs to TF32; it runs only with "
              "CudaExec::math = CudaMath::TF32");
  LETHE_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm_cuda: bad shape M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  LETHE_CHECK(C != nullptr, "gemm_cuda: C is null for a ", M, " x ", N, " product");
  LETHE_CHECK(ldc >= N, "gemm_cuda: C (", M, " x ", N, ") needs ldc >= ", N, ", got ", ldc);
  // A and B are read only when K > 0 (BLAS's rule): then their strides must cover a row.
  if (K > 0) {
    LETHE_CHECK(A != nullptr && lda >= (trans_a ? M : K), "gemm_cuda: A (", trans_a ? K : M,
                " x ", trans_a ? M : K, " stored) needs lda >= ", trans_a ? M : K, ", got ", lda);
    LETHE_CHECK(B != nullptr && ldb >= (trans_b ? K : N), "gemm_cuda: B (", trans_b ? N : K,
                " x ", trans_b ? K : N, " stored) needs ldb >= ", trans_b ? K : N, ", got ", ldb);
  }
  // gridDim.x counts column tiles of 16 (v1) or 128: it must fit its 2^31 - 1 limit.
  LETHE_CHECK((N + 15) / 16 <= 0x7fffffff, "gemm_cuda: N=", N, " is too wide for one grid");

  const int version = e.version != 0 ? e.version : (e.math == CudaMath::TF32 ? 3 : 2);
  const cuda::GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  const cudaStream_t s = cuda::stream_of(e);
  switch (version) {
    case 1: cuda::launch_v1(g, s); break;
    case 2: cuda::launch_v2(g, s); break;
    default: cuda::launch_v3(g, s); break;
  }
}

}  // namespace lethe::kernels
