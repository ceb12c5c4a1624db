#include "testing/compare.h"

#include <cmath>
#include <sstream>

namespace lethe::testing {

template <typename A, typename B>
::testing::AssertionResult all_close(const A* ref, const B* got, int64_t n, Tolerance tol,
                                     const std::string& what) {
  double max_err = 0;
  int64_t bad = 0, worst = -1;
  std::ostringstream first;
  for (int64_t i = 0; i < n; ++i) {
    const double r = static_cast<double>(ref[i]), g = static_cast<double>(got[i]);
    const double err = std::fabs(g - r);
    const bool ok = err <= tol.atol + tol.rtol * std::fabs(r);  // NaN fails here too
    if (!ok) {
      if (bad < 5) first << "\n  [" << i << "] expected " << r << " got " << g;
      ++bad;
    }
    if (!(err <= max_err)) {
      max_err = err;
      worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << n << " elements differ (atol " << tol.atol
         << ", rtol " << tol.rtol << "), max error " << max_err << " at [" << worst << "]"
         << first.str();
}

#define LETHE_ALL_CLOSE(A, B)                                                          \
  template ::testing::AssertionResult all_close<A, B>(const A*, const B*, int64_t,     \
                                                      Tolerance, const std::string&);
LETHE_ALL_CLOSE(float, float)
LETHE_ALL_CLOSE(double, double)
LETHE_ALL_CLOSE(double, float)
LETHE_ALL_CLOSE(float, double)
LETHE_ALL_CLOSE(int32_t, int32_t)
LETHE_ALL_CLOSE(uint8_t, uint8_t)
#undef LETHE_ALL_CLOSE

}  // namespace lethe::testing
