// CUDA augmentation (kernels/cuda/augment.cu) against data::crop_flip_image and
// data::image_to_float, bit for bit: every one of the 9 x 9 x 2 transforms, the transforms
// data::draw_crop_flip deals for a training batch, and misaligned source / output pointers
// (the conversion's scalar path); and the training input path that uses them: raw loader
// batches turned into floats on the GPU by train::to_device.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "kernels/augment.h"
#include "models/trainer.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::small_shapes_only;
using lethe::testing::Tolerance;

constexpr Tolerance kExact{0, 0};
constexpr int64_t kImage = data::kImageBytes;  // 3*32*32

std::vector<uint8_t> random_images(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> v(static_cast<size_t>(n * kImage));
  for (auto& b : v) b = static_cast<uint8_t>(dist(gen));
  // The extremes of the byte range, in the first image.
  if (!v.empty()) {
    v[0] = 0;
    v[1] = 255;
  }
  return v;
}

// Runs crop_flip_cuda on the given transforms and compares with the CPU image by image.
void check_transforms(const std::vector<data::CropFlip>& ts, const std::string& what) {
  const auto n = static_cast<int64_t>(ts.size());
  const auto src = random_images(n, 1);
  std::vector<int8_t> dy(ts.size()), dx(ts.size());
  std::vector<uint8_t> flip(ts.size());
  std::vector<float> expect(src.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    dy[i] = static_cast<int8_t>(ts[i].dy);
    dx[i] = static_cast<int8_t>(ts[i].dx);
    flip[i] = static_cast<uint8_t>(ts[i].flip);
    data::crop_flip_image(src.data() + i * kImage, ts[i], expect.data() + i * kImage);
  }
  DeviceBuffer<uint8_t> dsrc(src), dflip(flip);
  DeviceBuffer<int8_t> ddy(dy), ddx(dx);
  DeviceBuffer<float> out(n * kImage);
  out.poison();
  crop_flip_cuda(n, dsrc.get(), ddy.get(), ddx.get(), dflip.get(), out.get());
  EXPECT_TRUE(all_close(expect, out.to_host(), kExact, what));
}

TEST(AugmentCuda, EveryTransformMatchesCpu) {
  LETHE_REQUIRE_GPU();
  std::vector<data::CropFlip> ts;
  for (int dy = -data::kPad; dy <= data::kPad; ++dy)
    for (int dx = -data::kPad; dx <= data::kPad; ++dx)
      for (bool flip : {false, true}) {
        // Small mode keeps every shift of one axis and the corners of the other.
        if (small_shapes_only() && dy != 0 && dy != -data::kPad && dy != data::kPad) continue;
        ts.push_back({dy, dx, flip});
      }
  check_transforms(ts, "crop_flip every transform");
}

TEST(AugmentCuda, DrawnTransformsMatchCpu) {
  LETHE_REQUIRE_GPU();
  const int64_t n = small_shapes_only() ? 16 : 256;  // one training batch
  std::vector<data::CropFlip> ts;
  for (int64_t p = 0; p < n; ++p) ts.push_back(data::draw_crop_flip(1234, 3, 1000 + p));
  check_transforms(ts, "crop_flip drawn batch");
}

TEST(AugmentCuda, ImageToFloatMatchesCpu) {
  LETHE_REQUIRE_GPU();
  const int64_t n = small_shapes_only() ? 3 : 64;
  const auto src = random_images(n, 2);
  std::vector<float> expect(src.size());
  for (int64_t i = 0; i < n; ++i)
    data::image_to_float(src.data() + i * kImage, expect.data() + i * kImage);
  // Offsets (source bytes, output floats): aligned (the vectorised path), and misaligned.
  for (const auto& [so, oo] : {std::pair<int64_t, int64_t>{0, 0}, {1, 0}, {0, 1}, {3, 2}}) {
    DeviceBuffer<uint8_t> dsrc(n * kImage + so);
    DeviceBuffer<float> out(n * kImage + oo);
    CUDA_CHECK(cudaMemcpy(dsrc.get() + so, src.data(), src.size(), cudaMemcpyHostToDevice));
    out.poison();
    image_to_float_cuda(n, dsrc.get() + so, out.get() + oo);
    const auto all = out.to_host();
    const std::vector<float> got(all.begin() + oo, all.end());
    EXPECT_TRUE(all_close(expect, got, kExact,
                          "image_to_float src+" + std::to_string(so) + " out+" +
                              std::to_string(oo)));
  }
}

TEST(AugmentCuda, RawLoaderBatchesOnTheGpuEqualTheCpuBatches) {
  LETHE_REQUIRE_GPU();
  const data::Dataset d = data::make_synthetic(small_shapes_only() ? 40 : 300, 10, 4);
  std::vector<int64_t> idx(static_cast<size_t>(d.size()));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  for (bool augment : {true, false}) {
    data::LoaderOptions o{.batch_size = 32, .shuffle = true, .augment = augment, .seed = 9};
    data::LoaderOptions r = o;
    r.raw = true;
    data::BatchLoader cpu(d, idx, o), raw(d, idx, r);
    for (int64_t b = 0; b < cpu.num_batches(); ++b) {
      const data::Batch want = cpu.make_batch(2, b);
      data::Batch got = raw.make_batch(2, b);
      train::to_device(got, Device::cuda(0));
      ASSERT_TRUE(got.images.device().is_cuda());
      EXPECT_TRUE(all_close(want.images.to_vector<float>(), got.images.to_vector<float>(), kExact,
                            std::string(augment ? "augmented" : "plain") + " batch " +
                                std::to_string(b)));
      EXPECT_EQ(want.labels.to_vector<int32_t>(), got.labels.to_vector<int32_t>());
    }
  }
}

}  // namespace
}  // namespace lethe::kernels
