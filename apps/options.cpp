#include "apps/options.h"

#include "kernels/check.h"

namespace lethe::cli {

const std::vector<Option>& data_options() {
  static const std::vector<Option> o = {
      {"dataset", "cifar10", "cifar10 | cifar100 | synthetic (a small built-in stand-in)"},
      {"data-dir", "",
       "folder with the binary data set (default: $LETHE_DATA, then ./data_cache/<dataset>)"},
      {"split-seed", "0", "seed of the per-class 45,000/5,000 train/validation split"},
      {"train-limit", "0", "use only the first N images of the training split (0: all)"},
  };
  return o;
}

const std::vector<Option>& setting_options() {
  static const std::vector<Option> o = {
      {"device", "cpu", "cpu | cuda | cuda:N (the GPU: all but lethe backdoor and lethe transfer)"},
      {"threads", "0", "CPU threads (0: one per core)"},
      {"math-mode", "fp32", "fp32 | tf32 (GPU only; fp32 never uses tensor cores)"},
      {"conv-backend", "lethe", "lethe | cudnn (GPU only)"},
      {"sparse", "auto", "auto | on | off: sparse execution of pruned layers"},
  };
  return o;
}

const std::vector<Option>& training_options() {
  static const std::vector<Option> o = {
      {"model", "resnet18", "resnet18 | vgg16_bn"},
      {"width", "0.25", "channel width multiplier (1.0: the paper's models)"},
      {"epochs", "20", "epochs"},
      {"batch-size", "128", "images per SGD step"},
      {"lr", "0.1", "base (one-cycle: peak) learning rate"},
      {"momentum", "0.9", "SGD momentum"},
      {"weight-decay", "5e-4", "weight decay on all parameters"},
      {"nesterov", "false", "Nesterov momentum"},
      {"lr-schedule", "onecycle",
       "constant | multistep:E1,E2 | cosine | onecycle | warmup:E+<schedule>"},
      {"label-smoothing", "0", "cross-entropy label smoothing"},
      {"augment", "true", "random crop (4 px padding) and horizontal flip"},
      {"seed", "1", "seed of the initialisation, data order and augmentation"},
      {"out", "runs/train", "output folder"},
      {"resume", "false", "continue the run in --out from last.safetensors"},
      {"save-every", "0", "also checkpoint every N steps (0: at epoch ends)"},
      {"stop-at-step", "0", "stop (with a checkpoint) at this global step (0: never)"},
      {"quiet", "false", "no progress lines"},
  };
  return o;
}

const std::map<std::string, std::string>& training_presets() {
  static const std::map<std::string, std::string> p = {
      {"cpu", "model = resnet18\nwidth = 0.25\nepochs = 20\nbatch-size = 128\nlr = 0.1\n"
              "lr-schedule = onecycle\n"},
      {"fast", "model = resnet18\nwidth = 1.0\nepochs = 30\nbatch-size = 256\nlr = 0.1\n"
               "lr-schedule = onecycle\n"},
      {"paper", "model = resnet18\nwidth = 1.0\nepochs = 182\nbatch-size = 256\nlr = 0.1\n"
                "lr-schedule = multistep:91,136\nmomentum = 0.9\nweight-decay = 5e-4\n"},
  };
  return p;
}

train::TrainOptions training_recipe(const Config& cfg) {
  train::TrainOptions o;
  o.epochs = cfg.get_int("epochs", 20);
  o.batch_size = cfg.get_int("batch-size", 128);
  o.sgd.lr = cfg.get_double("lr", 0.1);
  o.sgd.momentum = cfg.get_double("momentum", 0.9);
  o.sgd.weight_decay = cfg.get_double("weight-decay", 5e-4);
  o.sgd.nesterov = cfg.get_bool("nesterov", false);
  o.lr_schedule = cfg.get_string("lr-schedule", "onecycle");
  o.label_smoothing = cfg.get_double("label-smoothing", 0);
  o.augment = cfg.get_bool("augment", true);
  o.seed = static_cast<uint64_t>(cfg.get_int("seed", 1));
  o.save_every = cfg.get_int("save-every", 0);
  o.stop_at_step = cfg.get_int("stop-at-step", 0);
  o.quiet = cfg.get_bool("quiet", false);
  return o;
}

std::vector<Option> concat(std::vector<Option> a, const std::vector<Option>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void set_option(std::vector<Option>& opts, const std::string& key, const std::string& def,
                const std::string& help) {
  for (Option& o : opts) {
    if (o.key != key) continue;
    o.default_value = def;
    if (!help.empty()) o.help = help;
    return;
  }
  LETHE_CHECK(false, "set_option: no option '", key, "'");
}

}  // namespace lethe::cli
