// lethe::Generator on the CPU: each fill reserves its blocks, then an OpenMP loop over blocks
// computes the kernels/philox.h value transforms, so the output equals the element-wise
// definitions (philox::*_at) bit for bit whatever the thread count. See rng.h for the layout.
#include "framework/rng.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/check.h"
#include "kernels/philox.h"

namespace lethe {
namespace {

using philox::Words4;

// Fills below this many blocks run serially: OpenMP start-up costs more than Philox there.
constexpr int64_t kParallelBlocks = 2048;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Calls f(b, words of block first + b) for b in [0, nblocks), in parallel over blocks.
template <typename F>
void for_each_block(const RngState& s, uint64_t first, int64_t nblocks, F f) {
#pragma omp parallel for schedule(static) if (nblocks >= kParallelBlocks)
  for (int64_t b = 0; b < nblocks; ++b)
    f(b, philox::block_words(s.seed, s.stream, first + static_cast<uint64_t>(b)));
}

void check_fill(const char* what, const void* out, int64_t n) {
  LETHE_CHECK(n >= 0, "Generator::", what, ": n=", n, " must be >= 0.");
  LETHE_CHECK(n == 0 || out != nullptr, "Generator::", what, ": output pointer is null.");
}

void check_range(const char* what, double lo, double hi) {
  LETHE_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "Generator::", what,
              ": the range [", lo, ", ", hi, ") must be finite with lo <= hi.");
}

void check_normal(double mean, double std) {
  LETHE_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0.0,
              "Generator::fill_normal: mean=", mean, " and std=", std,
              " must be finite with std >= 0.");
}

void check_probability(const char* what, double p) {
  LETHE_CHECK(p >= 0.0 && p <= 1.0, "Generator::", what, ": probability p=", p,
              " must lie in [0, 1].");
}

template <typename T>
void fill_bernoulli_impl(Generator& g, T* out, int64_t n, double p) {
  check_fill("fill_bernoulli", out, n);
  check_probability("fill_bernoulli", p);
  const int64_t nb = ceil_div(n, 4);
  const RngState s = g.state();
  const uint64_t first = g.reserve(static_cast<uint64_t>(nb));
  for_each_block(s, first, nb, [&](int64_t b, const Words4& w) {
    for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
      out[4 * b + k] = philox::bernoulli_word(w.w[k], p) ? T(1) : T(0);
  });
}

// Parses one unsigned 64-bit decimal field of an RngState string, or returns false.
bool parse_u64(const char* first, const char* last, uint64_t* value) {
  if (first == last) return false;
  const auto [ptr, ec] = std::from_chars(first, last, *value);
  return ec == std::errc() && ptr == last;
}

}  // namespace

std::string to_string(const RngState& state) {
  return std::to_string(state.seed) + ":" + std::to_string(state.stream) + ":" +
         std::to_string(state.offset);
}

RngState parse_rng_state(const std::string& text) {
  const size_t a = text.find(':');
  const size_t b = a == std::string::npos ? a : text.find(':', a + 1);
  RngState s;
  const char* p = text.data();
  const bool ok = b != std::string::npos && parse_u64(p, p + a, &s.seed) &&
                  parse_u64(p + a + 1, p + b, &s.stream) &&
                  parse_u64(p + b + 1, p + text.size(), &s.offset);
  LETHE_CHECK(ok, "RNG state '", text,
              "' is not of the form seed:stream:offset with three unsigned decimal integers.");
  return s;
}

uint64_t Generator::reserve(uint64_t blocks) {
  LETHE_CHECK(blocks <= std::numeric_limits<uint64_t>::max() - state_.offset,
              "Generator: reserving ", blocks, " blocks at offset ", state_.offset,
              " would wrap the 64-bit block counter; use another stream.");
  const uint64_t first = state_.offset;
  state_.offset += blocks;
  return first;
}

void Generator::fill_uniform(float* out, int64_t n, double lo, double hi) {
  check_fill("fill_uniform", out, n);
  check_range("fill_uniform", lo, hi);
  const int64_t nb = ceil_div(n, 4);
  const uint64_t first = reserve(static_cast<uint64_t>(nb));
  for_each_block(state_, first, nb, [&](int64_t b, const Words4& w) {
    for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
      out[4 * b + k] = philox::uniform_float(w.w[k], lo, hi);
  });
}

void Generator::fill_uniform(double* out, int64_t n, double lo, double hi) {
  check_fill("fill_uniform", out, n);
  check_range("fill_uniform", lo, hi);
  const int64_t nb = ceil_div(n, 2);
  const uint64_t first = reserve(static_cast<uint64_t>(nb));
  for_each_block(state_, first, nb, [&](int64_t b, const Words4& w) {
    out[2 * b] = philox::uniform_double(w.w[0], w.w[1], lo, hi);
    if (2 * b + 1 < n) out[2 * b + 1] = philox::uniform_double(w.w[2], w.w[3], lo, hi);
  });
}

void Generator::fill_normal(float* out, int64_t n, double mean, double std) {
  check_fill("fill_normal", out, n);
  check_normal(mean, std);
  const int64_t nb = ceil_div(n, 4);
  const uint64_t first = reserve(static_cast<uint64_t>(nb));
  for_each_block(state_, first, nb, [&](int64_t b, const Words4& w) {
    double z[4];
    philox::normal_pair32(w.w[0], w.w[1], &z[0], &z[1]);
    philox::normal_pair32(w.w[2], w.w[3], &z[2], &z[3]);
    for (int64_t k = 0; k < 4 && 4 * b + k < n; ++k)
      out[4 * b + k] = static_cast<float>(std::fma(std, z[k], mean));
  });
}

void Generator::fill_normal(double* out, int64_t n, double mean, double std) {
  check_fill("fill_normal", out, n);
  check_normal(mean, std);
  const int64_t nb = ceil_div(n, 2);
  const uint64_t first = reserve(static_cast<uint64_t>(nb));
  for_each_block(state_, first, nb, [&](int64_t b, const Words4& w) {
    double z0, z1;
    philox::normal_pair53(w, &z0, &z1);
    out[2 * b] = std::fma(std, z0, mean);
    if (2 * b + 1 < n) out[2 * b + 1] = std::fma(std, z1, mean);
  });
}

void Generator::fill_bernoulli(uint8_t* out, int64_t n, double p) {
  fill_bernoulli_impl(*this, out, n, p);
}

void Generator::fill_bernoulli(float* out, int64_t n, double p) {
  fill_bernoulli_impl(*this, out, n, p);
}

uint32_t Generator::next_u32() {
  return philox::block_words(state_.seed, state_.stream, reserve(1)).w[0];
}

bool Generator::bernoulli(double p) {
  check_probability("bernoulli", p);
  return philox::bernoulli_word(next_u32(), p);
}

int64_t Generator::randint(int64_t n) {
  LETHE_CHECK(n > 0, "Generator::randint: n=", n, " must be > 0.");
  const uint64_t un = static_cast<uint64_t>(n);
  // Lemire (2019): the high half of x * n is uniform on [0, n) once the low half is outside
  // the 2^k mod n values that would over-represent small results; those draws are retried.
  if (un <= 0xFFFFFFFFull) {
    const uint32_t n32 = static_cast<uint32_t>(un);
    const uint32_t threshold = static_cast<uint32_t>(-n32) % n32;  // 2^32 mod n
    for (;;) {
      const Words4 w = philox::block_words(state_.seed, state_.stream, reserve(1));
      for (uint32_t x : w.w) {
        const uint64_t m = static_cast<uint64_t>(x) * n32;
        if (static_cast<uint32_t>(m) >= threshold) return static_cast<int64_t>(m >> 32);
      }
    }
  }
  const uint64_t threshold = (0 - un) % un;  // 2^64 mod n
  for (;;) {
    const Words4 w = philox::block_words(state_.seed, state_.stream, reserve(1));
    for (int k = 0; k < 4; k += 2) {
      const uint64_t x = (static_cast<uint64_t>(w.w[k]) << 32) | w.w[k + 1];
      const unsigned __int128 m = static_cast<unsigned __int128>(x) * un;
      if (static_cast<uint64_t>(m) >= threshold) return static_cast<int64_t>(m >> 64);
    }
  }
}

int64_t Generator::randint(int64_t lo, int64_t hi) {
  LETHE_CHECK(hi > lo, "Generator::randint: the range [", lo, ", ", hi, ") is empty.");
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  LETHE_CHECK(span <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
              "Generator::randint: the range [", lo, ", ", hi, ") is wider than 2^63 - 1.");
  return static_cast<int64_t>(static_cast<uint64_t>(lo) +
                              static_cast<uint64_t>(randint(static_cast<int64_t>(span))));
}

std::vector<int64_t> Generator::permutation(int64_t n) {
  LETHE_CHECK(n >= 0, "Generator::permutation: n=", n, " must be >= 0.");
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[randint(i + 1)]);
  return p;
}

}  // namespace lethe
