// BatchLoader: deterministic batches (a pure function of seed, epoch and batch number) and
// the one-batch-ahead prefetch thread (see loader.h for the RNG scheme and the threading).
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "data/augment.h"
#include "framework/rng.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

constexpr uint64_t kOrderStream = 1;

}  // namespace

BatchLoader::BatchLoader(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options)
    : data_(data), indices_(std::move(indices)), options_(options) {
  LETHE_CHECK(options_.batch_size > 0, "BatchLoader: batch_size=", options_.batch_size,
              " must be > 0.");
  LETHE_CHECK(static_cast<int64_t>(data_.images.size()) == data_.size() * kImageBytes,
              "BatchLoader: data set '", data_.name, "' holds ", data_.images.size(),
              " image bytes for ", data_.size(), " labels; expected ", kImageBytes, " per image.");
  LETHE_CHECK(num_samples() < (int64_t{1} << 30), "BatchLoader: ", num_samples(),
              " samples exceed the 2^30 positions an epoch may have.");
  for (size_t k = 0; k < indices_.size(); ++k)
    LETHE_CHECK(indices_[k] >= 0 && indices_[k] < data_.size(), "BatchLoader: index ",
                indices_[k], " (entry ", k, " of the index list) is outside data set '",
                data_.name, "' of ", data_.size(), " images.");
  if (options_.prefetch) worker_ = std::thread([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t BatchLoader::num_batches() const {
  const int64_t n = num_samples(), bs = options_.batch_size;
  return options_.drop_last ? n / bs : (n + bs - 1) / bs;
}

void BatchLoader::set_label_override(std::vector<int32_t> labels) {
  Labels table;
  if (!labels.empty()) {
    LETHE_CHECK(static_cast<int64_t>(labels.size()) == data_.size(),
                "BatchLoader::set_label_override: the table has ", labels.size(),
                " entries; expected one per image of data set '", data_.name, "' (",
                data_.size(), ").");
    for (size_t i = 0; i < labels.size(); ++i)
      LETHE_CHECK(labels[i] < data_.num_classes, "BatchLoader::set_label_override: label ",
                  labels[i], " for image ", i, " is outside 0..", data_.num_classes - 1, ".");
    table = std::make_shared<const std::vector<int32_t>>(std::move(labels));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    labels_ = std::move(table);
    // A prefetched batch carries the old labels: drop it and rebuild from the consumer's place.
    ++generation_;
    slot_.reset();
    error_ = nullptr;
    produce_ = consume_;
  }
  cv_.notify_all();
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  LETHE_CHECK(epoch >= 0 && epoch < (int64_t{1} << 31) - 1, "BatchLoader: epoch ", epoch,
              " must lie in [0, 2^31 - 1).");
  if (!options_.shuffle) return indices_;
  Generator g(options_.seed, kOrderStream);
  g.set_state({options_.seed, kOrderStream, static_cast<uint64_t>(epoch + 1) << 32});
  const std::vector<int64_t> perm = g.permutation(num_samples());
  std::vector<int64_t> order(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) order[k] = indices_[static_cast<size_t>(perm[k])];
  return order;
}

Batch BatchLoader::build(const std::vector<int64_t>& order, const std::vector<int32_t>* labels,
                         int64_t epoch, int64_t b) const {
  const int64_t bs = options_.batch_size;
  const int64_t first = b * bs;
  const int64_t count = std::min(bs, num_samples() - first);
  Batch out;
  out.epoch = epoch;
  out.batch = b;
  const bool raw = options_.raw;
  if (raw) {
    out.raw = Tensor::empty({count, kChannels, kHeight, kWidth}, DType::U8);
    if (options_.augment) {
      out.shift_y = Tensor::empty({count}, DType::U8);
      out.shift_x = Tensor::empty({count}, DType::U8);
      out.flip = Tensor::empty({count}, DType::U8);
    }
  } else {
    out.images = Tensor::empty({count, kChannels, kHeight, kWidth}, DType::F32);
  }
  out.labels = Tensor::empty({count}, DType::I32);
  out.indices.assign(order.begin() + first, order.begin() + first + count);
  float* img = raw ? nullptr : out.images.data<float>();
  int32_t* lab = out.labels.data<int32_t>();
  for (int64_t k = 0; k < count; ++k) {
    const int64_t idx = out.indices[static_cast<size_t>(k)];
    // Re-checked per batch: the data set is borrowed, and a caller may have changed it.
    LETHE_CHECK(idx < data_.size(), "BatchLoader: index ", idx, " is outside data set '",
                data_.name, "' of ", data_.size(), " images (was it changed after the loader "
                "was made?).");
    int32_t label = data_.labels[static_cast<size_t>(idx)];
    if (labels != nullptr && (*labels)[static_cast<size_t>(idx)] >= 0)
      label = (*labels)[static_cast<size_t>(idx)];
    LETHE_CHECK(label >= 0 && label < data_.num_classes, "BatchLoader: image ", idx,
                " of data set '", data_.name, "' has label ", label, ", outside 0..",
                data_.num_classes - 1, ".");
    lab[k] = label;
    if (raw) {
      std::memcpy(out.raw.data<uint8_t>() + k * kImageBytes, data_.image(idx), kImageBytes);
      if (options_.augment) {
        const CropFlip t = draw_crop_flip(options_.seed, epoch, first + k);
        out.shift_y.data<uint8_t>()[k] = static_cast<uint8_t>(static_cast<int8_t>(t.dy));
        out.shift_x.data<uint8_t>()[k] = static_cast<uint8_t>(static_cast<int8_t>(t.dx));
        out.flip.data<uint8_t>()[k] = t.flip ? 1 : 0;
      }
      continue;
    }
    float* dst = img + k * kImageBytes;
    if (options_.augment)
      crop_flip_image(data_.image(idx), draw_crop_flip(options_.seed, epoch, first + k), dst);
    else
      image_to_float(data_.image(idx), dst);
  }
  return out;
}

Batch BatchLoader::make_batch(int64_t epoch, int64_t b) const {
  LETHE_CHECK(b >= 0 && b < num_batches(), "BatchLoader::make_batch: batch ", b,
              " is outside 0..", num_batches() - 1, ".");
  Labels labels;
  {
    // labels_ is shared with the worker; copying the pointer under the lock is enough,
    // since a table is never modified once published.
    std::lock_guard<std::mutex> lock(mutex_);
    labels = labels_;
  }
  return build(epoch_order(epoch), labels.get(), epoch, b);
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  LETHE_CHECK(first_batch >= 0 && first_batch <= num_batches(), "BatchLoader::start_epoch: ",
              "first batch ", first_batch, " is outside 0..", num_batches(), ".");
  // The permutation is drawn outside the lock: the worker may still be finishing stale work.
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(order);
    produce_ = consume_ = first_batch;
    slot_.reset();
    error_ = nullptr;
    active_ = true;
  }
  cv_.notify_all();
}

bool BatchLoader::next(Batch* out) {
  LETHE_CHECK(out != nullptr, "BatchLoader::next: the output batch is null.");
  std::unique_lock<std::mutex> lock(mutex_);
  LETHE_CHECK(active_, "BatchLoader::next: no epoch in progress; call start_epoch first "
              "(an error ends the epoch).");
  if (consume_ >= num_batches()) return false;
  if (!options_.prefetch) {
    const Order order = order_;
    const Labels labels = labels_;
    const int64_t epoch = epoch_, b = consume_;
    lock.unlock();
    try {
      *out = build(*order, labels.get(), epoch, b);
    } catch (...) {
      lock.lock();
      active_ = false;
      throw;
    }
    lock.lock();
    ++consume_;
    produce_ = consume_;
    return true;
  }
  cv_.wait(lock, [this] { return slot_.has_value() || error_ != nullptr; });
  if (error_) {
    std::exception_ptr e = std::exchange(error_, nullptr);
    active_ = false;
    ++generation_;
    lock.unlock();
    cv_.notify_all();
    std::rethrow_exception(e);
  }
  *out = std::move(*slot_);
  slot_.reset();
  ++consume_;
  lock.unlock();
  cv_.notify_all();
  return true;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Work exists when an epoch is running, nothing is waiting in the slot, and the batch
    // after the one in the consumer's hands is still unbuilt: that keeps one batch ahead.
    cv_.wait(lock, [this] {
      return stop_ || (active_ && !slot_ && !error_ && produce_ == consume_ &&
                       produce_ < num_batches());
    });
    if (stop_) return;
    const uint64_t generation = generation_;
    const Order order = order_;
    const Labels labels = labels_;
    const int64_t epoch = epoch_, b = produce_++;
    lock.unlock();
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = build(*order, labels.get(), epoch, b);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (generation != generation_) continue;  // start_epoch or a new label table came first
    if (error)
      error_ = error;
    else
      slot_ = std::move(batch);
    cv_.notify_all();
  }
}

}  // namespace lethe::data
