// `lethe bench`: training-step (or inference) throughput on synthetic data, with the protocol
// of ../shared/bench/pytorch_baseline.py so the two print comparable JSON lines: build the
// model and SGD (lr 0.1, momentum 0.9, wd 5e-4), 5 warm-up steps, then time `steps` steps.
// Pruned models (docs/sparse.md): --prune-rate R prunes the convs by magnitude (one global
// threshold as OMP, or R in every conv with --prune-scope layer), from the initial weights or
// those of --weights CKPT; the step is then the masked FT/retrain step (masked forward,
// backward, SGD keeping pruned weights 0). --compare-sparse times the same model with the
// sparse kernels off and then with --sparse, in one run, and prints the ratio and which path
// each conv took.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/report.h"
#include "framework/autograd.h"
#include "framework/checkpoint.h"
#include "framework/cuda_allocator.h"
#include "framework/dispatch.h"
#include "framework/ops.h"
#include "framework/optim.h"
#include "framework/settings.h"
#include "framework/version.h"
#include "kernels/conv2d.h"
#include "models/model.h"
#include "prune/mask.h"
#include "prune/select.h"

namespace lethe::cli {

int cmd_bench(const std::vector<std::string>& args) {
  Command cmd;
  cmd.name = "bench";
  cmd.summary = "Images/s of one SGD step per batch (or of inference) on random data; prints one\n"
                "JSON line like pytorch_baseline.py.";
  cmd.options = {{"model", "resnet18", "resnet18 | vgg16_bn"},
                 {"width", "1.0", "width multiplier"},
                 {"batch", "64", "batch size"},
                 {"steps", "20", "timed steps (after the warm-up steps)"},
                 {"warmup", "5", "untimed steps first (0 with --steps 1: one step for a profiler)"},
                 {"inference", "false", "time eval-mode forward passes without gradients"},
                 {"threads", "0", "CPU threads (0: one per core)"},
                 {"device", "cpu", "cpu | cuda | cuda:N"},
                 {"math-mode", "fp32", "fp32 | tf32"},
                 {"conv-backend", "lethe", "lethe | cudnn"},
                 {"sparse", "auto", "auto | on | off"},
                 {"prune-rate", "0", "prune this fraction of the conv weights by magnitude (0: dense)"},
                 {"prune-scope", "global", "global (one threshold, as OMP) | layer (the rate in every conv)"},
                 {"weights", "", "take the weights from this checkpoint (same model and width)"},
                 {"compare-sparse", "false", "time --sparse off, then --sparse, in one run; print the ratio"}};
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const nlohmann::json settings = apply_settings(cfg, /*allow_cuda=*/true);
  const Device dev = parse_device(cfg.get_string("device", "cpu"));
  models::ModelSpec spec{cfg.get_string("model", "resnet18"), cfg.get_double("width", 1.0), 10,
                         "cifar10"};
  const int64_t batch = cfg.get_int("batch", 64), steps = cfg.get_int("steps", 20),
                warmup = cfg.get_int("warmup", 5);
  const bool inference = cfg.get_bool("inference", false);
  LETHE_CHECK(batch > 0 && steps > 0, "--batch and --steps must be positive");
  LETHE_CHECK(warmup >= 0, "--warmup must not be negative");

  const double rate = cfg.get_double("prune-rate", 0.0);
  const std::string scope = cfg.get_string("prune-scope", "global");
  const std::string weights = cfg.get_string("weights", "");
  const bool compare = cfg.get_bool("compare-sparse", false);
  LETHE_CHECK(rate >= 0 && rate < 1, "--prune-rate must lie in [0, 1), got ", rate);
  LETHE_CHECK(scope == "global" || scope == "layer", "--prune-scope is global or layer, got '",
              scope, "'");
  LETHE_CHECK(!compare || rate > 0, "--compare-sparse needs a pruned model (--prune-rate)");
  LETHE_CHECK(!compare || dev.is_cpu() || execution_settings().sparse == SparseMode::On,
              "--compare-sparse on the GPU needs --sparse on (there auto keeps the dense "
              "kernels until the sparse ones are measured end to end)");

  Generator gen(0, 0);
  auto model = models::make_model(spec, gen);
  if (!weights.empty()) load_checkpoint(weights, *model, models::model_metadata(spec));
  prune::MaskSet masks;
  if (rate > 0) {
    if (scope == "global") {
      masks = prune::omp_masks(*model, rate);
    } else {
      for (const auto& [name, conv] : prune::prunable_layers(*model)) {
        std::vector<double> a;
        for (float v : conv->weight.to_vector<float>()) a.push_back(std::fabs(v));
        std::vector<uint8_t> keep(a.size(), 1);
        prune::prune_smallest(a, keep, static_cast<int64_t>(std::llround(rate * static_cast<double>(a.size()))));
        masks[name] = Tensor::from_vector(keep, conv->weight.shape());
      }
    }
    prune::apply_masks(*model, masks);
  }
  Tensor x = Tensor::empty({batch, 3, 32, 32});
  gen.fill_normal(x.data<float>(), x.numel());
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (auto& v : y) v = static_cast<int32_t>(gen.randint(10));
  Tensor labels = Tensor::from_vector(y, {batch});
  if (dev.is_cuda()) {  // everything the step touches lives on the GPU; masks move in place
    // The peak covers the model, warm-up and timed steps, as PyTorch's baseline (it resets
    // its statistics before building the model).
    cuda_reset_peak(dev.index);
    model->to(dev);
    x = x.to(dev);
    labels = labels.to(dev);
  }
  SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  for (const auto& [name, p] : model->named_parameters()) {
    auto it = masks.find(name);
    if (it != masks.end()) opt.set_mask(p, it->second);
  }
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
  auto timed = [&] {
    for (int64_t i = 0; i < warmup; ++i) step();
    synchronize(dev);  // the GPU queue is empty before the clock starts and when it stops
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < steps; ++i) step();
    synchronize(dev);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double dense_dt = 0;
  if (compare) {  // the baseline: the same masked model through the dense kernels
    ExecutionSettings es = execution_settings();
    const SparseMode wanted = es.sparse;
    es.sparse = SparseMode::Off;
    set_execution_settings(es);
    dense_dt = timed();
    es.sparse = wanted;
    set_execution_settings(es);
  }
  const double dt = timed();
  if (rate > 0 || dev.is_cuda()) {  // per conv: sparsity and the kernels its forward took
    const prune::SparsityReport rep = prune::sparsity_report(*model);
    std::fprintf(stderr, "%s", prune::format_sparsity(rep).c_str());
  }
  if (compare)
    std::fprintf(stderr, "sparse %s vs dense kernels on the same masked model: %.0f vs %.0f images/s, "
                 "ratio %.2fx\n", to_string(execution_settings().sparse).c_str(),
                 static_cast<double>(batch * steps) / dt, static_cast<double>(batch * steps) / dense_dt,
                 dense_dt / dt);
  nlohmann::json out = {{"framework", "lethe"},
                              {"version", version()},
                              {"device", settings["device"]},
                              {"threads", settings["threads"]},
                              {"model", spec.arch},
                              {"width", spec.width},
                              {"batch", batch},
                              {"mode", settings["math_mode"]},
                              {"conv_backend", settings["conv_backend"]},
                              {"task", inference ? "inference" : "train_step"},
                              {"images_per_s", static_cast<double>(batch * steps) / dt}};
  if (rate > 0) {
    out["prune_rate"] = rate;
    out["prune_scope"] = scope;
    out["sparse"] = to_string(execution_settings().sparse);
  }
  if (dev.is_cuda()) {
#ifdef LETHE_WITH_CUDA
    if (execution_settings().conv == ConvBackend::Lethe)  // LETHE_CUDA_CONV_VERSION may pick one
      out["conv_kernel"] = kernels::conv2d_cuda_version_name(
          kernels::conv2d_cuda_resolved_version(detail::conv_cuda_exec()));
#endif
    const CudaMemoryStats ms = cuda_memory_stats(dev.index);
    out["peak_mem_mib"] = static_cast<double>(ms.peak_allocated) / (1 << 20);
    out["device_mallocs"] = ms.device_mallocs;
  }
  if (compare) {
    out["dense_kernels_images_per_s"] = static_cast<double>(batch * steps) / dense_dt;
    out["sparse_speedup"] = dense_dt / dt;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace lethe::cli
