// linear_forward_cuda / linear_backward_cuda (kernels/cuda/linear.cu) against
// linear_forward_ref / linear_backward_ref in double on the same float inputs: the ResNet-18
// classifier (512 -> 10 at batch 256), odd sizes, batch 1 and empty dimensions; forward with
// and without bias, backward with every output and with some of gx / gw / gb left null; every
// GEMM version the linear layer can be run with (CudaExec is passed on to gemm_cuda); outputs
// start poisoned (NaN), so an element a kernel forgets to write fails.
// Scales as in a real layer: x and b uniform in +-1, w in +-1/sqrt(I), gy in +-1/sqrt(N), so
// y and gw have a standard deviation of about 1/3 whatever the shape.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/linear.h"
#include "testing/cuda_harness.h"

namespace {

using lethe::kernels::CudaExec;
using lethe::kernels::CudaMath;
using lethe::testing::all_close;
using lethe::testing::DeviceBuffer;
using lethe::testing::kFp32Tol;
using lethe::testing::kTf32Tol;
using lethe::testing::random_vector;
using lethe::testing::small_shapes_only;
using lethe::testing::Tolerance;

struct LinearShape {
  int64_t N, I, O;
};

struct Mode {
  int version;  // of gemm_cuda
  CudaMath math;
  Tolerance tol;
};
const Mode kModes[] = {
    {0, CudaMath::FP32, kFp32Tol}, {1, CudaMath::FP32, kFp32Tol}, {2, CudaMath::FP32, kFp32Tol},
    {0, CudaMath::TF32, kTf32Tol}, {3, CudaMath::TF32, kTf32Tol},
};

std::vector<LinearShape> shapes() {
  std::vector<LinearShape> out = {{1, 1, 1},  {7, 13, 5},  {64, 100, 10}, {1, 128, 128},
                                  {0, 4, 3},  {4, 0, 3},   {4, 3, 0}};
  if (!small_shapes_only()) {
    out.push_back({256, 512, 10});  // the ResNet-18 classifier at batch 256
    out.push_back({33, 129, 65});
  }
  return out;
}

std::string describe(const char* what, const LinearShape& s, const Mode& m) {
  std::ostringstream os;
  os << what << " N=" << s.N << " I=" << s.I << " O=" << s.O << " gemm version " << m.version
     << (m.math == CudaMath::TF32 ? " (TF32)" : " (FP32)");
  return os.str();
}

/// Seeded inputs of one shape, scaled as described at the top.
struct Inputs {
  std::vector<float> x, w, b, gy;
  explicit Inputs(const LinearShape& s)
      : x(random_vector<float>(s.N * s.I, 1)),
        w(random_vector<float>(s.O * s.I, 2, -scale(s.I), scale(s.I))),
        b(random_vector<float>(s.O, 3)),
        gy(random_vector<float>(s.N * s.O, 4, -scale(s.N), scale(s.N))) {}
  static double scale(int64_t fan) {
    return fan > 0 ? 1.0 / std::sqrt(static_cast<double>(fan)) : 1.0;
  }
};

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST(LinearCuda, ForwardMatchesReference) {
  LETHE_REQUIRE_GPU();
  for (const LinearShape& s : shapes()) {
    const Inputs in(s);
    const DeviceBuffer<float> x(in.x), w(in.w), b(in.b);
    for (bool bias : {true, false}) {
      std::vector<double> ref(s.N * s.O);
      const auto bd = to_double(in.b);
      lethe::kernels::linear_forward_ref<double>(s.N, s.I, s.O, to_double(in.x).data(),
                                                 to_double(in.w).data(),
                                                 bias ? bd.data() : nullptr, ref.data());
      for (const Mode& m : kModes) {
        DeviceBuffer<float> y(s.N * s.O);
        y.poison();
        lethe::kernels::linear_forward_cuda(s.N, s.I, s.O, x.get(), w.get(),
                                            bias ? b.get() : nullptr, y.get(),
                                            CudaExec{nullptr, m.version, m.math});
        EXPECT_TRUE(all_close(ref, y.to_host(), m.tol,
                              describe(bias ? "linear forward with bias" : "linear forward",
                                       s, m)));
      }
    }
  }
}

TEST(LinearCuda, BackwardMatchesReference) {
  LETHE_REQUIRE_GPU();
  // Which gradients are asked for: all, then the subsets a frozen input / weight gives.
  const struct {
    bool gx, gw, gb;
  } wants[] = {{true, true, true}, {true, false, false}, {false, true, true}, {false, false, true}};
  for (const LinearShape& s : shapes()) {
    const Inputs in(s);
    const DeviceBuffer<float> x(in.x), w(in.w), gy(in.gy);
    std::vector<double> rgx(s.N * s.I), rgw(s.O * s.I), rgb(s.O);
    lethe::kernels::linear_backward_ref<double>(s.N, s.I, s.O, to_double(in.x).data(),
                                                to_double(in.w).data(), to_double(in.gy).data(),
                                                rgx.data(), rgw.data(), rgb.data());
    for (const Mode& m : kModes)
      for (const auto& want : wants) {
        DeviceBuffer<float> gx(s.N * s.I), gw(s.O * s.I), gb(s.O);
        gx.poison();
        gw.poison();
        gb.poison();
        lethe::kernels::linear_backward_cuda(s.N, s.I, s.O, x.get(), w.get(), gy.get(),
                                             want.gx ? gx.get() : nullptr,
                                             want.gw ? gw.get() : nullptr,
                                             want.gb ? gb.get() : nullptr,
                                             CudaExec{nullptr, m.version, m.math});
        if (want.gx) {
          EXPECT_TRUE(all_close(rgx, gx.to_host(), m.tol, describe("linear gx", s, m)));
        }
        if (want.gw) {
          EXPECT_TRUE(all_close(rgw, gw.to_host(), m.tol, describe("linear gw", s, m)));
        }
        if (want.gb) {  // a plain fp32 column sum in every mode
          EXPECT_TRUE(all_close(rgb, gb.to_host(), kFp32Tol, describe("linear gb", s, m)));
        }
      }
  }
}

TEST(LinearCuda, BiasGradientIsBitwiseRepeatable) {
  LETHE_REQUIRE_GPU();
  const LinearShape s =
      small_shapes_only() ? LinearShape{128, 8, 100} : LinearShape{4096, 8, 1000};
  const Inputs in(s);
  const DeviceBuffer<float> x(in.x), w(in.w), gy(in.gy);
  DeviceBuffer<float> gb1(s.O), gb2(s.O);
  lethe::kernels::linear_backward_cuda(s.N, s.I, s.O, x.get(), w.get(), gy.get(), nullptr,
                                       nullptr, gb1.get());
  lethe::kernels::linear_backward_cuda(s.N, s.I, s.O, x.get(), w.get(), gy.get(), nullptr,
                                       nullptr, gb2.get());
  const auto a = gb1.to_host(), b = gb2.to_host();
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  std::vector<double> rgb(s.O);
  lethe::kernels::linear_backward_ref<double>(s.N, s.I, s.O, to_double(in.x).data(),
                                              to_double(in.w).data(), to_double(in.gy).data(),
                                              nullptr, nullptr, rgb.data());
  EXPECT_TRUE(all_close(rgb, a, kFp32Tol, "linear gb, many rows"));
}

TEST(LinearCuda, BadArgumentsThrow) {
  LETHE_REQUIRE_GPU();
  DeviceBuffer<float> buf(16);
  EXPECT_THROW(lethe::kernels::linear_forward_cuda(-1, 2, 2, buf.get(), buf.get(), nullptr,
                                                   buf.get()),
               lethe::Error);
  EXPECT_THROW(lethe::kernels::linear_backward_cuda(2, -2, 2, buf.get(), buf.get(), buf.get(),
                                                    buf.get(), nullptr, nullptr),
               lethe::Error);
  // The GEMM version is checked by gemm_cuda, which the layer passes its CudaExec to.
  EXPECT_THROW(lethe::kernels::linear_forward_cuda(2, 2, 2, buf.get(), buf.get(), nullptr,
                                                   buf.get(), CudaExec{nullptr, 9}),
               lethe::Error);
}

}  // namespace
