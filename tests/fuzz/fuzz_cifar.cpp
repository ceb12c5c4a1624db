// Fuzz target: the CIFAR binary record reader (data::append_records) in both layouts,
// CIFAR-10 (1 label byte) and CIFAR-100 (coarse + fine label bytes). The first input byte
// picks the layout; the rest is the file. Rejection with lethe::Error is the expected outcome
// for bad bytes; anything else (a crash, a sanitizer report, another exception) is a finding.
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "kernels/check.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool cifar100 = data[0] & 1;
  const std::string path = lethe::fuzz::write_input(data + 1, size - 1, "records.bin");
  lethe::data::Dataset d;
  d.name = cifar100 ? "cifar100" : "cifar10";
  d.num_classes = cifar100 ? 100 : 10;
  try {
    const int64_t n = lethe::data::append_records(path, cifar100 ? 2 : 1, cifar100 ? 1 : 0, &d);
    // What a reader that said yes must guarantee to every later stage.
    if (n != d.size() || d.images.size() != static_cast<size_t>(n * lethe::data::kImageBytes))
      __builtin_trap();
    for (int32_t l : d.labels)
      if (l < 0 || l >= d.num_classes) __builtin_trap();
  } catch (const lethe::Error&) {
  }
  return 0;
}
