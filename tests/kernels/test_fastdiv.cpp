// FastDiv (kernels/fastdiv.h), the CUDA kernels' division by an invariant divisor, against
// the hardware division: every divisor up to 2048 with every dividend up to 40,000, then the
// conv shapes' divisors and powers of two with dividends spread up to 2^31 - 1.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/fastdiv.h"

namespace lethe::kernels {
namespace {

TEST(FastDiv, SmallDivisorsExhaustive) {
  for (int d = 1; d <= 2048; ++d) {
    const FastDiv f(d);
    ASSERT_EQ(f.divisor(), d);
    for (int n = 0; n <= 40000; ++n) ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
  }
}

TEST(FastDiv, LargeDividendsAndDivisors) {
  std::vector<int> divisors = {1, 3, 7, 9, 25, 49, 255, 1024, 1156, 4096, 65535, 65536, 65537,
                               100003, 1 << 20, (1 << 20) + 1, 123456789, (1 << 30) + 3,
                               2147483647};
  for (int k = 0; k <= 30; ++k) divisors.push_back(1 << k);
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> dist(0, 2147483647);
  for (int d : divisors) {
    const FastDiv f(d);
    for (int n : {0, 1, d - 1, d, 2147483647, 2147483646, 1 << 30, (1 << 30) - 1}) {
      ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
    }
    for (int i = 0; i < 20000; ++i) {
      const int n = dist(gen);
      ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
      // Around multiples of d, where an off-by-one would show.
      const int64_t q = n / d;
      for (int64_t c : {q * d - 1, q * d, q * d + d - 1}) {
        if (c >= 0 && c <= 2147483647) {
          ASSERT_EQ(f.div(static_cast<int>(c)), c / d) << c << " / " << d;
        }
      }
    }
  }
}

}  // namespace
}  // namespace lethe::kernels
