// Tests of kernels/philox.h and lethe::Generator: Random123 known answers, the counter layout
// (fills equal the element-wise definitions, for any thread count), reproducibility, stream
// separation, statistics of 1e6 samples, randint/permutation, and state save/restore.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "framework/rng.h"
#include "kernels/check.h"
#include "kernels/philox.h"

namespace lethe {
namespace {

using philox::Words4;

// Bitwise equality of two arrays, so -0.0 vs 0.0 or NaN payloads would count as different.
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Random123's kat_vectors for philox4x32 with 10 rounds: counter, key -> output.
TEST(Philox, KnownAnswerVectors) {
  struct Kat {
    Words4 ctr;
    uint32_t k0, k1;
    Words4 expect;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const Words4 out = philox::philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out.w[i], k.expect.w[i]) << "word " << i;
  }
}

TEST(Philox, CounterLayoutPutsBlockLowAndStreamHigh) {
  const uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull,
                 block = 0x85a308d3243f6a88ull;
  const Words4 out = philox::block_words(seed, stream, block);
  EXPECT_EQ(out.w[0], 0xd16cfe09u);
  EXPECT_EQ(out.w[3], 0x24126ea1u);
}

TEST(Philox, Conversions) {
  EXPECT_EQ(philox::u32_to_float01(0), 0.0f);
  EXPECT_LT(philox::u32_to_float01(0xffffffffu), 1.0f);
  EXPECT_EQ(philox::u32_to_float01(0xffffffffu), 1.0f - 1.0f / 16777216.0f);
  EXPECT_EQ(philox::u32_to_float01(0x80000000u), 0.5f);
  EXPECT_EQ(philox::u64_to_double01(0, 0), 0.0);
  EXPECT_EQ(philox::u64_to_double01(0xffffffffu, 0xffffffffu), 1.0 - std::ldexp(1.0, -53));
  EXPECT_GT(philox::u32_to_double_open0(0), 0.0);
  EXPECT_EQ(philox::u32_to_double_open0(0xffffffffu), 1.0);
  double z0, z1;
  philox::box_muller(1.0, 0.25, &z0, &z1);  // r = 0
  EXPECT_EQ(z0, 0.0);
  EXPECT_EQ(z1, 0.0);
  philox::box_muller(std::exp(-0.5), 0.0, &z0, &z1);  // r = 1, theta = 0
  EXPECT_NEAR(z0, 1.0, 1e-15);
  EXPECT_NEAR(z1, 0.0, 1e-15);
}

TEST(Rng, SameSeedSameNumbers) {
  Generator a(42), b(42);
  std::vector<float> x(1000), y(1000);
  a.fill_normal(x.data(), 1000);
  b.fill_normal(y.data(), 1000);
  EXPECT_TRUE(same_bits(x, y));
  EXPECT_EQ(a.next_u32(), b.next_u32());
  EXPECT_EQ(a.state(), b.state());
}

TEST(Rng, DifferentSeedOrStreamDifferentNumbers) {
  std::vector<float> base(64), other(64);
  Generator(1, 0).fill_uniform(base.data(), 64);
  Generator(2, 0).fill_uniform(other.data(), 64);
  EXPECT_FALSE(same_bits(base, other));
  Generator(1, 1).fill_uniform(other.data(), 64);
  EXPECT_FALSE(same_bits(base, other));
  // A seed differing only in its high word must matter too (key word 1).
  Generator(1 + (1ull << 32), 0).fill_uniform(other.data(), 64);
  EXPECT_FALSE(same_bits(base, other));
}

TEST(Rng, SuccessiveCallsAdvanceOffsetByBlocksUsed) {
  Generator g(7, 3);
  std::vector<float> f(10);
  std::vector<double> d(5);
  g.fill_uniform(f.data(), 10);  // ceil(10/4) = 3 blocks
  EXPECT_EQ(g.offset(), 3u);
  g.fill_uniform(d.data(), 5);  // ceil(5/2) = 3
  EXPECT_EQ(g.offset(), 6u);
  g.fill_normal(f.data(), 9);  // 3
  EXPECT_EQ(g.offset(), 9u);
  g.fill_normal(d.data(), 4);  // 2
  EXPECT_EQ(g.offset(), 11u);
  g.next_u32();
  EXPECT_EQ(g.offset(), 12u);
  g.fill_uniform(f.data(), 0);
  EXPECT_EQ(g.offset(), 12u);
  EXPECT_EQ(g.reserve(5), 12u);
  EXPECT_EQ(g.offset(), 17u);
  // Two fills of 8 are the same as one fill of 16: no number is reused or skipped.
  Generator h1(9), h2(9);
  std::vector<float> a(16), b(16);
  h1.fill_uniform(a.data(), 8);
  h1.fill_uniform(a.data() + 8, 8);
  h2.fill_uniform(b.data(), 16);
  EXPECT_TRUE(same_bits(a, b));
}

// A fill equals the element-wise definitions of philox.h bit for bit, with 1 or 2 threads.
// n is odd and large enough to take the OpenMP path.
TEST(Rng, FillsEqualElementwiseDefinitionForAnyThreadCount) {
  const int64_t n = 40001;
  const uint64_t seed = 123456789, stream = 5, start = 17;
  const int saved_threads = omp_get_max_threads();
  std::vector<float> uf[2], nf[2], bf[2];
  std::vector<double> ud[2], nd[2];
  std::vector<uint8_t> bu[2];
  for (int t = 0; t < 2; ++t) {
    omp_set_num_threads(t + 1);
    for (auto* v : {&uf[t], &nf[t], &bf[t]}) v->resize(n);
    for (auto* v : {&ud[t], &nd[t]}) v->resize(n);
    bu[t].resize(n);
    // Each fill starts at the same known offset, so it can be compared with the definitions.
    Generator g(seed, stream);
    g.set_state({seed, stream, start});
    g.fill_uniform(uf[t].data(), n, -2.0, 3.0);
    g.set_state({seed, stream, start});
    g.fill_uniform(ud[t].data(), n, -2.0, 3.0);
    g.set_state({seed, stream, start});
    g.fill_normal(nf[t].data(), n, 0.5, 2.0);
    g.set_state({seed, stream, start});
    g.fill_normal(nd[t].data(), n, 0.5, 2.0);
    g.set_state({seed, stream, start});
    g.fill_bernoulli(bu[t].data(), n, 0.3);
    g.set_state({seed, stream, start});
    g.fill_bernoulli(bf[t].data(), n, 0.3);
  }
  omp_set_num_threads(saved_threads);
  EXPECT_TRUE(same_bits(uf[0], uf[1]));
  EXPECT_TRUE(same_bits(ud[0], ud[1]));
  EXPECT_TRUE(same_bits(nf[0], nf[1]));
  EXPECT_TRUE(same_bits(nd[0], nd[1]));
  EXPECT_TRUE(same_bits(bu[0], bu[1]));
  EXPECT_TRUE(same_bits(bf[0], bf[1]));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = static_cast<uint64_t>(i);
    ASSERT_EQ(uf[0][i], philox::uniform_float_at(seed, stream, start, u, -2.0, 3.0)) << i;
    ASSERT_EQ(ud[0][i], philox::uniform_double_at(seed, stream, start, u, -2.0, 3.0)) << i;
    ASSERT_EQ(nf[0][i], philox::normal_float_at(seed, stream, start, u, 0.5, 2.0)) << i;
    ASSERT_EQ(nd[0][i], philox::normal_double_at(seed, stream, start, u, 0.5, 2.0)) << i;
    const bool b = philox::bernoulli_at(seed, stream, start, u, 0.3);
    ASSERT_EQ(bu[0][i], b ? 1 : 0) << i;
    ASSERT_EQ(bf[0][i], b ? 1.0f : 0.0f) << i;
  }
}

TEST(Rng, UniformStatistics) {
  const int64_t n = 1000000;
  Generator g(2024);
  std::vector<float> f(n);
  std::vector<double> d(n);
  g.fill_uniform(f.data(), n);
  g.fill_uniform(d.data(), n, -1.0, 1.0);
  double sf = 0, sf2 = 0, sd = 0, sd2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_GE(f[i], 0.0f);
    ASSERT_LT(f[i], 1.0f);
    ASSERT_GE(d[i], -1.0);
    ASSERT_LT(d[i], 1.0);
    sf += f[i], sf2 += double(f[i]) * f[i], sd += d[i], sd2 += d[i] * d[i];
  }
  // Bounds are 6 standard errors: false failures are ~1e-9 events.
  const double mf = sf / n, vf = sf2 / n - mf * mf, md = sd / n, vd = sd2 / n - md * md;
  EXPECT_NEAR(mf, 0.5, 6 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(vf, 1.0 / 12, 6 * std::sqrt(1.0 / 180 / n));
  EXPECT_NEAR(md, 0.0, 6 * std::sqrt(1.0 / 3 / n));
  EXPECT_NEAR(vd, 1.0 / 3, 6 * std::sqrt(4.0 / 45 / n));
}

TEST(Rng, NormalStatistics) {
  const int64_t n = 1000000;
  Generator g(77, 1);
  std::vector<float> f(n);
  std::vector<double> d(n);
  g.fill_normal(f.data(), n);
  g.fill_normal(d.data(), n, 3.0, 0.5);
  auto moments = [&](auto& v, double* mean, double* sd, double* kurt) {
    double s = 0, s2 = 0;
    for (double x : v) s += x;
    *mean = s / n;
    double s4 = 0;
    for (double x : v) s2 += (x - *mean) * (x - *mean), s4 += std::pow(x - *mean, 4);
    *sd = std::sqrt(s2 / n);
    *kurt = (s4 / n) / (*sd * *sd * *sd * *sd);
  };
  double m, s, k;
  moments(f, &m, &s, &k);
  EXPECT_NEAR(m, 0.0, 6.0 / std::sqrt(n));
  EXPECT_NEAR(s, 1.0, 6.0 * std::sqrt(0.5 / n));
  EXPECT_NEAR(k, 3.0, 6.0 * std::sqrt(24.0 / n));  // catches a uniform or broken pairing
  moments(d, &m, &s, &k);
  EXPECT_NEAR(m, 3.0, 6.0 * 0.5 / std::sqrt(n));
  EXPECT_NEAR(s, 0.5, 6.0 * 0.5 * std::sqrt(0.5 / n));
  EXPECT_NEAR(k, 3.0, 6.0 * std::sqrt(24.0 / n));
  // Pairs from one Box-Muller draw are uncorrelated.
  double c = 0;
  for (int64_t i = 0; i + 1 < n; i += 2) c += double(f[i]) * f[i + 1];
  EXPECT_NEAR(c / (n / 2), 0.0, 6.0 / std::sqrt(n / 2));
}

TEST(Rng, BernoulliRateAndEdges) {
  const int64_t n = 1000000;
  Generator g(5);
  std::vector<uint8_t> b(n);
  g.fill_bernoulli(b.data(), n, 0.2);
  int64_t ones = 0;
  for (uint8_t x : b) {
    ASSERT_LE(x, 1);
    ones += x;
  }
  EXPECT_NEAR(double(ones) / n, 0.2, 6 * std::sqrt(0.2 * 0.8 / n));
  g.fill_bernoulli(b.data(), 1000, 0.0);
  EXPECT_TRUE(std::all_of(b.begin(), b.begin() + 1000, [](uint8_t x) { return x == 0; }));
  g.fill_bernoulli(b.data(), 1000, 1.0);
  EXPECT_TRUE(std::all_of(b.begin(), b.begin() + 1000, [](uint8_t x) { return x == 1; }));
  EXPECT_FALSE(g.bernoulli(0.0));
  EXPECT_TRUE(g.bernoulli(1.0));
  EXPECT_THROW(g.bernoulli(1.5), Error);
}

TEST(Rng, RandintInRangeAndRoughlyUniform) {
  Generator g(11);
  const int64_t k = 10, draws = 200000;
  std::vector<int64_t> count(k, 0);
  for (int64_t i = 0; i < draws; ++i) {
    const int64_t r = g.randint(k);
    ASSERT_GE(r, 0);
    ASSERT_LT(r, k);
    ++count[r];
  }
  // Chi-square with 9 degrees of freedom; 40 is far beyond the 1e-5 tail (about 33.7).
  double chi2 = 0;
  const double expect = double(draws) / k;
  for (int64_t c : count) chi2 += (c - expect) * (c - expect) / expect;
  EXPECT_LT(chi2, 40.0);
  EXPECT_EQ(g.randint(1), 0);
  for (int i = 0; i < 1000; ++i) {
    const int64_t r = g.randint(-5, 5);
    ASSERT_GE(r, -5);
    ASSERT_LT(r, 5);
  }
  // The 64-bit path (n > 2^32): in range, and not stuck in the low 32 bits.
  const int64_t big = (int64_t{1} << 40) + 12345;
  bool high = false;
  for (int i = 0; i < 100; ++i) {
    const int64_t r = g.randint(big);
    ASSERT_GE(r, 0);
    ASSERT_LT(r, big);
    high = high || r > (int64_t{1} << 33);
  }
  EXPECT_TRUE(high);
  // A range just above 2^31 rejects almost half the draws yet stays in range.
  const int64_t awkward = (int64_t{1} << 31) + 1;
  for (int i = 0; i < 1000; ++i) ASSERT_LT(g.randint(awkward), awkward);
  EXPECT_THROW(g.randint(0), Error);
  EXPECT_THROW(g.randint(3, 3), Error);
}

TEST(Rng, PermutationIsAPermutation) {
  Generator g(99);
  for (int64_t n : {0, 1, 2, 17, 50000}) {
    std::vector<int64_t> p = g.permutation(n);
    ASSERT_EQ(int64_t(p.size()), n);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
    if (n == 50000) {
      int64_t fixed = 0;
      for (int64_t i = 0; i < n; ++i) fixed += p[i] == i;
      EXPECT_LT(fixed, 10);  // a random permutation has ~1 fixed point
    }
  }
  // Every ordering of 3 elements shows up with roughly equal frequency.
  std::vector<int> count(27, 0);  // index p0*9 + p1*3 + p2
  const int trials = 60000;
  for (int t = 0; t < trials; ++t) {
    const auto p = g.permutation(3);
    ++count[p[0] * 9 + p[1] * 3 + p[2]];
  }
  int orderings = 0;
  for (int c : count) {
    if (c == 0) continue;
    ++orderings;
    EXPECT_NEAR(c, trials / 6.0, 6 * std::sqrt(trials / 6.0));
  }
  EXPECT_EQ(orderings, 6);
}

TEST(Rng, SaveAndRestoreStateResumesTheStream) {
  Generator g(31337, 2);
  std::vector<float> warm(101);
  g.fill_normal(warm.data(), 101);
  g.randint(1000);
  const RngState saved = g.state();
  std::vector<float> first(257);
  g.fill_uniform(first.data(), 257);
  const auto perm1 = g.permutation(100);

  Generator resumed;
  resumed.set_state(parse_rng_state(to_string(saved)));
  EXPECT_EQ(resumed.state(), saved);
  std::vector<float> second(257);
  resumed.fill_uniform(second.data(), 257);
  EXPECT_TRUE(same_bits(first, second));
  EXPECT_EQ(resumed.permutation(100), perm1);
  EXPECT_EQ(resumed.state(), g.state());
}

TEST(Rng, StateStringFormatAndErrors) {
  const RngState s{18446744073709551615ull, 3, 42};
  EXPECT_EQ(to_string(s), "18446744073709551615:3:42");
  EXPECT_EQ(parse_rng_state("18446744073709551615:3:42"), s);
  for (const char* bad : {"", "1:2", "1:2:3:4", "a:2:3", "1::3", "-1:2:3", "1:2:3 "})
    EXPECT_THROW(parse_rng_state(bad), Error) << bad;
}

TEST(Rng, RejectsBadArguments) {
  Generator g(1);
  std::vector<float> f(4);
  EXPECT_THROW(g.fill_uniform(f.data(), -1), Error);
  EXPECT_THROW(g.fill_uniform(f.data(), 4, 1.0, 0.0), Error);
  EXPECT_THROW(g.fill_normal(f.data(), 4, 0.0, -1.0), Error);
  EXPECT_THROW(g.fill_bernoulli(f.data(), 4, -0.1), Error);
  EXPECT_EQ(g.offset(), 0u);  // a rejected call consumes nothing
  g.set_state({1, 0, ~0ull - 1});
  EXPECT_THROW(g.fill_uniform(f.data(), 4 * 3), Error);  // would wrap the block counter
}

}  // namespace
}  // namespace lethe
