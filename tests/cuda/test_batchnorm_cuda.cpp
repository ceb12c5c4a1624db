// CUDA batch_norm2d (kernels/cuda/batchnorm.cu) against the CPU oracles, in fp32 tolerance
// (kFp32Tol), for both kernel versions (v1 block per channel, v2 cluster per channel):
// training forward (y, saved and running statistics), eval forward, backward in training and
// eval (gx, ggamma, gbeta), affine on and off; the fused BN+ReLU and BN+add+ReLU variants
// against the composition of the CPU ops (bn, add, relu; relu backward, then bn backward);
// M == 1 (the unbiased-variance special case), a large mean with small noise (variance
// stability), unaligned pointers (the scalar path), and bit-identical repeated calls.
// References run in double from the same float inputs. Outputs start poisoned (NaN).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/elementwise.h"
#include "testing/compare.h"
#include "testing/cuda_harness.h"

namespace lethe::kernels {
namespace {

using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::random_vector;

constexpr float kMomentum = 0.1f, kEps = 1e-5f;
constexpr int kVersions[] = {1, 2};

// Small: C <= 16, HW <= 64, N <= 4; batch 1 with HW = 1 (M = 1), odd HW (7x5), HW % 4 != 0.
const BatchNormShape kSmall[] = {{1, 5, 1}, {2, 3, 35}, {4, 13, 1}, {2, 16, 64},
                                 {3, 16, 4}, {4, 7, 6},  {1, 1, 2}};
// ResNet-18 CIFAR at batch 32, VGG-16 CIFAR (C 64..512, HW 1024..4), C = 3, odd planes.
const BatchNormShape kLarge[] = {{32, 64, 1024}, {32, 128, 256}, {32, 256, 64}, {32, 512, 16},
                                 {8, 64, 1024},  {8, 128, 256},  {8, 256, 64},  {8, 512, 16},
                                 {8, 512, 4},    {3, 3, 1024},   {16, 24, 35},  {1, 64, 49}};

std::vector<BatchNormShape> shapes() {
  std::vector<BatchNormShape> v(std::begin(kSmall), std::end(kSmall));
  if (!lethe::testing::small_shapes_only())
    v.insert(v.end(), std::begin(kLarge), std::end(kLarge));
  return v;
}

const char* act_name(BnEpilogue a) {
  return a == BnEpilogue::None ? "" : a == BnEpilogue::Relu ? " relu" : " add_relu";
}

// "forward_train N2_C3_HW35 v2 noaffine relu"; a stream, as GCC 12 misfires -Wrestrict on +.
std::string tag(const char* op, const BatchNormShape& s, int version, bool affine,
                BnEpilogue act = BnEpilogue::None) {
  std::ostringstream os;
  os << op << " N" << s.N << "_C" << s.C << "_HW" << s.HW << " v" << version
     << (affine ? "" : " noaffine") << act_name(act);
  return os.str();
}

CudaExec exec(int version) {
  CudaExec e;
  e.version = version;
  return e;
}

std::vector<double> dbl(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// The float inputs of one case; x has an offset mean so the centring matters.
struct Inputs {
  std::vector<float> x, gy, res, gamma, beta, rm, rv;
};
Inputs make_inputs(const BatchNormShape& s, uint32_t seed, double lo = -1.0, double hi = 3.0) {
  const int64_t n = s.N * s.C * s.HW;
  return {random_vector<float>(n, seed, lo, hi),
          random_vector<float>(n, seed + 1),
          random_vector<float>(n, seed + 2),
          random_vector<float>(s.C, seed + 3, 0.5, 1.5),
          random_vector<float>(s.C, seed + 4),
          random_vector<float>(s.C, seed + 5),
          random_vector<float>(s.C, seed + 6, 0.5, 2.0)};
}

// ---- references (double, from the same floats) -------------------------------------------

struct TrainRef {
  std::vector<double> y, mean, invstd, rm, rv;
};
TrainRef train_ref(const BatchNormShape& s, const Inputs& in, bool affine) {
  const auto x = dbl(in.x), g = dbl(in.gamma), b = dbl(in.beta);
  TrainRef r{std::vector<double>(in.x.size()), std::vector<double>(s.C),
             std::vector<double>(s.C), dbl(in.rm), dbl(in.rv)};
  batchnorm_forward_train_ref<double>(s, x.data(), affine ? g.data() : nullptr,
                                      affine ? b.data() : nullptr, r.rm.data(), r.rv.data(),
                                      kMomentum, kEps, r.y.data(), r.mean.data(),
                                      r.invstd.data());
  return r;
}

std::vector<double> eval_ref(const BatchNormShape& s, const Inputs& in, bool affine) {
  const auto x = dbl(in.x), g = dbl(in.gamma), b = dbl(in.beta), rm = dbl(in.rm),
             rv = dbl(in.rv);
  std::vector<double> y(x.size());
  batchnorm_forward_eval_ref<double>(s, x.data(), affine ? g.data() : nullptr,
                                     affine ? b.data() : nullptr, rm.data(), rv.data(), kEps,
                                     y.data());
  return y;
}

// The unfused composition after bn: y = relu(y [+ residual]) with the CPU elementwise ops.
std::vector<double> epilogue_ref(BnEpilogue act, std::vector<double> y, const Inputs& in) {
  const int64_t n = static_cast<int64_t>(y.size());
  if (act == BnEpilogue::AddRelu) {
    const auto r = dbl(in.res);
    add_cpu<double>(n, y.data(), r.data(), y.data());
  }
  if (act != BnEpilogue::None) relu_forward_ref<double>(n, y.data(), y.data());
  return y;
}

struct BwdRef {
  std::vector<double> gx, gg, gb;
};
BwdRef backward_ref(const BatchNormShape& s, bool training, const std::vector<float>& x,
                    const std::vector<float>& gy, const std::vector<float>* gamma,
                    const std::vector<float>& mean, const std::vector<float>& invstd) {
  const auto dx = dbl(x), dgy = dbl(gy), dm = dbl(mean), di = dbl(invstd);
  const auto dg = gamma ? dbl(*gamma) : std::vector<double>();
  BwdRef r{std::vector<double>(x.size()), std::vector<double>(s.C), std::vector<double>(s.C)};
  batchnorm_backward_ref<double>(s, training, dx.data(), dgy.data(),
                                 gamma ? dg.data() : nullptr, dm.data(), di.data(), r.gx.data(),
                                 r.gg.data(), r.gb.data());
  return r;
}

// ---- CUDA runs (act None goes through the unfused entry points) ---------------------------

struct TrainOut {
  std::vector<float> y, mean, invstd, rm, rv;
};
TrainOut run_train(const BatchNormShape& s, const Inputs& in, bool affine, BnEpilogue act,
                   int version, bool running = true) {
  const int64_t n = static_cast<int64_t>(in.x.size());
  DeviceBuffer<float> x(in.x), g(in.gamma), b(in.beta), r(in.res), rm(in.rm), rv(in.rv), y(n),
      mean(s.C), is(s.C);
  y.poison();
  mean.poison();
  is.poison();
  const float* gp = affine ? g.get() : nullptr;
  const float* bp = affine ? b.get() : nullptr;
  float* rmp = running ? rm.get() : nullptr;
  float* rvp = running ? rv.get() : nullptr;
  if (act == BnEpilogue::None)
    batchnorm_forward_train_cuda(s, x.get(), gp, bp, rmp, rvp, kMomentum, kEps, y.get(),
                                 mean.get(), is.get(), exec(version));
  else
    batchnorm_act_forward_train_cuda(s, act, x.get(), gp, bp,
                                     act == BnEpilogue::AddRelu ? r.get() : nullptr, rmp, rvp,
                                     kMomentum, kEps, y.get(), mean.get(), is.get(),
                                     exec(version));
  return {y.to_host(), mean.to_host(), is.to_host(), rm.to_host(), rv.to_host()};
}

std::vector<float> run_eval(const BatchNormShape& s, const Inputs& in, bool affine,
                            BnEpilogue act, int version) {
  DeviceBuffer<float> x(in.x), g(in.gamma), b(in.beta), r(in.res), rm(in.rm), rv(in.rv),
      y(static_cast<int64_t>(in.x.size()));
  y.poison();
  const float* gp = affine ? g.get() : nullptr;
  const float* bp = affine ? b.get() : nullptr;
  if (act == BnEpilogue::None)
    batchnorm_forward_eval_cuda(s, x.get(), gp, bp, rm.get(), rv.get(), kEps, y.get(),
                                exec(version));
  else
    batchnorm_act_forward_eval_cuda(s, act, x.get(), gp, bp,
                                    act == BnEpilogue::AddRelu ? r.get() : nullptr, rm.get(),
                                    rv.get(), kEps, y.get(), exec(version));
  return y.to_host();
}

struct BwdOut {
  std::vector<float> gx, gg, gb, gres;
};
// y: the fused forward output (ignored for None); gamma nullptr = affine off.
BwdOut run_backward(const BatchNormShape& s, BnEpilogue act, bool training,
                    const std::vector<float>& xh, const std::vector<float>& yh,
                    const std::vector<float>& gyh, const std::vector<float>* gamma,
                    const std::vector<float>& mh, const std::vector<float>& ih, int version) {
  const int64_t n = static_cast<int64_t>(xh.size());
  DeviceBuffer<float> x(xh), y(act == BnEpilogue::None ? std::vector<float>() : yh), gy(gyh),
      g(gamma ? *gamma : std::vector<float>()), mean(mh), is(ih), gx(n), gg(s.C), gb(s.C),
      gres(n);
  gx.poison();
  gg.poison();
  gb.poison();
  gres.poison();
  const float* gp = gamma ? g.get() : nullptr;
  if (act == BnEpilogue::None)
    batchnorm_backward_cuda(s, training, x.get(), gy.get(), gp, mean.get(), is.get(), gx.get(),
                            gg.get(), gb.get(), exec(version));
  else
    batchnorm_act_backward_cuda(s, act, training, x.get(), y.get(), gy.get(), gp, mean.get(),
                                is.get(), gx.get(), gg.get(), gb.get(),
                                act == BnEpilogue::AddRelu ? gres.get() : nullptr,
                                exec(version));
  return {gx.to_host(), gg.to_host(), gb.to_host(), gres.to_host()};
}

bool all_nan(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isnan(f)) return false;
  return true;
}

// The backward's statistics: the saved batch ones (training) or the running ones (eval).
void backward_stats(const BatchNormShape& s, const Inputs& in, bool training,
                    std::vector<float>& mean, std::vector<float>& invstd) {
  mean.assign(s.C, 0.f);
  invstd.assign(s.C, 0.f);
  const TrainRef r = training ? train_ref(s, in, true) : TrainRef{};
  for (int64_t c = 0; c < s.C; ++c) {
    mean[c] = training ? static_cast<float>(r.mean[c]) : in.rm[c];
    invstd[c] = training ? static_cast<float>(r.invstd[c])
                         : static_cast<float>(1.0 / std::sqrt(double(in.rv[c]) + kEps));
  }
}

// ---- tests ---------------------------------------------------------------------------------

TEST(BatchNormCuda, ForwardTrainMatchesRef) {
  LETHE_REQUIRE_GPU();
  for (const BatchNormShape& s : shapes())
    for (int v : kVersions)
      for (bool affine : {true, false}) {
        const Inputs in = make_inputs(s, 11);
        const TrainRef ref = train_ref(s, in, affine);
        const TrainOut got = run_train(s, in, affine, BnEpilogue::None, v);
        const std::string t = tag("forward_train", s, v, affine);
        EXPECT_TRUE(all_close(ref.y, got.y, kFp32Tol, t + " y"));
        EXPECT_TRUE(all_close(ref.mean, got.mean, kFp32Tol, t + " save_mean"));
        EXPECT_TRUE(all_close(ref.invstd, got.invstd, kFp32Tol, t + " save_invstd"));
        EXPECT_TRUE(all_close(ref.rm, got.rm, kFp32Tol, t + " running_mean"));
        EXPECT_TRUE(all_close(ref.rv, got.rv, kFp32Tol, t + " running_var"));
      }
}

TEST(BatchNormCuda, ForwardEvalMatchesRef) {
  LETHE_REQUIRE_GPU();
  for (const BatchNormShape& s : shapes())
    for (int v : kVersions)
      for (bool affine : {true, false}) {
        const Inputs in = make_inputs(s, 21);
        EXPECT_TRUE(all_close(eval_ref(s, in, affine),
                              run_eval(s, in, affine, BnEpilogue::None, v), kFp32Tol,
                              tag("forward_eval", s, v, affine) + " y"));
      }
}

TEST(BatchNormCuda, BackwardMatchesRef) {
  LETHE_REQUIRE_GPU();
  for (const BatchNormShape& s : shapes())
    for (int v : kVersions)
      for (bool training : {true, false})
        for (bool affine : {true, false}) {
          const Inputs in = make_inputs(s, 31);
          std::vector<float> mean, invstd;
          backward_stats(s, in, training, mean, invstd);
          const std::vector<float>* g = affine ? &in.gamma : nullptr;
          const BwdRef ref = backward_ref(s, training, in.x, in.gy, g, mean, invstd);
          const BwdOut got =
              run_backward(s, BnEpilogue::None, training, in.x, {}, in.gy, g, mean, invstd, v);
          const std::string t =
              tag(training ? "backward_train" : "backward_eval", s, v, affine);
          EXPECT_TRUE(all_close(ref.gx, got.gx, kFp32Tol, t + " gx"));
          if (affine) {
            EXPECT_TRUE(all_close(ref.gg, got.gg, kFp32Tol, t + " ggamma"));
            EXPECT_TRUE(all_close(ref.gb, got.gb, kFp32Tol, t + " gbeta"));
          } else {
            EXPECT_TRUE(all_nan(got.gg) && all_nan(got.gb)) << t << ": ggamma/gbeta written";
          }
        }
}

TEST(BatchNormCuda, FusedForwardMatchesComposition) {
  LETHE_REQUIRE_GPU();
  for (const BatchNormShape& s : shapes())
    for (int v : kVersions)
      for (BnEpilogue act : {BnEpilogue::Relu, BnEpilogue::AddRelu})
        for (bool affine : {true, false}) {
          const Inputs in = make_inputs(s, 41);
          const TrainRef ref = train_ref(s, in, affine);
          const TrainOut got = run_train(s, in, affine, act, v);
          std::string t = tag("forward_train", s, v, affine, act);
          EXPECT_TRUE(all_close(epilogue_ref(act, ref.y, in), got.y, kFp32Tol, t + " y"));
          EXPECT_TRUE(all_close(ref.mean, got.mean, kFp32Tol, t + " save_mean"));
          EXPECT_TRUE(all_close(ref.invstd, got.invstd, kFp32Tol, t + " save_invstd"));
          EXPECT_TRUE(all_close(ref.rv, got.rv, kFp32Tol, t + " running_var"));
          t = tag("forward_eval", s, v, affine, act);
          EXPECT_TRUE(all_close(epilogue_ref(act, eval_ref(s, in, affine), in),
                                run_eval(s, in, affine, act, v), kFp32Tol, t + " y"));
        }
}

// The fused forward output y is made on the CPU in float (bn, then add_relu / relu), so it
// holds exact zeros: the mask there must be 0 (relu_backward's convention). The reference
// masks gy with relu_backward_ref on that same y, then runs the bn backward oracle;
// gresidual must equal the masked gy exactly.
TEST(BatchNormCuda, FusedBackwardMatchesComposition) {
  LETHE_REQUIRE_GPU();
  for (const BatchNormShape& s : shapes())
    for (int v : kVersions)
      for (BnEpilogue act : {BnEpilogue::Relu, BnEpilogue::AddRelu})
        for (bool training : {true, false}) {
          const Inputs in = make_inputs(s, 51);
          const int64_t n = static_cast<int64_t>(in.x.size());
          std::vector<float> y(n), mean, invstd, sm(s.C), si(s.C), rm(in.rm), rv(in.rv);
          if (training)
            batchnorm_forward_train_cpu<float>(s, in.x.data(), in.gamma.data(), in.beta.data(),
                                               rm.data(), rv.data(), kMomentum, kEps, y.data(),
                                               sm.data(), si.data());
          else
            batchnorm_forward_eval_cpu<float>(s, in.x.data(), in.gamma.data(), in.beta.data(),
                                              in.rm.data(), in.rv.data(), kEps, y.data());
          if (act == BnEpilogue::AddRelu)
            add_relu_cpu<float>(n, y.data(), in.res.data(), y.data());
          else
            relu_forward_cpu<float>(n, y.data(), y.data());
          backward_stats(s, in, training, mean, invstd);
          std::vector<float> gmask(n);
          relu_backward_ref<float>(n, y.data(), in.gy.data(), gmask.data());
          const BwdRef ref = backward_ref(s, training, in.x, gmask, &in.gamma, mean, invstd);
          const BwdOut got =
              run_backward(s, act, training, in.x, y, in.gy, &in.gamma, mean, invstd, v);
          const std::string t =
              tag(training ? "backward_train" : "backward_eval", s, v, true, act);
          EXPECT_TRUE(all_close(ref.gx, got.gx, kFp32Tol, t + " gx"));
          EXPECT_TRUE(all_close(ref.gg, got.gg, kFp32Tol, t + " ggamma"));
          EXPECT_TRUE(all_close(ref.gb, got.gb, kFp32Tol, t + " gbeta"));
          if (act == BnEpilogue::AddRelu) {
            EXPECT_TRUE(all_close(gmask, got.gres, lethe::testing::Tolerance{0, 0},
                                  t + " gresidual"));
          }
        }
}

// M == 1: var_b = 0, running_var moves towards the biased 0 (no division by M - 1 = 0),
// and y = beta (0 without affine).
TEST(BatchNormCuda, SingleValuePerChannel) {
  LETHE_REQUIRE_GPU();
  const BatchNormShape s{1, 2, 1};
  Inputs in = make_inputs(s, 61);
  in.x = {4.f, -1.f};
  in.rm = {0.f, 0.f};
  in.rv = {1.f, 1.f};
  for (int v : kVersions) {
    const TrainOut got = run_train(s, in, false, BnEpilogue::None, v);
    const std::string t = tag("forward_train", s, v, false);
    EXPECT_TRUE(all_close(std::vector<float>{0.f, 0.f}, got.y, kFp32Tol, t + " y"));
    EXPECT_TRUE(all_close(std::vector<float>{0.4f, -0.1f}, got.rm, kFp32Tol, t + " rm"));
    EXPECT_TRUE(all_close(std::vector<float>{0.9f, 0.9f}, got.rv, kFp32Tol, t + " rv"));
  }
}

// A large mean with small noise: E[x^2] - E[x]^2 in float would lose every digit; the
// statistics, y, and the backward must still match the double oracle.
TEST(BatchNormCuda, LargeMeanIsStable) {
  LETHE_REQUIRE_GPU();
  std::vector<BatchNormShape> list = {{4, 16, 64}, {3, 5, 7}};
  if (!lethe::testing::small_shapes_only()) list.push_back({32, 64, 1024});
  for (const BatchNormShape& s : list)
    for (int v : kVersions)
      for (double center : {1000.0, -300.0}) {
        const Inputs in = make_inputs(s, 71, center - 0.05, center + 0.05);
        const TrainRef ref = train_ref(s, in, true);
        const TrainOut got = run_train(s, in, true, BnEpilogue::None, v);
        const std::string t = tag("large_mean", s, v, true) + (center > 0 ? " +" : " -");
        EXPECT_TRUE(all_close(ref.y, got.y, kFp32Tol, t + " y"));
        EXPECT_TRUE(all_close(ref.mean, got.mean, kFp32Tol, t + " save_mean"));
        EXPECT_TRUE(all_close(ref.invstd, got.invstd, kFp32Tol, t + " save_invstd"));
        EXPECT_TRUE(all_close(ref.rv, got.rv, kFp32Tol, t + " running_var"));
        std::vector<float> mean, invstd;
        backward_stats(s, in, true, mean, invstd);
        const BwdRef bref = backward_ref(s, true, in.x, in.gy, &in.gamma, mean, invstd);
        const BwdOut bgot = run_backward(s, BnEpilogue::None, true, in.x, {}, in.gy, &in.gamma,
                                         mean, invstd, v);
        EXPECT_TRUE(all_close(bref.gx, bgot.gx, kFp32Tol, t + " gx"));
        EXPECT_TRUE(all_close(bref.gg, bgot.gg, kFp32Tol, t + " ggamma"));
      }
}

// running_mean / running_var may be nullptr (no update), as on the CPU.
TEST(BatchNormCuda, NullRunningStats) {
  LETHE_REQUIRE_GPU();
  const BatchNormShape s{2, 16, 64};
  const Inputs in = make_inputs(s, 81);
  const TrainRef ref = train_ref(s, in, true);
  for (int v : kVersions) {
    const TrainOut got = run_train(s, in, true, BnEpilogue::Relu, v, /*running=*/false);
    const std::string t = tag("forward_train no running stats", s, v, true, BnEpilogue::Relu);
    EXPECT_TRUE(all_close(epilogue_ref(BnEpilogue::Relu, ref.y, in), got.y, kFp32Tol, t));
    EXPECT_EQ(got.rm, in.rm) << t;
  }
}

// HW % 4 == 0 but pointers one float off 16-byte alignment: the scalar path must be taken.
TEST(BatchNormCuda, UnalignedPointers) {
  LETHE_REQUIRE_GPU();
  const BatchNormShape s{2, 8, 64};
  const int64_t n = s.N * s.C * s.HW;
  const Inputs in = make_inputs(s, 91);
  std::vector<float> xpad(n + 1, 0.f);
  std::copy(in.x.begin(), in.x.end(), xpad.begin() + 1);
  DeviceBuffer<float> x(xpad), g(in.gamma), b(in.beta), y(n + 1), mean(s.C), is(s.C);
  for (int v : kVersions) {
    y.poison();
    batchnorm_forward_train_cuda(s, x.get() + 1, g.get(), b.get(), nullptr, nullptr, kMomentum,
                                 kEps, y.get() + 1, mean.get(), is.get(), exec(v));
    const std::vector<float> out = y.to_host();
    const TrainRef ref = train_ref(s, in, true);
    EXPECT_TRUE(all_close(ref.y.data(), out.data() + 1, n, kFp32Tol,
                          tag("forward_train unaligned", s, v, true)));
  }
}

// Two calls, bit-identical outputs: no atomics, a fixed reduction order (v2 splits the C = 64
// channels of the large shape over several blocks of a cluster).
TEST(BatchNormCuda, RepeatedCallsAreBitIdentical) {
  LETHE_REQUIRE_GPU();
  const BatchNormShape s = lethe::testing::small_shapes_only() ? BatchNormShape{4, 16, 64}
                                                               : BatchNormShape{32, 64, 1024};
  const Inputs in = make_inputs(s, 101);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  for (BnEpilogue act : {BnEpilogue::None, BnEpilogue::AddRelu}) {
    const TrainOut f1 = run_train(s, in, true, act, 2), f2 = run_train(s, in, true, act, 2);
    const BwdOut b1 = run_backward(s, act, true, in.x, f1.y, in.gy, &in.gamma, f1.mean,
                                   f1.invstd, 2);
    const BwdOut b2 = run_backward(s, act, true, in.x, f1.y, in.gy, &in.gamma, f1.mean,
                                   f1.invstd, 2);
    const std::string t = tag("repeat", s, 2, true, act);
    EXPECT_TRUE(same(f1.y, f2.y) && same(f1.mean, f2.mean) && same(f1.invstd, f2.invstd) &&
                same(f1.rm, f2.rm) && same(f1.rv, f2.rv))
        << t << ": forward differs";
    EXPECT_TRUE(same(b1.gx, b2.gx) && same(b1.gg, b2.gg) && same(b1.gb, b2.gb))
        << t << ": backward differs";
    if (act == BnEpilogue::AddRelu) {
      EXPECT_TRUE(same(b1.gres, b2.gres)) << t << ": gresidual differs";
    }
  }
}

}  // namespace
}  // namespace lethe::kernels
