// `lethe bench`: training-step (or inference) throughput on synthetic data, with the protocol
// of ../shared/bench/pytorch_baseline.py so the two print comparable JSON lines: build the
// model and SGD (lr 0.1, momentum 0.9, wd 5e-4), 5 warm-up steps, then time `steps` steps.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/report.h"
#include "framework/autograd.h"
#include "framework/ops.h"
#include "framework/optim.h"
#include "framework/version.h"
#include "models/model.h"

namespace lethe::cli {

int cmd_bench(const std::vector<std::string>& args) {
  Command cmd;
  cmd.name = "bench";
  cmd.summary = "Images/s of one SGD step per batch (or of inference) on random data; prints one\n"
                "JSON line like pytorch_baseline.py.";
  cmd.options = {{"model", "resnet18", "resnet18 | vgg16_bn"},
                 {"width", "1.0", "width multiplier"},
                 {"batch", "64", "batch size"},
                 {"steps", "20", "timed steps (after 5 warm-up steps)"},
                 {"inference", "false", "time eval-mode forward passes without gradients"},
                 {"threads", "0", "CPU threads (0: one per core)"},
                 {"device", "cpu", "cpu"},
                 {"math-mode", "fp32", "fp32 | tf32"},
                 {"conv-backend", "lethe", "lethe | cudnn"},
                 {"sparse", "auto", "auto | on | off"}};
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg);
  models::ModelSpec spec{cfg.get_string("model", "resnet18"), cfg.get_double("width", 1.0), 10,
                         "cifar10"};
  const int64_t batch = cfg.get_int("batch", 64), steps = cfg.get_int("steps", 20);
  const bool inference = cfg.get_bool("inference", false);
  LETHE_CHECK(batch > 0 && steps > 0, "--batch and --steps must be positive");

  Generator gen(0, 0);
  auto model = models::make_model(spec, gen);
  Tensor x = Tensor::empty({batch, 3, 32, 32});
  gen.fill_normal(x.data<float>(), x.numel());
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (auto& v : y) v = static_cast<int32_t>(gen.randint(10));
  const Tensor labels = Tensor::from_vector(y, {batch});
  SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  model->train(!inference);

  auto step = [&] {
    if (inference) {
      autograd::NoGradGuard ng;
      (*model)(x);
      return;
    }
    const Tensor loss = ops::cross_entropy((*model)(x), labels);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 5; ++i) step();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const nlohmann::json out = {{"framework", "lethe"},
                              {"version", version()},
                              {"device", settings["device"]},
                              {"threads", settings["threads"]},
                              {"model", spec.arch},
                              {"width", spec.width},
                              {"batch", batch},
                              {"mode", settings["math_mode"]},
                              {"task", inference ? "inference" : "train_step"},
                              {"images_per_s", static_cast<double>(batch * steps) / dt}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace lethe::cli
