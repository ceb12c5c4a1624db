#include <gtest/gtest.h>

#include "framework/host_allocator.h"
#include "framework/tensor.h"

namespace lethe {
namespace {

TEST(Tensor, CreationAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4, 5});
  EXPECT_EQ(t.numel(), 120);
  EXPECT_EQ(t.dim(), 4);
  EXPECT_EQ(t.size(-1), 5);
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.str(), "float32[2, 3, 4, 5] on cpu");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);  // AVX-512 aligned
  for (float v : t.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  Tensor f = Tensor::full({3}, 2.5, DType::F64);
  EXPECT_EQ(f.to_vector<double>(), (std::vector<double>{2.5, 2.5, 2.5}));
  Tensor s = Tensor::full({}, 7.0, DType::I32);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 7.0);
}

TEST(Tensor, AllDtypes) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::I32), 4u);
  EXPECT_EQ(dtype_size(DType::U8), 1u);
  Tensor u = Tensor::from_vector<uint8_t>({0, 1, 255}, {3});
  EXPECT_EQ(u.to(DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 255}));
  Tensor d = Tensor::from_vector<float>({1.5f, -2.0f}, {2}).to(DType::F64);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{1.5, -2.0}));
  EXPECT_THROW(d.data<float>(), Error);  // wrong dtype access is caught
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor v = t.view({2, -1});
  EXPECT_EQ(v.shape(), (Shape{2, 3}));
  v.data<float>()[0] = 42;
  EXPECT_EQ(t.data<float>()[0], 42);  // same storage
  Tensor rows = t.narrow(1, 2);
  EXPECT_EQ(rows.shape(), (Shape{2, 2}));
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_TRUE(rows.is_contiguous());
  // The storage outlives the tensor it came from (RAII shared by views).
  Tensor keep;
  {
    Tensor tmp = Tensor::from_vector<float>({7, 8}, {2});
    keep = tmp.view({1, 2});
  }
  EXPECT_EQ(keep.to_vector<float>(), (std::vector<float>{7, 8}));
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.narrow(2, 2), Error);
}

TEST(Tensor, CloneIsIndependent) {
  Tensor t = Tensor::from_vector<float>({1, 2}, {2});
  Tensor c = t.clone();
  c.data<float>()[0] = 9;
  EXPECT_EQ(t.data<float>()[0], 1);
  t.copy_(c);
  EXPECT_EQ(t.data<float>()[0], 9);
  EXPECT_THROW(t.copy_(Tensor::zeros({3})), Error);
}

TEST(Tensor, CudaDeviceAbstraction) {
  if (cuda_device_count() == 0) {
    // Without a GPU (or CUDA build) a CUDA allocation fails with a clear error, not a crash.
    EXPECT_THROW(Tensor::zeros({4}, DType::F32, Device::cuda()), Error);
    return;
  }
  Tensor h = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor d = h.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector<float>(), h.to_vector<float>());
}

TEST(Tensor, RejectsBadShapes) {
  EXPECT_THROW(Tensor::empty({2, -1}), Error);
  EXPECT_THROW(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), Error);
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_THROW(t.shape(), Error);
}

}  // namespace
}  // namespace lethe

namespace lethe {
namespace {

TEST(HostAllocator, ReusesFreedBlocksOfTheSameSize) {
  host_release_cache();
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1 << 20});  // 4 MiB: cached when freed
    first = t.raw_data();
  }
  EXPECT_GE(host_cached_bytes(), size_t{4} << 20);
  Tensor again = Tensor::empty({1 << 20});
  EXPECT_EQ(again.raw_data(), first);  // the same block, no new mapping
  EXPECT_EQ(reinterpret_cast<uintptr_t>(again.raw_data()) % 64, 0u);
  host_release_cache();
  EXPECT_EQ(host_cached_bytes(), 0u);
}

}  // namespace
}  // namespace lethe
