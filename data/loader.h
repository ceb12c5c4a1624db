// BatchLoader: turns a Dataset plus an index list (the training split, a retain or forget
// set, the test set) into float32 batches, optionally shuffled and augmented, produced one
// batch ahead by a background thread.
//
// Format of a batch: images float32 [B,3,32,32] in [0, 1] (not normalised: the model does
// that), labels int32 [B], and the original indices of its images.
//
// Exact resume. The content of batch b of epoch e (which images, which crop and flip) is a
// pure function of (seed, e, b) and of the loader's fixed inputs (index list, batch size,
// flags, label table); nothing carries over from one batch or epoch to the next. So a run
// resumed at (epoch, step) calls start_epoch(epoch, batch) and sees exactly the batches an
// uninterrupted run would, and the checkpoint needs only the epoch and step it already has.
// The scheme (design.md streams 1 and 2):
//   order(e)  shuffle: the index list permuted by Generator(seed, 1).permutation(n) drawn
//             at offset (e + 1) * 2^32 (offsets below 2^32 belong to data/split.h);
//             no shuffle: the index list as given.
//   batch b   positions [b * batch_size, min((b + 1) * batch_size, n)) of order(e); with
//             drop_last the final partial batch is skipped.
//   augment   the sample at position p of epoch e gets draw_crop_flip(seed, e, p)
//             (Generator(seed, 2) at offset e * 2^32 + 4 p; data/augment.h).
//
// Threads: the prefetch thread decodes and augments a whole batch serially; it does not use
// OpenMP, so it never competes with the training loop's OpenMP team for the cores (a 128-image
// augmented batch takes well under a millisecond, against ~200 ms of training per batch at
// 600 images/s). An exception in the worker is re-thrown by the next next() call and ends
// the epoch. The destructor stops and joins the worker.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "framework/tensor.h"

namespace lethe::data {

/// One batch of images with labels and original indices.
struct Batch {
  Tensor images;                 ///< float32 [B,3,32,32] on the CPU, values in [0, 1]
                                 ///< (undefined for a raw batch until converted)
  /// Raw batches only (LoaderOptions::raw): uint8 [B,3,32,32], the images as stored, and
  /// for an augmented loader the drawn transforms: [B] row and column shifts (int8 values
  /// -4..4 stored as their two's-complement bytes in uint8 tensors: lethe has no int8 dtype)
  /// and uint8 [B] flips (all three undefined without augmentation). train::to_device turns them into `images`
  /// (on the GPU with the kernels of kernels/augment.h, bit-identical to the CPU's).
  Tensor raw, shift_y, shift_x, flip;
  Tensor labels;                 ///< int32 [B] on the CPU
  std::vector<int64_t> indices;  ///< original dataset index of each row
  int64_t epoch = 0;             ///< the epoch it belongs to
  int64_t batch = 0;             ///< its number within the epoch
  /// Number of images B.
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

/// How a BatchLoader draws batches. Training: shuffle + augment (+ drop_last if wanted);
/// evaluation: neither.
struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = false;    ///< a seeded permutation per epoch (else the index list's order)
  bool augment = false;    ///< pad-crop-flip (training only, SPEC section 1)
  bool drop_last = false;  ///< skip a final batch smaller than batch_size
  uint64_t seed = 0;       ///< the run's seed: keys both the order and the augmentation
  bool prefetch = true;    ///< build the next batch on a background thread
  /// Serve raw batches: the uint8 images and the drawn transforms instead of float images,
  /// so a GPU consumer copies a quarter of the bytes and augments on the device.
  bool raw = false;
};

/// Serves the batches of one index list of a Dataset, epoch by epoch, one batch ahead.
class BatchLoader {
 public:
  /// @param data must outlive the loader and stay unchanged while it is in use
  /// @param indices original indices into `data` (duplicates allowed)
  BatchLoader(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Images per epoch before drop_last (the index list's length).
  int64_t num_samples() const { return static_cast<int64_t>(indices_.size()); }
  /// Batches per epoch: ceil(n / batch_size), or floor with drop_last.
  int64_t num_batches() const;
  const LoaderOptions& options() const { return options_; }
  const std::vector<int64_t>& indices() const { return indices_; }

  /// Replaces the labels of the batches (unlearning relabels samples): `labels` has one
  /// entry per dataset image (indexed by original index); an entry < 0 keeps the dataset's
  /// label. An empty vector removes the override. Batches already prefetched are rebuilt.
  void set_label_override(std::vector<int32_t> labels);

  /// The original indices of epoch `epoch` in the order batches take them.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  /// Builds batch `b` of epoch `epoch` synchronously (the pure function the loader serves).
  Batch make_batch(int64_t epoch, int64_t b) const;

  /// Starts (or restarts) epoch `epoch` at batch `first_batch` (0..num_batches()); next()
  /// then returns batches first_batch, first_batch + 1, ... of that epoch.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);

  /// Moves the next batch of the current epoch into `out`; returns false (and leaves `out`
  /// alone) at the end of the epoch. Re-throws an error raised while building the batch.
  bool next(Batch* out);

 private:
  using Order = std::shared_ptr<const std::vector<int64_t>>;
  using Labels = std::shared_ptr<const std::vector<int32_t>>;
  Batch build(const std::vector<int64_t>& order, const std::vector<int32_t>* labels,
              int64_t epoch, int64_t b) const;
  void worker_loop();

  const Dataset& data_;
  const std::vector<int64_t> indices_;
  const LoaderOptions options_;

  // Everything below is guarded by mutex_; cv_ signals every change of it.
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  ///< bumped by start_epoch / set_label_override: stale work is dropped
  bool active_ = false;      ///< an epoch is started and has not failed
  bool stop_ = false;        ///< the destructor asks the worker to exit
  int64_t epoch_ = 0;
  int64_t produce_ = 0;      ///< the next batch the worker builds
  int64_t consume_ = 0;      ///< the next batch next() returns
  Order order_;
  Labels labels_;
  std::optional<Batch> slot_;  ///< the one prefetched batch (number consume_)
  std::exception_ptr error_;   ///< the worker's failure for batch consume_
  std::thread worker_;
};

}  // namespace lethe::data
