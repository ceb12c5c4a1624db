// Philox4x32-10, the counter-based random number generator of Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3" (SC 2011), bit-identical to Random123's
// philox4x32_R(10, ...), cuRAND's Philox and PyTorch's CUDA generator.
//
// A counter-based generator is a keyed bijection: output = philox(counter, key). There is no
// hidden state to carry from one number to the next, so element i of any fill can be computed
// by whichever thread (CPU or GPU) owns it, and the result depends only on (seed, stream,
// offset, i), never on the thread count or the device. That is the property SPEC §10 asks for.
//
// Counter layout used by all of lethe (framework/rng.h documents the offsets it hands out):
//   key     = { lo32(seed),  hi32(seed) }
//   counter = { lo32(block), hi32(block), lo32(stream), hi32(stream) }
// where block = offset + (element index / elements per block). One block yields four 32-bit
// words; the element-wise definitions at the bottom of this file say which words each
// output uses. Those definitions are the contract: the CPU fills in framework/rng.cpp and any
// CUDA kernel must compute exactly these expressions.
//
// Everything here is header-only and marked LETHE_HD so CUDA kernels can call it.
// Tested against the Random123 known-answer vectors in tests/framework/test_rng.cpp.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LETHE_HD __host__ __device__
#else
#define LETHE_HD
#endif

namespace lethe::philox {

/// Four 32-bit words: a Philox counter or one output block.
struct Words4 {
  uint32_t w[4];
};

// The round constants of Philox4x32 (Random123's PHILOX_M4x32_* and PHILOX_W32_*).
inline constexpr uint32_t kMul0 = 0xD2511F53u;
inline constexpr uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

/// High and low 32 bits of the 64-bit product a*b.
LETHE_HD inline void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
#ifdef __CUDA_ARCH__
  *hi = __umulhi(a, b);
  *lo = a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
#endif
}

/// One Philox S-box round: two multiplications, the key mixed into the high halves.
LETHE_HD inline Words4 philox_round(Words4 c, uint32_t k0, uint32_t k1) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo32(kMul0, c.w[0], &hi0, &lo0);
  mulhilo32(kMul1, c.w[2], &hi1, &lo1);
  return Words4{{hi1 ^ c.w[1] ^ k0, lo1, hi0 ^ c.w[3] ^ k1, lo0}};
}

/// Philox4x32 with 10 rounds: the key is bumped by the Weyl constants between rounds.
LETHE_HD inline Words4 philox4x32_10(Words4 counter, uint32_t key0, uint32_t key1) {
  counter = philox_round(counter, key0, key1);
  for (int r = 1; r < 10; ++r) {
    key0 += kWeyl0;
    key1 += kWeyl1;
    counter = philox_round(counter, key0, key1);
  }
  return counter;
}

/// The four random words of block `block` of stream `stream` under `seed` (layout above).
LETHE_HD inline Words4 block_words(uint64_t seed, uint64_t stream, uint64_t block) {
  const Words4 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                        static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// ---- conversions ---------------------------------------------------------------------------

/// Uniform float in [0, 1): the top 24 bits, so every value is exactly representable.
LETHE_HD inline float u32_to_float01(uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}

/// Uniform double in [0, 1) from two words: the top 53 bits of (hi << 32 | lo).
LETHE_HD inline double u64_to_double01(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

/// Uniform double in (0, 1] from one word, for the logarithm of Box-Muller (never log 0).
LETHE_HD inline double u32_to_double_open0(uint32_t x) {
  return (static_cast<double>(x) + 1.0) * (1.0 / 4294967296.0);
}

/// Uniform double in (0, 1] from two words (53 bits), the log argument for double normals.
LETHE_HD inline double u64_to_double_open0(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return (static_cast<double>(x >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/// Box-Muller: u1 in (0, 1], u2 in [0, 1) -> two independent standard normals.
/// Computed in double on both CPU and GPU so float outputs agree across devices except where
/// the two libms' last-ulp differences straddle a float rounding boundary (vanishingly rare).
LETHE_HD inline void box_muller(double u1, double u2, double* z0, double* z1) {
  const double two_pi = 6.283185307179586476925286766559;
  const double r = sqrt(-2.0 * log(u1));
  const double theta = two_pi * u2;
  *z0 = r * cos(theta);
  *z1 = r * sin(theta);
}

// ---- value transforms: words of one block -> outputs ---------------------------------------
// fma() is spelled out because nvcc contracts a*b+c into an FMA by default and GCC may not:
// writing it explicitly makes both devices round the same way.

/// Float uniform on [lo, hi) from one word. Like PyTorch, lo + (hi - lo) * u may round up to
/// hi in float when hi - lo is not exactly representable.
LETHE_HD inline float uniform_float(uint32_t w, double lo, double hi) {
  return static_cast<float>(fma(hi - lo, static_cast<double>(u32_to_float01(w)), lo));
}

/// Double uniform on [lo, hi) from two words.
LETHE_HD inline double uniform_double(uint32_t hi_word, uint32_t lo_word, double lo, double hi) {
  return fma(hi - lo, u64_to_double01(hi_word, lo_word), lo);
}

/// Two standard normals from two words (32-bit uniforms): the float-output path.
LETHE_HD inline void normal_pair32(uint32_t a, uint32_t b, double* z0, double* z1) {
  box_muller(u32_to_double_open0(a), static_cast<double>(b) * (1.0 / 4294967296.0), z0, z1);
}

/// Two standard normals from a whole block (53-bit uniforms): the double-output path.
LETHE_HD inline void normal_pair53(const Words4& b, double* z0, double* z1) {
  box_muller(u64_to_double_open0(b.w[0], b.w[1]), u64_to_double01(b.w[2], b.w[3]), z0, z1);
}

/// Bernoulli(p) from one word: 1 when its float uniform is below p.
LETHE_HD inline bool bernoulli_word(uint32_t w, double p) {
  return static_cast<double>(u32_to_float01(w)) < p;
}

// ---- element-wise definitions (the contract every fill implements) -------------------------

/// Element i of a float uniform fill: 4 elements per block, word i % 4.
LETHE_HD inline float uniform_float_at(uint64_t seed, uint64_t stream, uint64_t offset,
                                       uint64_t i, double lo, double hi) {
  return uniform_float(block_words(seed, stream, offset + i / 4).w[i % 4], lo, hi);
}

/// Element i of a double uniform fill: 2 elements per block, words (2k, 2k+1) for k = i % 2.
LETHE_HD inline double uniform_double_at(uint64_t seed, uint64_t stream, uint64_t offset,
                                         uint64_t i, double lo, double hi) {
  const Words4 b = block_words(seed, stream, offset + i / 2);
  const unsigned k = static_cast<unsigned>(i % 2) * 2;
  return uniform_double(b.w[k], b.w[k + 1], lo, hi);
}

/// Element i of a float normal fill: 4 elements per block; words (0,1) give elements 0 and 1
/// (cos, sin), words (2,3) give elements 2 and 3. Computed in double, rounded once to float.
LETHE_HD inline float normal_float_at(uint64_t seed, uint64_t stream, uint64_t offset,
                                      uint64_t i, double mean, double std) {
  const Words4 b = block_words(seed, stream, offset + i / 4);
  const unsigned k = static_cast<unsigned>(i % 4) & ~1u;
  double z0, z1;
  normal_pair32(b.w[k], b.w[k + 1], &z0, &z1);
  return static_cast<float>(fma(std, (i % 2 == 0) ? z0 : z1, mean));
}

/// Element i of a double normal fill: 2 elements per block (cos, sin), u1 from words (0,1),
/// u2 from words (2,3).
LETHE_HD inline double normal_double_at(uint64_t seed, uint64_t stream, uint64_t offset,
                                        uint64_t i, double mean, double std) {
  double z0, z1;
  normal_pair53(block_words(seed, stream, offset + i / 2), &z0, &z1);
  return fma(std, (i % 2 == 0) ? z0 : z1, mean);
}

/// Element i of a Bernoulli(p) fill: 4 elements per block, word i % 4 (p <= 0 gives all
/// zeros, p >= 1 all ones).
LETHE_HD inline bool bernoulli_at(uint64_t seed, uint64_t stream, uint64_t offset, uint64_t i,
                                  double p) {
  return bernoulli_word(block_words(seed, stream, offset + i / 4).w[i % 4], p);
}

}  // namespace lethe::philox
