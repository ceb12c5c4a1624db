// CIFAR readers, data-folder resolution and normalisation constants, on small files the
// tests write (valid, truncated, empty, bad label, missing, subsets with a partial last
// batch, the CIFAR-100 layout), plus one check of the real data when a copy is found.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>

#include "data/dataset.h"
#include "data/split.h"
#include "data_test_util.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

using lethe::testing::TempDir;
using lethe::testing::test_pixel;
using lethe::testing::write_cifar10;
using lethe::testing::write_cifar100;

// Runs f, expects a lethe::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected a lethe::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// Sets (or unsets) LETHE_DATA for one scope and restores the previous value.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* value) {
    if (const char* old = std::getenv("LETHE_DATA")) old_ = old;
    if (value) setenv("LETHE_DATA", value, 1); else unsetenv("LETHE_DATA");
  }
  ~ScopedEnv() {
    if (old_) setenv("LETHE_DATA", old_->c_str(), 1); else unsetenv("LETHE_DATA");
  }

 private:
  std::optional<std::string> old_;
};

TEST(Cifar10Reader, ReadsRecordsInOrderWithPlanarPixels) {
  TempDir dir;
  write_cifar10(dir.file("data_batch_1.bin"), 7);
  write_cifar10(dir.file("test_batch.bin"), 5, 1000);
  const Dataset train = load_cifar10(dir.path(), Split::Train);
  EXPECT_EQ(train.name, "cifar10");
  EXPECT_EQ(train.num_classes, 10);
  ASSERT_EQ(train.size(), 7);
  ASSERT_EQ(train.images.size(), 7u * 3072u);
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(train.labels[i], i % 10);
    for (int64_t k : {0, 1, 31, 32, 1023, 1024, 2047, 2048, 3071})
      ASSERT_EQ(train.image(i)[k], test_pixel(i, k)) << "image " << i << " byte " << k;
  }
  const Dataset test = load_cifar10(dir.path(), Split::Test);
  ASSERT_EQ(test.size(), 5);
  EXPECT_EQ(test.labels[0], 1000 % 10);
  EXPECT_EQ(test.image(4)[100], test_pixel(1004, 100));
}

TEST(Cifar10Reader, SubsetWithPartialLastBatch) {
  // What unpack.py --train-limit 10003 writes: one full batch and a partial second one.
  TempDir dir;
  write_cifar10(dir.file("data_batch_1.bin"), kCifar10BatchRecords);
  write_cifar10(dir.file("data_batch_2.bin"), 3, kCifar10BatchRecords);
  const Dataset d = load_cifar10(dir.path(), Split::Train);
  ASSERT_EQ(d.size(), kCifar10BatchRecords + 3);
  // Indices continue across files in file order.
  EXPECT_EQ(d.labels[10001], 10001 % 10);
  EXPECT_EQ(d.image(10002)[5], test_pixel(10002, 5));
}

TEST(Cifar10Reader, MissingBatchAfterFullOneFails) {
  TempDir dir;
  write_cifar10(dir.file("data_batch_1.bin"), kCifar10BatchRecords);
  expect_error([&] { load_cifar10(dir.path(), Split::Train); },
               {"data_batch_2.bin", "is missing", "full batch", "unpack.py"});
}

TEST(Cifar10Reader, GapAfterPartialBatchFails) {
  TempDir dir;
  write_cifar10(dir.file("data_batch_1.bin"), 4);
  write_cifar10(dir.file("data_batch_3.bin"), 4);
  expect_error([&] { load_cifar10(dir.path(), Split::Train); },
               {"data_batch_2.bin", "data_batch_3.bin", "lost"});
}

TEST(Cifar10Reader, MissingFilesNameTheFileAndTheFix) {
  TempDir dir;
  expect_error([&] { load_cifar10(dir.path(), Split::Train); },
               {dir.file("data_batch_1.bin"), "missing", "lethe download", "unpack.py"});
  expect_error([&] { load_cifar10(dir.path(), Split::Test); },
               {dir.file("test_batch.bin"), "missing"});
}

TEST(Cifar10Reader, TruncatedEmptyAndWrongSizeFilesFail) {
  TempDir dir;
  write_cifar10(dir.file("data_batch_1.bin"), 3);
  std::filesystem::resize_file(dir.file("data_batch_1.bin"), 3 * 3073 - 100);
  expect_error([&] { load_cifar10(dir.path(), Split::Train); },
               {"data_batch_1.bin", std::to_string(3 * 3073 - 100) + " bytes", "3073-byte"});
  // A CIFAR-100 file (3074-byte records) is not a whole number of CIFAR-10 records.
  write_cifar100(dir.file("data_batch_1.bin"), 2);
  expect_error([&] { load_cifar10(dir.path(), Split::Train); }, {"data_batch_1.bin", "3073"});
  std::ofstream(dir.file("test_batch.bin"), std::ios::trunc).close();
  expect_error([&] { load_cifar10(dir.path(), Split::Test); }, {"test_batch.bin", "empty"});
}

TEST(Cifar10Reader, LabelOutOfRangeFails) {
  TempDir dir;
  lethe::testing::write_records(dir.file("test_batch.bin"), 4, 0, [](int64_t id) {
    return std::vector<uint8_t>{static_cast<uint8_t>(id == 2 ? 10 : 1)};
  });
  expect_error([&] { load_cifar10(dir.path(), Split::Test); },
               {"test_batch.bin", "record 2 has label 10", "0..9"});
}

TEST(Cifar100Reader, UsesFineLabels) {
  TempDir dir;
  write_cifar100(dir.file("train.bin"), 250);
  write_cifar100(dir.file("test.bin"), 30, 500);
  const Dataset d = load_cifar100(dir.path(), Split::Train);
  EXPECT_EQ(d.name, "cifar100");
  EXPECT_EQ(d.num_classes, 100);
  ASSERT_EQ(d.size(), 250);
  for (int64_t i = 0; i < 250; ++i) ASSERT_EQ(d.labels[i], i % 100);
  EXPECT_EQ(d.image(249)[3071], test_pixel(249, 3071));
  const Dataset t = load_dataset("cifar100", dir.path(), Split::Test);
  ASSERT_EQ(t.size(), 30);
  EXPECT_EQ(t.labels[1], 501 % 100);
  EXPECT_TRUE(cifar100_present(dir.path()));
  EXPECT_FALSE(cifar10_present(dir.path()));
}

TEST(Cifar100Reader, BadFilesFail) {
  TempDir dir;
  expect_error([&] { load_cifar100(dir.path(), Split::Train); }, {"train.bin", "missing"});
  lethe::testing::write_records(dir.file("test.bin"), 3, 0, [](int64_t) {
    return std::vector<uint8_t>{1, 100};
  });
  expect_error([&] { load_cifar100(dir.path(), Split::Test); },
               {"test.bin", "label 100", "0..99"});
  write_cifar10(dir.file("train.bin"), 2);  // 6146 bytes: not whole 3074-byte records
  expect_error([&] { load_cifar100(dir.path(), Split::Train); }, {"train.bin", "3074-byte"});
}

TEST(DataDir, FlagThenEnvironmentThenDefault) {
  TempDir a, b;
  {
    ScopedEnv env(b.path().c_str());
    EXPECT_EQ(resolve_data_dir(a.path()), a.path());
    EXPECT_EQ(resolve_data_dir(""), b.path());
  }
  {
    ScopedEnv env(nullptr);
    const std::string cwd = std::filesystem::current_path().string();
    std::filesystem::current_path(a.path());
    expect_error([] { resolve_data_dir(""); },
                 {"./data_cache/cifar10", "default", "lethe download", "unpack.py"});
    std::filesystem::create_directories("data_cache/cifar10");
    EXPECT_EQ(resolve_data_dir(""), "./data_cache/cifar10");
    std::filesystem::current_path(cwd);
  }
  {
    ScopedEnv env((a.path() + "/nope").c_str());
    expect_error([] { resolve_data_dir("", "cifar100"); },
                 {"CIFAR-100", a.path() + "/nope", "LETHE_DATA", "cifar100"});
  }
  expect_error([&] { resolve_data_dir(a.path() + "/absent"); }, {"absent", "--data-dir"});
  EXPECT_EQ(resolve_data_dir("", "synthetic"), "");
  expect_error([] { resolve_data_dir("", "mnist"); }, {"mnist"});
}

TEST(DataDir, PresenceChecks) {
  TempDir dir;
  EXPECT_FALSE(cifar10_present(dir.path()));
  write_cifar10(dir.file("data_batch_1.bin"), 1);
  EXPECT_FALSE(cifar10_present(dir.path()));
  write_cifar10(dir.file("test_batch.bin"), 1);
  EXPECT_TRUE(cifar10_present(dir.path()));
  EXPECT_TRUE(dataset_present("cifar10", dir.path()));
  EXPECT_TRUE(dataset_present("synthetic", "/nonexistent"));
}

TEST(Normalization, SpecConstants) {
  const Normalization c10 = normalization_for("cifar10");
  EXPECT_FLOAT_EQ(c10.mean[0], 0.4914f);
  EXPECT_FLOAT_EQ(c10.mean[2], 0.4465f);
  EXPECT_FLOAT_EQ(c10.std[1], 0.2435f);
  const Normalization c100 = normalization_for("cifar100");
  EXPECT_FLOAT_EQ(c100.mean[1], 0.4866f);
  EXPECT_FLOAT_EQ(c100.std[2], 0.2762f);
  EXPECT_EQ(num_classes_for("cifar100"), 100);
  EXPECT_EQ(num_classes_for("cifar10"), 10);
  EXPECT_THROW(normalization_for("imagenet"), Error);
}

// The real data, when a copy is found: LETHE_DATA, or ./data_cache/cifar10 from the repository
// root or the tests folder (ctest's working directory). Never required.
TEST(RealCifar10, LoadsAndSplitsWhenPresent) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LETHE_DATA")) candidates.emplace_back(env);
  candidates.insert(candidates.end(), {"data_cache/cifar10", "../data_cache/cifar10"});
  std::string dir;
  for (const auto& c : candidates)
    if (!c.empty() && cifar10_present(c)) {
      dir = c;
      break;
    }
  if (dir.empty())
    GTEST_SKIP() << "no CIFAR-10 copy found (set LETHE_DATA, or run "
                    "python3 ../shared/data/cifar10/unpack.py data_cache/cifar10)";
  const Dataset train = load_cifar10(dir, Split::Train);
  const Dataset test = load_cifar10(dir, Split::Test);
  EXPECT_EQ(test.size(), 10000);
  ASSERT_GT(train.size(), 0);
  std::vector<int64_t> per_class(10, 0);
  for (int32_t l : train.labels) per_class[static_cast<size_t>(l)]++;
  if (train.size() == 50000) {
    for (int64_t c : per_class) EXPECT_EQ(c, 5000);
    const TrainValSplit s = split_train_val(train.labels, 10, 1);
    EXPECT_EQ(s.train.size(), 45000u);
    EXPECT_EQ(s.val.size(), 5000u);
  }
  // Mean pixel values near the SPEC normalisation means (a JPEG re-encoding shifts them a bit).
  double mean[3] = {0, 0, 0};
  for (int64_t i = 0; i < train.size(); ++i)
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 1024; ++k) mean[c] += train.image(i)[c * 1024 + k];
  const Normalization norm = normalization_for("cifar10");
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(mean[c] / (255.0 * 1024.0 * static_cast<double>(train.size())), norm.mean[c], 0.02);
}

}  // namespace
}  // namespace lethe::data
