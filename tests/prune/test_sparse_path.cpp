// Sparse execution of pruned models (kernels/sparse, ops::conv2d_sparse, Conv2d's dispatch):
// the op against conv2d on w * mask (values and all three gradients, float and double), a
// pruned ResNet-18 trained through fit() with every masked conv forced onto the sparse kernels
// ending where the masked-dense run ends (within float tolerance, pruned weights exactly 0),
// and the per-layer path report under --sparse off / on / auto.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "framework/settings.h"
#include "kernels/sparse/conv2d_sparse.h"
#include "prune/mask.h"
#include "prune/select.h"
#include "prune_test_util.h"

namespace lethe {
namespace {

/// Sets the process-wide sparse mode for one scope.
class SparseModeGuard {
 public:
  explicit SparseModeGuard(SparseMode m) : saved_(execution_settings()) {
    ExecutionSettings s = saved_;
    s.sparse = m;
    set_execution_settings(s);
  }
  ~SparseModeGuard() { set_execution_settings(saved_); }

 private:
  ExecutionSettings saved_;
};

template <typename T>
void check_op(DType dt, double tol) {
  Generator g(3, 0);
  Tensor x = Tensor::empty({2, 6, 7, 7}, dt), w = Tensor::empty({5, 6, 3, 3}, dt);
  Tensor b = Tensor::empty({5}, dt), gy = Tensor::empty({2, 5, 4, 4}, dt);
  for (Tensor* t : {&x, &w, &b, &gy}) {
    Tensor f = Tensor::empty(t->shape());
    g.fill_normal(f.data<float>(), f.numel());
    *t = f.to(dt);
  }
  std::vector<uint8_t> m(static_cast<size_t>(w.numel()));
  for (size_t i = 0; i < m.size(); ++i) m[i] = (i * 7919) % 10 < 3;  // 30% kept
  const Tensor mask = Tensor::from_vector(m, w.shape());
  auto pat = std::make_shared<const kernels::SparsePattern>(
      kernels::make_sparse_pattern(5, 54, m.data()));

  auto run = [&](bool sparse) {
    Tensor xs = x.clone(), ws = w.clone(), bs = b.clone();
    for (Tensor* t : {&xs, &ws, &bs}) t->set_requires_grad(true);
    const Tensor y = sparse ? ops::conv2d_sparse(xs, ws, bs, 2, 1, pat)
                            : ops::conv2d(xs, ops::mul(ws, mask.to(dt)), bs, 2, 1);
    ops::sum(ops::mul(y, gy)).backward();
    return std::vector<Tensor>{y, xs.grad(), ws.grad(), bs.grad()};
  };
  const auto dense = run(false), sparse = run(true);
  const char* names[] = {"y", "gx", "gw", "gb"};
  for (size_t i = 0; i < 4; ++i) {
    const auto a = dense[i].to(DType::F64).template to_vector<double>();
    const auto c = sparse[i].to(DType::F64).template to_vector<double>();
    ASSERT_EQ(a.size(), c.size());
    for (size_t j = 0; j < a.size(); ++j)
      ASSERT_NEAR(a[j], c[j], tol * (1 + std::fabs(a[j]))) << names[i] << "[" << j << "]";
  }
  const auto gw = sparse[2].to(DType::F64).template to_vector<double>();
  for (size_t j = 0; j < gw.size(); ++j)
    if (!m[j]) {
      ASSERT_EQ(gw[j], 0.0) << "gradient of pruned weight " << j;
    }
}

TEST(SparseConvOp, MatchesConvOfMaskedWeightWithGradients) {
  check_op<float>(DType::F32, 1e-5);
  check_op<double>(DType::F64, 1e-12);
}

TEST(SparseConvOp, RejectsAPatternOfAnotherShape) {
  std::vector<uint8_t> m(4 * 27, 1);
  auto pat = std::make_shared<const kernels::SparsePattern>(
      kernels::make_sparse_pattern(4, 27, m.data()));
  EXPECT_THROW(ops::conv2d_sparse(Tensor::zeros({1, 3, 5, 5}), Tensor::zeros({5, 3, 3, 3}),
                                  Tensor(), 1, 1, pat),
               Error);
}

// Every masked conv on the sparse kernels (--sparse on) against the dense kernels on w * mask
// (--sparse off): 8 SGD steps with momentum and weight decay through fit().
TEST(SparsePath, TrainingEqualsMaskedDenseTraining) {
  testing::TinyResNet s;
  auto train_with = [&](SparseMode mode) {
    SparseModeGuard guard(mode);
    auto model = s.model();
    const prune::MaskSet masks = prune::omp_masks(*model, 0.9);
    prune::apply_masks(*model, masks);
    train::TrainOptions o = s.options("", 1);  // 4 steps of 64
    o.sgd.momentum = 0.9;
    o.sgd.weight_decay = 5e-4;
    const train::TrainResult r = train::fit(*model, s.data, s.idx, s.data, s.val, o, masks);
    return std::make_pair(model, r);
  };
  const auto [dense, rd] = train_with(SparseMode::Off);
  const auto [sparse, rs] = train_with(SparseMode::On);
  for (const auto& l : prune::sparsity_report(*sparse).layers) EXPECT_EQ(l.path, "sparse") << l.name;
  for (const auto& l : prune::sparsity_report(*dense).layers) EXPECT_EQ(l.path, "dense") << l.name;

  ASSERT_EQ(rd.history.size(), rs.history.size());
  EXPECT_NEAR(rd.history.back().loss, rs.history.back().loss, 1e-3 * rd.history.back().loss);
  const auto pd = dense->named_parameters(), ps = sparse->named_parameters();
  ASSERT_EQ(pd.size(), ps.size());
  // Per tensor, the largest difference relative to the tensor's largest value.
  double max_rel = 0;
  for (size_t i = 0; i < pd.size(); ++i) {
    const auto a = pd[i].second.to_vector<float>(), b = ps[i].second.to_vector<float>();
    double scale = 1e-12, diff = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      if (a[j] == 0.0f) {
        ASSERT_EQ(b[j], 0.0f) << pd[i].first << "[" << j << "]";  // pruned in both
      }
      scale = std::max(scale, std::fabs(double(a[j])));
      diff = std::max(diff, std::fabs(double(a[j]) - b[j]));
    }
    max_rel = std::max(max_rel, diff / scale);
  }
  EXPECT_LT(max_rel, 1e-2);
}

TEST(SparsePath, AutoPicksPerLayerAndTheReportShowsIt) {
  testing::TinyResNet s;
  auto model = s.model();
  for (const auto& l : prune::sparsity_report(*model).layers) EXPECT_EQ(l.path, "-");
  // 99% in every conv: the stride-1 convs pass the auto rule on an AVX-512 machine.
  prune::MaskSet masks;
  for (const auto& [name, conv] : prune::prunable_layers(*model)) {
    std::vector<uint8_t> keep(static_cast<size_t>(conv->weight.numel()), 0);
    for (size_t i = 0; i < keep.size(); i += 100) keep[i] = 1;
    masks[name] = Tensor::from_vector(keep, conv->weight.shape());
  }
  prune::apply_masks(*model, masks);
  const Tensor x = Tensor::zeros({2, 3, 32, 32});
  {
    SparseModeGuard guard(SparseMode::Auto);
    autograd::NoGradGuard ng;
    (*model)(x);
  }
  int sparse = 0;
  for (const auto& l : prune::sparsity_report(*model).layers) {
    EXPECT_TRUE(l.path == "sparse" || l.path == "dense") << l.name;
    sparse += l.path == "sparse";
  }
#if defined(__AVX512F__)
  EXPECT_GE(sparse, 12);  // the 3x3 stride-1 convs at least
#endif
  {
    SparseModeGuard guard(SparseMode::Off);
    autograd::NoGradGuard ng;
    (*model)(x);
  }
  for (const auto& l : prune::sparsity_report(*model).layers) EXPECT_EQ(l.path, "dense") << l.name;
  EXPECT_NE(prune::format_sparsity(prune::sparsity_report(*model)).find("dense"),
            std::string::npos);
}

}  // namespace
}  // namespace lethe
