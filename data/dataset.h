// The in-memory data sets of lethe and the readers of the official CIFAR binary layout
// (SPEC section 1), plus where the files are looked for and the normalisation constants.
//
// Files (any whole number of records per file, so unpack.py --train-limit subsets load):
//   CIFAR-10   DIR/data_batch_1.bin .. data_batch_5.bin (training), DIR/test_batch.bin;
//              record = 1 label byte + 3072 pixel bytes (R plane, G plane, B plane, each
//              32x32 row-major), 3073 bytes.
//   CIFAR-100  DIR/train.bin, DIR/test.bin; record = coarse label byte, fine label byte,
//              3072 pixel bytes, 3074 bytes; lethe uses the fine (100-class) label.
// Which CIFAR-10 training batches must exist: data_batch_1.bin always; data_batch_k.bin
// (k = 2..5) whenever data_batch_{k-1}.bin is full (10,000 records). After a partial batch
// (the last file of a --train-limit subset) the next file may be absent, and once one is
// absent no later one may exist (a gap means a lost file, not a subset).
//
// Images stay uint8 CHW in memory (150 MB for CIFAR training, not 600 MB of floats); the
// loader converts each batch to float32 in [0, 1]. Normalisation is the model's first step
// (SPEC section 1), so the constants live here but are applied by models/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lethe::data {

inline constexpr int64_t kChannels = 3;
inline constexpr int64_t kHeight = 32;
inline constexpr int64_t kWidth = 32;
/// Bytes of one uint8 CHW image (3 * 32 * 32).
inline constexpr int64_t kImageBytes = kChannels * kHeight * kWidth;
/// Records in one full CIFAR-10 batch file.
inline constexpr int64_t kCifar10BatchRecords = 10000;

/// A labelled image set held in memory. Index i always means the i-th record of the
/// files in their original order (training images 0..49999, SPEC section 1).
struct Dataset {
  std::string name;          ///< "cifar10", "cifar100" or "synthetic"
  int64_t num_classes = 0;   ///< labels lie in [0, num_classes)
  std::vector<uint8_t> images;  ///< size() * 3 * 32 * 32 bytes, CHW per image, R,G,B planes
  std::vector<int32_t> labels;  ///< size() entries

  /// Number of images.
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  /// Pointer to the 3072 bytes of image i (no bounds check).
  const uint8_t* image(int64_t i) const { return images.data() + i * kImageBytes; }
};

/// Which half of a data set to read.
enum class Split { Train, Test };

/// Per-channel mean and std (R, G, B) of the images scaled to [0, 1]; the model computes
/// (x - mean) / std as its first step.
struct Normalization {
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
};

/// The constants of SPEC section 1 for "cifar10" and "cifar100"; "synthetic" gets its own
/// (data/synthetic.h). Throws lethe::Error for an unknown name.
Normalization normalization_for(const std::string& dataset);

/// Number of classes of "cifar10" (10), "cifar100" (100) or "synthetic" (10).
int64_t num_classes_for(const std::string& dataset);

/// The images of `data` whose label is one of `classes`, in their original order, relabelled to
/// the label's position in `classes` (transfer learning: CIFAR-10 classes 5-9 become a 5-class
/// set). `num_classes` becomes classes.size(). When `index_map` is given it receives, for every
/// index of `data`, the image's index in the result or -1. Throws lethe::Error for an empty
/// list, a repeated class or one outside [0, data.num_classes).
Dataset select_classes(const Dataset& data, const std::vector<int64_t>& classes,
                       std::vector<int64_t>* index_map = nullptr);

/// `indices` translated through select_classes' `index_map`, dropping those mapped to -1.
std::vector<int64_t> map_indices(const std::vector<int64_t>& indices,
                                 const std::vector<int64_t>& index_map);

/// Parses a class list: "all", or items "C" and ranges "A-B" (e.g. {"0-4"} or {"1", "3"}),
/// checked against `num_classes`; throws lethe::Error naming `what` (the flag) otherwise.
std::vector<int64_t> parse_class_list(const std::vector<std::string>& items, int64_t num_classes,
                                      const std::string& what);

/// Reads CIFAR-10 from `dir` (the folder holding data_batch_*.bin and test_batch.bin).
/// A missing, truncated or malformed file throws lethe::Error naming the file.
Dataset load_cifar10(const std::string& dir, Split split);

/// Reads CIFAR-100 (fine labels) from `dir` (the folder holding train.bin and test.bin).
Dataset load_cifar100(const std::string& dir, Split split);

/// Dispatches on the data set name: "cifar10" and "cifar100" read `dir`; "synthetic"
/// ignores `dir` and generates data/synthetic.h's default set for the split.
Dataset load_dataset(const std::string& name, const std::string& dir, Split split);

/// Reads records of `header_bytes` label bytes + 3072 pixel bytes from one file and
/// appends them to `out`; the label used is header byte `label_byte`. Returns the number
/// of records read. Exposed for tests and for readers of other record layouts.
int64_t append_records(const std::string& path, int64_t header_bytes, int64_t label_byte,
                       Dataset* out);

/// True when `dir` holds data_batch_1.bin and test_batch.bin (files exist; not validated).
bool cifar10_present(const std::string& dir);
/// True when `dir` holds train.bin and test.bin.
bool cifar100_present(const std::string& dir);
/// cifar10_present / cifar100_present by name; "synthetic" is always present.
bool dataset_present(const std::string& name, const std::string& dir);

/// The folder a data set is read from: `flag_value` (the --data-dir flag) when non-empty,
/// else the environment variable LETHE_DATA when set and non-empty, else
/// "./data_cache/<dataset>". Throws lethe::Error, naming the folder, where it came from
/// and how to get the data, when the folder does not exist. "synthetic" needs no folder
/// and returns "" without checks.
std::string resolve_data_dir(const std::string& flag_value,
                             const std::string& dataset = "cifar10");

/// One sentence telling how to obtain `dataset` into `dir` (the download command and, for
/// CIFAR-10, the offline copy's unpack.py); used in the readers' error messages.
std::string how_to_get_data(const std::string& dataset, const std::string& dir);

}  // namespace lethe::data
