// lethe::Generator: the one random number generator of lethe (SPEC §10), Philox4x32-10
// keyed by (seed, stream), used for weight init, data shuffling, augmentation, dropout-style
// masks, random pruning and forget-set selection.
//
// Counter layout (kernels/philox.h holds the element-wise definitions):
//   key = seed (64 bits); counter = { block (64 bits), stream (64 bits) }.
//   The generator keeps one 64-bit `offset`, the next unused block. A call that needs B blocks
//   uses blocks offset .. offset+B-1 and then advances offset by B, so successive calls never
//   reuse numbers, and a saved (seed, stream, offset) resumes exactly where it stopped.
//   Blocks per call:
//     fill_uniform(float)   4 values per block  -> ceil(n / 4)
//     fill_uniform(double)  2 values per block  -> ceil(n / 2)
//     fill_normal(float)    4 values per block  -> ceil(n / 4)
//     fill_normal(double)   2 values per block  -> ceil(n / 2)
//     fill_bernoulli        4 values per block  -> ceil(n / 4)
//     next_u32, bernoulli   1 block (word 0)
//     randint(n)            1 block per attempt group (up to 4 tries for n <= 2^32, 2 above)
//     permutation(n)        one randint per swap: n - 1 randint calls
// Element i of a fill is a pure function of (seed, stream, offset, i), so fills are parallel
// (OpenMP over blocks) yet bit-identical for every thread count, and a CUDA kernel given the
// same (seed, stream, reserve(B)) produces the same numbers.
//
// Streams separate independent consumers that share a seed (e.g. init vs data order), so
// adding a random call in one place does not shift every number drawn elsewhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe {

/// The full position of a Generator: enough for a checkpoint to resume the exact stream.
struct RngState {
  uint64_t seed = 0;
  uint64_t stream = 0;
  uint64_t offset = 0;  ///< next unused Philox block
  bool operator==(const RngState&) const = default;
};

/// "seed:stream:offset" in decimal, for safetensors metadata (whose values are strings).
std::string to_string(const RngState& state);
/// Parses to_string's format; throws lethe::Error with one clear sentence otherwise.
RngState parse_rng_state(const std::string& text);

/// Counter-based Philox4x32-10 generator; cheap to copy, no hidden buffered state.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : state_{seed, stream, 0} {}

  uint64_t seed() const { return state_.seed; }
  uint64_t stream() const { return state_.stream; }
  uint64_t offset() const { return state_.offset; }
  RngState state() const { return state_; }
  void set_state(const RngState& state) { state_ = state; }

  /// Claims `blocks` consecutive blocks and returns the first: a GPU kernel launched with
  /// (seed(), stream(), that offset) computes the philox.h element-wise definitions.
  uint64_t reserve(uint64_t blocks);

  /// out[i] uniform in [lo, hi) (see philox::uniform_float_at for float rounding at hi).
  void fill_uniform(float* out, int64_t n, double lo = 0.0, double hi = 1.0);
  void fill_uniform(double* out, int64_t n, double lo = 0.0, double hi = 1.0);
  /// out[i] ~ Normal(mean, std^2) by Box-Muller.
  void fill_normal(float* out, int64_t n, double mean = 0.0, double std = 1.0);
  void fill_normal(double* out, int64_t n, double mean = 0.0, double std = 1.0);
  /// out[i] = 1 with probability p, else 0.
  void fill_bernoulli(uint8_t* out, int64_t n, double p);
  void fill_bernoulli(float* out, int64_t n, double p);

  /// One uniform 32-bit word (uses a whole block).
  uint32_t next_u32();
  /// One Bernoulli(p) draw (uses a whole block).
  bool bernoulli(double p);
  /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject); n must be > 0.
  int64_t randint(int64_t n);
  /// Uniform integer in [lo, hi), hi > lo.
  int64_t randint(int64_t lo, int64_t hi);
  /// A uniformly random permutation of 0..n-1 (Fisher-Yates driven by randint).
  std::vector<int64_t> permutation(int64_t n);

 private:
  RngState state_;
};

}  // namespace lethe
