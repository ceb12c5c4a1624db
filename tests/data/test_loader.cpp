// BatchLoader: batch contents, coverage per epoch, drop_last, determinism, resume at any
// batch bit for bit, label overrides, prefetch error propagation and shutdown, and the time
// to produce a 128-image augmented batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <numeric>

#include "data/augment.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "kernels/check.h"
#include "models/trainer.h"

namespace lethe::data {
namespace {

std::vector<int64_t> iota_indices(int64_t n, int64_t first = 0) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// All batches next() returns after start_epoch(epoch, first).
std::vector<Batch> run_epoch(BatchLoader& loader, int64_t epoch, int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(&b)) out.push_back(std::move(b));
  return out;
}

::testing::AssertionResult same_batch(const Batch& a, const Batch& b) {
  if (a.epoch != b.epoch || a.batch != b.batch)
    return ::testing::AssertionFailure() << "batch (" << a.epoch << "," << a.batch << ") vs ("
                                         << b.epoch << "," << b.batch << ")";
  if (a.indices != b.indices) return ::testing::AssertionFailure() << "indices differ in batch " << a.batch;
  if (a.images.shape() != b.images.shape() ||
      std::memcmp(a.images.data<float>(), b.images.data<float>(), a.images.nbytes()) != 0)
    return ::testing::AssertionFailure() << "images differ in batch " << a.batch;
  if (a.labels.to_vector<int32_t>() != b.labels.to_vector<int32_t>())
    return ::testing::AssertionFailure() << "labels differ in batch " << a.batch;
  return ::testing::AssertionSuccess();
}

class LoaderTest : public ::testing::Test {
 protected:
  Dataset data_ = make_synthetic(403, 10, 9);
};

TEST_F(LoaderTest, EvaluationBatchesFollowTheIndexList) {
  std::vector<int64_t> idx = {5, 3, 400, 0, 7, 7, 100};
  BatchLoader loader(data_, idx, {.batch_size = 3});
  ASSERT_EQ(loader.num_batches(), 3);
  const std::vector<Batch> batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].size(), 1);
  std::vector<float> want(kImageBytes);
  int64_t k = 0;
  for (const Batch& b : batches) {
    ASSERT_EQ(b.images.shape(), (Shape{b.size(), 3, 32, 32}));
    ASSERT_EQ(b.labels.shape(), (Shape{b.size()}));
    EXPECT_EQ(b.images.dtype(), DType::F32);
    EXPECT_EQ(b.labels.dtype(), DType::I32);
    for (int64_t r = 0; r < b.size(); ++r, ++k) {
      ASSERT_EQ(b.indices[r], idx[k]);
      EXPECT_EQ(b.labels.data<int32_t>()[r], data_.labels[idx[k]]);
      image_to_float(data_.image(idx[k]), want.data());
      ASSERT_EQ(std::memcmp(b.images.data<float>() + r * kImageBytes, want.data(),
                            kImageBytes * sizeof(float)), 0);
    }
  }
}

TEST_F(LoaderTest, ShuffledEpochCoversEveryIndexOnce) {
  const std::vector<int64_t> idx = iota_indices(300, 50);
  BatchLoader loader(data_, idx, {.batch_size = 64, .shuffle = true, .augment = true, .seed = 4});
  std::vector<int64_t> previous;
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    for (const Batch& b : run_epoch(loader, e)) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    EXPECT_EQ(seen, loader.epoch_order(e));
    EXPECT_NE(seen, previous);   // each epoch has its own order
    EXPECT_NE(seen, idx);        // and it is shuffled
    previous = seen;
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, idx) << "epoch " << e;
  }
}

TEST_F(LoaderTest, DropLast) {
  const std::vector<int64_t> idx = iota_indices(403);
  BatchLoader keep(data_, idx, {.batch_size = 100, .shuffle = true, .seed = 1});
  BatchLoader drop(data_, idx, {.batch_size = 100, .shuffle = true, .drop_last = true, .seed = 1});
  EXPECT_EQ(keep.num_batches(), 5);
  EXPECT_EQ(drop.num_batches(), 4);
  const auto a = run_epoch(keep, 2), b = run_epoch(drop, 2);
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(a[4].size(), 3);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(same_batch(a[i], b[i]));
  BatchLoader tiny(data_, iota_indices(5), {.batch_size = 8, .drop_last = true});
  EXPECT_EQ(tiny.num_batches(), 0);
  EXPECT_TRUE(run_epoch(tiny, 0).empty());
}

TEST_F(LoaderTest, BatchesArePureFunctionsOfSeedEpochAndBatch) {
  const std::vector<int64_t> idx = iota_indices(403);
  const LoaderOptions opt{.batch_size = 50, .shuffle = true, .augment = true, .seed = 12};
  LoaderOptions sync = opt;
  sync.prefetch = false;
  BatchLoader a(data_, idx, opt), b(data_, idx, sync);
  run_epoch(a, 0);  // a has already served another epoch: nothing may carry over
  const auto ea = run_epoch(a, 6), eb = run_epoch(b, 6);
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size(); ++i) {
    EXPECT_TRUE(same_batch(ea[i], eb[i]));
    EXPECT_TRUE(same_batch(ea[i], a.make_batch(6, static_cast<int64_t>(i))));
  }
  LoaderOptions other = opt;
  other.seed = 13;
  BatchLoader c(data_, idx, other);
  EXPECT_FALSE(same_batch(ea[0], run_epoch(c, 6)[0]));
}

// Raw batches (the GPU's input path) carry the stored bytes and the drawn transforms; turned
// into floats by train::to_device they are the float batches bit for bit, augmented or not.
TEST_F(LoaderTest, RawBatchesConvertToTheFloatBatches) {
  const std::vector<int64_t> idx = iota_indices(403);
  for (bool augment : {true, false}) {
    SCOPED_TRACE(augment ? "augmented" : "plain");
    const LoaderOptions opt{.batch_size = 64, .shuffle = true, .augment = augment, .seed = 5};
    LoaderOptions raw = opt;
    raw.raw = true;
    BatchLoader a(data_, idx, opt), b(data_, idx, raw);
    const auto ea = run_epoch(a, 3), eb = run_epoch(b, 3);
    ASSERT_EQ(ea.size(), eb.size());
    int flips = 0;
    for (size_t i = 0; i < ea.size(); ++i) {
      Batch rb = eb[i];
      ASSERT_FALSE(rb.images.defined());
      ASSERT_EQ(rb.raw.dtype(), DType::U8);
      EXPECT_EQ(rb.shift_y.defined(), augment);
      if (augment) {
        for (int64_t k = 0; k < rb.size(); ++k) {
          const CropFlip t = draw_crop_flip(5, 3, static_cast<int64_t>(i) * 64 + k);
          ASSERT_EQ(static_cast<int8_t>(rb.shift_y.data<uint8_t>()[k]), t.dy);
          ASSERT_EQ(static_cast<int8_t>(rb.shift_x.data<uint8_t>()[k]), t.dx);
          flips += rb.flip.data<uint8_t>()[k];
        }
      }
      train::to_device(rb, Device::cpu());
      EXPECT_FALSE(rb.raw.defined());
      EXPECT_TRUE(same_batch(ea[i], rb));
    }
    if (augment) {
      EXPECT_GT(flips, 100);  // about half of 403
    }
  }
}

TEST_F(LoaderTest, ResumeAtAnyBatchEqualsTheUninterruptedEpoch) {
  const std::vector<int64_t> idx = iota_indices(403);
  for (bool prefetch : {true, false}) {
    const LoaderOptions opt{.batch_size = 32, .shuffle = true, .augment = true, .seed = 77,
                            .prefetch = prefetch};
    BatchLoader full_loader(data_, idx, opt);
    const auto full = run_epoch(full_loader, 4);
    ASSERT_EQ(full.size(), 13u);
    for (int64_t first : {0, 1, 6, 12, 13}) {
      BatchLoader resumed(data_, idx, opt);  // a fresh process after a restart
      const auto rest = run_epoch(resumed, 4, first);
      ASSERT_EQ(static_cast<int64_t>(rest.size()), 13 - first);
      for (size_t i = 0; i < rest.size(); ++i)
        EXPECT_TRUE(same_batch(rest[i], full[static_cast<size_t>(first) + i]))
            << "prefetch " << prefetch << " resume at " << first;
    }
    // Restarting mid-epoch on the same loader discards the prefetched batch.
    full_loader.start_epoch(4, 0);
    Batch b;
    ASSERT_TRUE(full_loader.next(&b));
    EXPECT_TRUE(same_batch(b, full[0]));
    full_loader.start_epoch(4, 9);
    ASSERT_TRUE(full_loader.next(&b));
    EXPECT_TRUE(same_batch(b, full[9]));
  }
  BatchLoader l(data_, idx, {.batch_size = 32});
  EXPECT_THROW(l.start_epoch(0, 14), Error);
  EXPECT_THROW(l.start_epoch(-1, 0), Error);
}

TEST_F(LoaderTest, LabelOverride) {
  const std::vector<int64_t> idx = iota_indices(40);
  BatchLoader loader(data_, idx, {.batch_size = 16, .seed = 3});
  std::vector<int32_t> table(static_cast<size_t>(data_.size()), -1);
  for (int64_t i = 0; i < 40; i += 3) table[static_cast<size_t>(i)] = static_cast<int32_t>((data_.labels[i] + 1) % 10);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(&b));  // batch 0 with the dataset's labels; batch 1 is prefetched
  for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(b.labels.data<int32_t>()[r], data_.labels[r]);
  loader.set_label_override(table);
  int64_t row = 16;
  while (loader.next(&b))
    for (int64_t r = 0; r < b.size(); ++r, ++row) {
      const int32_t want = row % 3 == 0 ? (data_.labels[row] + 1) % 10 : data_.labels[row];
      ASSERT_EQ(b.labels.data<int32_t>()[r], want) << "image " << row;
    }
  EXPECT_EQ(row, 40);
  loader.set_label_override({});
  EXPECT_EQ(loader.make_batch(0, 0).labels.data<int32_t>()[0], data_.labels[0]);
  EXPECT_THROW((loader.set_label_override({1, 2, 3})), Error);
  table[5] = 10;
  EXPECT_THROW(loader.set_label_override(table), Error);
}

TEST_F(LoaderTest, WorkerErrorsReachTheConsumer) {
  Dataset data = make_synthetic(40, 10, 1);
  BatchLoader loader(data, iota_indices(40), {.batch_size = 8});
  data.labels[19] = 99;  // corrupt after construction: only building batch 2 can notice
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(&b));
  ASSERT_TRUE(loader.next(&b));
  try {
    loader.next(&b);
    FAIL() << "expected the worker's error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 99"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loader.next(&b), Error);  // the epoch ended with the error
  data.labels[19] = 1;
  EXPECT_EQ(run_epoch(loader, 0).size(), 5u);  // a new start_epoch recovers
}

TEST_F(LoaderTest, ShutdownAndBadInput) {
  {
    BatchLoader idle(data_, iota_indices(10), {.batch_size = 4});
  }
  {
    BatchLoader busy(data_, iota_indices(400), {.batch_size = 4, .augment = true});
    busy.start_epoch(0);
    Batch b;
    ASSERT_TRUE(busy.next(&b));  // destroyed with a batch prefetched or in flight
  }
  BatchLoader fresh(data_, iota_indices(10), {.batch_size = 4});
  Batch b;
  EXPECT_THROW(fresh.next(&b), Error);  // no start_epoch yet
  EXPECT_THROW((BatchLoader(data_, {0, 403}, {.batch_size = 4})), Error);
  EXPECT_THROW((BatchLoader(data_, {0}, {.batch_size = 0})), Error);
}

// Measurement, not a pass/fail bound: a CIFAR-sized epoch (45,000 of 50,000 images, batch
// 128, shuffled and augmented) built synchronously, and the consumer's wait with prefetch.
TEST(LoaderTiming, AugmentedBatchOf128) {
  Dataset data;
  data.name = "timing";
  data.num_classes = 10;
  data.images.resize(static_cast<size_t>(50000 * kImageBytes));
  for (size_t k = 0; k < data.images.size(); ++k) data.images[k] = static_cast<uint8_t>(k * 2654435761u >> 24);
  data.labels.assign(50000, 3);
  const std::vector<int64_t> idx = iota_indices(45000);
  using clock = std::chrono::steady_clock;
  for (bool prefetch : {false, true}) {
    BatchLoader loader(data, idx, {.batch_size = 128, .shuffle = true, .augment = true,
                                   .seed = 1, .prefetch = prefetch});
    const auto t0 = clock::now();
    loader.start_epoch(0);
    const auto t1 = clock::now();
    Batch b;
    int64_t n = 0;
    while (loader.next(&b)) ++n;
    const auto t2 = clock::now();
    ASSERT_EQ(n, 352);
    const double per_batch_ms = std::chrono::duration<double, std::milli>(t2 - t1).count() / n;
    std::cout << "[ timing ] prefetch=" << prefetch << ": start_epoch (45000-permutation) "
              << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms, "
              << per_batch_ms << " ms per 128-image augmented batch ("
              << 128.0 / per_batch_ms * 1000.0 << " images/s)\n";
    RecordProperty(prefetch ? "ms_per_batch_prefetch" : "ms_per_batch_sync", std::to_string(per_batch_ms));
    EXPECT_LT(per_batch_ms, 100.0);  // a sanity bound far below the ~200 ms a training step takes
  }
}

}  // namespace
}  // namespace lethe::data
