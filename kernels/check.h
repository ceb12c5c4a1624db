// Error checks shared by every layer of lethe (kernels/, framework/, apps/).
//
// LETHE_CHECK(cond, args...) throws lethe::Error("file:line: args...") when cond is false;
// the arguments are streamed, so LETHE_CHECK(n > 0, "conv2d: N=", n, " must be > 0").
// CUDA_CHECK(expr) throws with the CUDA error string; CUDA_CHECK_NOTHROW is for destructors.
// Library code never calls exit/abort: the command line turns an Error into one sentence on
// stderr and a non-zero exit.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#ifdef LETHE_WITH_CUDA
#include <cuda_runtime_api.h>
#include <cstdio>
#endif

namespace lethe {

/// The one exception type lethe throws for bad input, bad shapes and failed device calls.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
template <typename... Args>
[[noreturn]] void fail(const char* file, int line, const Args&... args) {
  throw Error(concat(file, ":", line, ": ", args...));
}
}  // namespace detail

}  // namespace lethe

#define LETHE_CHECK(cond, ...)                                          \
  do {                                                                  \
    if (!(cond)) ::lethe::detail::fail(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#ifdef LETHE_WITH_CUDA
#define CUDA_CHECK(expr)                                                               \
  do {                                                                                 \
    cudaError_t lethe_err_ = (expr);                                                   \
    if (lethe_err_ != cudaSuccess)                                                     \
      ::lethe::detail::fail(__FILE__, __LINE__, #expr, " failed: ",                    \
                            cudaGetErrorString(lethe_err_));                           \
  } while (0)

// For destructors: report, never throw.
#define CUDA_CHECK_NOTHROW(expr)                                                       \
  do {                                                                                 \
    cudaError_t lethe_err_ = (expr);                                                   \
    if (lethe_err_ != cudaSuccess)                                                     \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,        \
                   cudaGetErrorString(lethe_err_));                                    \
  } while (0)
#endif
