// Fuzz target: forget index lists (`--forget file:PATH`, one original training index per line)
// validated against a 64-image data set whose training split is images 0..47, plus the
// --forget spec string itself. Rejection with lethe::Error is expected; an accepted list must
// be a sorted, duplicate-free subset of the split that leaves a non-empty retain set.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "kernels/check.h"
#include "unlearn/forget_set.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lethe;
  static const data::Dataset train = data::make_synthetic(64, 10, 1);
  static const std::vector<int64_t> split = [] {
    std::vector<int64_t> s(48);
    std::iota(s.begin(), s.end(), int64_t{0});
    return s;
  }();
  try {
    unlearn::parse_forget_spec(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const Error&) {
  }
  const std::string path = fuzz::write_input(data, size, "forget.txt");
  try {
    const unlearn::ForgetSet fs = unlearn::make_forget_set("file:" + path, train, split, 0);
    if (fs.forget.empty() || fs.retain.empty() ||
        fs.forget.size() + fs.retain.size() != split.size() ||
        !std::is_sorted(fs.forget.begin(), fs.forget.end()) ||
        std::adjacent_find(fs.forget.begin(), fs.forget.end()) != fs.forget.end())
      __builtin_trap();
    for (int64_t i : fs.forget)
      if (i < 0 || i >= 48) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
