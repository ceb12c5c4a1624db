// End to end on the GPU: one SGD step of ResNet-18 and of VGG-16 (CIFAR variants) on a fixed
// batch gives the same loss, gradients and updated weights on the CPU and on CUDA, dense and
// with a 95% OMP mask (pruned weights stay exactly 0 on the GPU too). Also: the caching
// allocator makes no cudaMalloc call once the loop is warm, and Module::to keeps every handle
// (optimizer, masks) pointing at the moved tensors.
//
// Tolerance: whole-network results accumulate many fp32 roundings in different orders on the
// two devices, so each tensor is compared with |gpu - cpu| <= 1e-4 + 1e-3 * max|cpu| (the
// kernel parity tests hold each op to the tighter element-wise kFp32Tol).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "framework/cuda_allocator.h"
#include "framework/ops.h"
#include "framework/optim.h"
#include "framework/settings.h"
#include "models/model.h"
#include "prune/mask.h"
#include "prune/select.h"
#include "testing/cuda_harness.h"

namespace lethe {
namespace {

struct StepResult {
  double loss = 0;
  std::map<std::string, std::vector<float>> grads, weights;
};

/// One SGD step (lr 0.1, momentum 0.9, wd 5e-4) from seed-0 weights on a fixed batch.
StepResult one_step(const models::ModelSpec& spec, Device dev, double prune_rate, int64_t batch) {
  Generator gen(0, 0);
  auto model = models::make_model(spec, gen);
  prune::MaskSet masks;
  if (prune_rate > 0) {
    masks = prune::omp_masks(*model, prune_rate);
    prune::apply_masks(*model, masks);
  }
  Tensor x = Tensor::empty({batch, 3, 32, 32});
  Generator data_gen(7, 0);
  data_gen.fill_uniform(x.data<float>(), x.numel());
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (auto& v : y) v = static_cast<int32_t>(data_gen.randint(10));
  Tensor labels = Tensor::from_vector(y, {batch});
  if (dev.is_cuda()) {
    model->to(dev);
    x = x.to(dev);
    labels = labels.to(dev);
  }
  SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  for (const auto& [name, p] : model->named_parameters()) {
    auto it = masks.find(name);
    if (it != masks.end()) opt.set_mask(p, it->second);
  }
  model->train();
  const Tensor loss = ops::cross_entropy((*model)(x), labels);
  opt.zero_grad();
  loss.backward();
  StepResult r;
  r.loss = loss.item();
  for (const auto& [name, p] : model->named_parameters()) r.grads[name] = p.grad().to_vector<float>();
  opt.step();
  for (const auto& [name, t] : model->state_dict())
    if (t.dtype() == DType::F32) r.weights[name] = t.to_vector<float>();
  return r;
}

::testing::AssertionResult close_by_scale(const std::vector<float>& ref,
                                          const std::vector<float>& got, const std::string& what) {
  if (ref.size() != got.size()) return ::testing::AssertionFailure() << what << ": size differs";
  double scale = 0;
  for (float v : ref) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  const double tol = 1e-4 + 1e-3 * scale;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(err <= tol))
      return ::testing::AssertionFailure() << what << "[" << i << "]: cuda " << got[i] << " vs cpu "
                                           << ref[i] << " (tolerance " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

void compare_step(const std::string& arch, double width, double rate) {
  const models::ModelSpec spec{arch, width, 10, "cifar10"};
  const int64_t batch = ::lethe::testing::small_shapes_only() ? 4 : 32;
  ExecutionSettings es;
  es.sparse = SparseMode::Off;  // the CPU side runs the same dense masked products
  set_execution_settings(es);
  const StepResult cpu = one_step(spec, Device::cpu(), rate, batch);
  const StepResult gpu = one_step(spec, Device::cuda(0), rate, batch);
  set_execution_settings(ExecutionSettings{});
  EXPECT_NEAR(gpu.loss, cpu.loss, 1e-4 + 1e-4 * std::fabs(cpu.loss));
  for (const auto& [name, g] : cpu.grads) {
    EXPECT_TRUE(close_by_scale(g, gpu.grads.at(name), arch + " grad " + name));
  }
  for (const auto& [name, w] : cpu.weights) {
    const std::vector<float>& gw = gpu.weights.at(name);
    EXPECT_TRUE(close_by_scale(w, gw, arch + " updated " + name));
    if (rate > 0 && name.find("conv") != std::string::npos) {
      // Pruned on the CPU means pruned on the GPU: exactly zero after the step.
      for (size_t i = 0; i < w.size(); ++i) {
        if (w[i] == 0.0f && gw[i] != 0.0f) {
          ADD_FAILURE() << name << "[" << i << "] revived on the GPU: " << gw[i];
          break;
        }
      }
    }
  }
}

TEST(CudaTrainingStep, ResNet18MatchesCpu) {
  LETHE_REQUIRE_GPU();
  compare_step("resnet18", ::lethe::testing::small_shapes_only() ? 0.125 : 1.0, 0.0);
}

TEST(CudaTrainingStep, Vgg16MatchesCpu) {
  LETHE_REQUIRE_GPU();
  compare_step("vgg16_bn", ::lethe::testing::small_shapes_only() ? 0.125 : 1.0, 0.0);
}

TEST(CudaTrainingStep, PrunedResNet18MatchesCpuAndStaysPruned) {
  LETHE_REQUIRE_GPU();
  compare_step("resnet18", 0.25, 0.95);
}

// ops::conv2d on the GPU with each backend (lethe's kernels, and cuDNN when built with it)
// against the CPU: forward with bias and the three gradients, fp32 mode.
void conv_backend_matches_cpu(ConvBackend backend) {
  ExecutionSettings es;
  es.conv = backend;
  const int64_t N = ::lethe::testing::small_shapes_only() ? 2 : 16;
  Generator gen(3, 0);
  Tensor x = Tensor::empty({N, 32, 16, 16}), w = Tensor::empty({64, 32, 3, 3});
  Tensor b = Tensor::empty({64}), gy = Tensor::empty({N, 64, 8, 8});
  for (Tensor* t : {&x, &w, &b, &gy}) gen.fill_uniform(t->data<float>(), t->numel(), -1.0, 1.0);
  auto run = [&](Device dev) {
    Tensor xd = x.to(dev), wd = w.to(dev), bd = b.to(dev);
    for (Tensor* t : {&xd, &wd, &bd}) t->set_requires_grad(true);
    const Tensor y = ops::conv2d(xd, wd, bd, /*stride=*/2, /*pad=*/1);
    y.backward(gy.to(dev));
    return std::vector<std::vector<float>>{y.to_vector<float>(), xd.grad().to_vector<float>(),
                                           wd.grad().to_vector<float>(),
                                           bd.grad().to_vector<float>()};
  };
  const auto cpu = run(Device::cpu());
  set_execution_settings(es);
  const auto gpu = run(Device::cuda(0));
  set_execution_settings(ExecutionSettings{});
  const char* names[] = {"y", "gx", "gw", "gb"};
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(close_by_scale(cpu[i], gpu[i], std::string("conv2d ") + names[i]));
  }
}

TEST(CudaConvBackend, LetheKernelsMatchCpu) {
  LETHE_REQUIRE_GPU();
  conv_backend_matches_cpu(ConvBackend::Lethe);
}

#ifdef LETHE_WITH_CUDNN
TEST(CudaConvBackend, CudnnMatchesCpu) {
  LETHE_REQUIRE_GPU();
  conv_backend_matches_cpu(ConvBackend::CuDNN);
}
#endif

TEST(CudaAllocator, SteadyLoopMakesNoDeviceMalloc) {
  LETHE_REQUIRE_GPU();
  Generator gen(0, 0);
  auto model = models::make_model({"resnet18", 0.25, 10, "cifar10"}, gen);
  const Device dev = Device::cuda(0);
  model->to(dev);
  Tensor x = Tensor::zeros({8, 3, 32, 32}, DType::F32, dev);
  Tensor labels = Tensor::zeros({8}, DType::I32, dev);
  SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  auto step = [&] {
    const Tensor loss = ops::cross_entropy((*model)(x), labels);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  step();
  step();
  const int64_t before = cuda_memory_stats(0).device_mallocs;
  for (int i = 0; i < 3; ++i) step();
  synchronize(dev);
  EXPECT_EQ(cuda_memory_stats(0).device_mallocs, before);
  EXPECT_GT(cuda_memory_stats(0).peak_allocated, 0u);
}

TEST(CudaModule, ToKeepsHandlesAndCountersOnHost) {
  LETHE_REQUIRE_GPU();
  Generator gen(0, 0);
  auto model = models::make_model({"resnet18", 0.125, 10, "cifar10"}, gen);
  const prune::MaskSet masks = prune::omp_masks(*model, 0.5);
  prune::apply_masks(*model, masks);
  const std::vector<float> w0 = model->named_parameters().front().second.to_vector<float>();
  model->to(Device::cuda(0));
  for (const auto& [name, t] : model->state_dict()) {
    if (t.dtype() == DType::I32)
      EXPECT_TRUE(t.device().is_cpu()) << name;
    else
      EXPECT_TRUE(t.device().is_cuda()) << name;
  }
  for (const auto& [name, m] : masks) EXPECT_TRUE(m.device().is_cuda()) << name;
  EXPECT_EQ(model->named_parameters().front().second.to_vector<float>(), w0);
}

}  // namespace
}  // namespace lethe
