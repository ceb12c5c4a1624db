// Method registry: names, defaults per scenario, flags, dispatch.
#include "unlearn/unlearn.h"

#include <algorithm>

#include "framework/checkpoint.h"

namespace lethe::unlearn {

namespace {

TrainRecipe* recipe_of(MethodOptions& o, const std::string& m) {
  if (m == "retrain") return &o.retrain.sgd;
  if (m == "ft") return &o.ft.sgd;
  if (m == "ga") return &o.ga.sgd;
  if (m == "rl") return &o.rl.sgd;
  if (m == "l1") return &o.l1.sgd;
  return nullptr;
}

nlohmann::json recipe_json(const TrainRecipe& r) {
  return {{"epochs", r.epochs},          {"lr", r.lr},
          {"lr_schedule", r.lr_schedule}, {"batch_size", r.batch_size},
          {"momentum", r.momentum},      {"weight_decay", r.weight_decay},
          {"augment", r.augment},        {"seed", r.seed}};
}

}  // namespace

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"retrain", "ft", "ga", "rl", "ff", "iu", "l1"};
  return names;
}

std::string canonical_method(const std::string& name) {
  if (name == "l1-sparse" || name == "l1_sparse") return "l1";
  const auto& all = method_names();
  LETHE_CHECK(std::find(all.begin(), all.end(), name) != all.end(), "unknown unlearning method '",
              name, "' (valid: retrain, ft, ga, rl, ff, iu, l1)");
  return name;
}

bool is_training_method(const std::string& method) {
  MethodOptions o;
  return recipe_of(o, canonical_method(method)) != nullptr;
}

MethodOptions default_method_options(const ForgetSpec& scenario) {
  MethodOptions o;
  o.ga.sgd.lr = ga_default_lr(scenario);
  return o;
}

void set_seed(MethodOptions& o, uint64_t seed) {
  for (const std::string& m : method_names())
    if (TrainRecipe* r = recipe_of(o, m)) r->seed = seed;
  o.ff.seed = seed;
}

void set_quiet(MethodOptions& o, bool quiet) {
  for (const std::string& m : method_names())
    if (TrainRecipe* r = recipe_of(o, m)) r->quiet = quiet;
  o.ff.quiet = quiet;
  o.iu.quiet = quiet;
}

const std::vector<std::pair<std::string, std::string>>& method_option_help() {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"epochs", "epochs (retrain 160, ft 10, ga 5, rl 10, l1 10)"},
      {"lr", "learning rate (retrain 0.1, ft/rl/l1 0.01, ga 1e-4 class-wise / 1e-3 random)"},
      {"lr-schedule", "LR schedule (retrain multistep:91,136, others constant)"},
      {"batch-size", "batch size (SGD methods 256, ff 32, iu 256 for the gradient sums)"},
      {"momentum", "SGD momentum (0.9)"},
      {"weight-decay", "SGD weight decay (5e-4)"},
      {"augment", "random crop + flip while unlearning (true for the SGD methods)"},
      {"alpha", "ff: noise scale (1e-8); iu: step size (1)"},
      {"gamma", "l1: l1 weight gamma (1e-4)"},
      {"l1-schedule", "l1: decay | growth | constant (decay)"},
      {"woodfisher-n", "iu: N of the WoodFisher recursion (1000; N + 2 retain samples)"},
  };
  return keys;
}

void apply_method_config(MethodOptions& o, const std::string& method_name, const Config& cfg,
                         const std::string& prefix) {
  const std::string m = canonical_method(method_name);
  TrainRecipe* r = recipe_of(o, m);
  auto given = [&](const std::string& key) {
    return cfg.has(prefix + key) && !cfg.get_string(prefix + key, "").empty();
  };
  auto only = [&](const std::string& key, bool applies, const char* which) {
    LETHE_CHECK(!given(key) || applies, "--", prefix, key, " does not apply to method ", m,
                " (it is for ", which, ")");
    return given(key);
  };
  const char* sgd = "retrain, ft, ga, rl and l1";
  if (only("epochs", r, sgd)) r->epochs = cfg.get_int(prefix + "epochs", r->epochs);
  if (only("lr", r, sgd)) r->lr = cfg.get_double(prefix + "lr", r->lr);
  if (only("lr-schedule", r, sgd)) r->lr_schedule = cfg.get_string(prefix + "lr-schedule", "");
  if (only("momentum", r, sgd)) r->momentum = cfg.get_double(prefix + "momentum", r->momentum);
  if (only("weight-decay", r, sgd))
    r->weight_decay = cfg.get_double(prefix + "weight-decay", r->weight_decay);
  if (only("augment", r, sgd)) r->augment = cfg.get_bool(prefix + "augment", r->augment);
  if (given("batch-size")) {
    const int64_t b = cfg.get_int(prefix + "batch-size", 0);
    LETHE_CHECK(b > 0, "--", prefix, "batch-size must be > 0, got ", b);
    if (r) r->batch_size = b;
    if (m == "ff") o.ff.batch_size = b;
    if (m == "iu") o.iu.batch_size = b;
  }
  if (only("alpha", m == "ff" || m == "iu", "ff and iu")) {
    (m == "ff" ? o.ff.alpha : o.iu.alpha) = cfg.get_double(prefix + "alpha", 0);
  }
  if (only("gamma", m == "l1", "l1")) o.l1.gamma = cfg.get_double(prefix + "gamma", o.l1.gamma);
  if (only("l1-schedule", m == "l1", "l1"))
    o.l1.schedule = parse_l1_schedule(cfg.get_string(prefix + "l1-schedule", "decay"));
  if (only("woodfisher-n", m == "iu", "iu"))
    o.iu.woodfisher_n = cfg.get_int(prefix + "woodfisher-n", o.iu.woodfisher_n);
}

nlohmann::json method_options_json(const std::string& method_name, const MethodOptions& o) {
  const std::string m = canonical_method(method_name);
  MethodOptions copy = o;
  if (TrainRecipe* r = recipe_of(copy, m)) {
    nlohmann::json j = recipe_json(*r);
    if (m == "l1") {
      j["gamma"] = o.l1.gamma;
      j["l1_schedule"] = to_string(o.l1.schedule);
    }
    return j;
  }
  if (m == "ff") return {{"alpha", o.ff.alpha}, {"batch_size", o.ff.batch_size}, {"seed", o.ff.seed}};
  return {{"alpha", o.iu.alpha}, {"batch_size", o.iu.batch_size},
          {"woodfisher_n", o.iu.woodfisher_n}};
}

TrainedModel load_trained_model(const std::string& path, int64_t init_seed_override,
                                Device device) {
  TrainedModel t;
  const Checkpoint peek = read_checkpoint(path);
  t.spec = models::spec_from_metadata(peek.metadata);
  t.metadata = peek.metadata;
  if (init_seed_override >= 0) {
    t.init_seed = static_cast<uint64_t>(init_seed_override);
  } else if (auto it = peek.metadata.find("seed"); it != peek.metadata.end()) {
    try {
      t.init_seed = std::stoull(it->second);
    } catch (const std::exception&) {
      LETHE_CHECK(false, path, ": metadata seed '", it->second, "' is not an integer");
    }
  }
  t.model = t.factory()();
  t.model->to(device);  // initialised on the host, then moved: the same weights on every device
  const Checkpoint ck = load_checkpoint(path, *t.model, models::model_metadata(t.spec));
  t.masks = prune::masks_from_checkpoint(ck, *t.model, path);
  install_masks(*t.model, t.masks);
  return t;
}

MethodResult run_method(const std::string& method_name, nn::Module& model,
                        const data::Dataset& train, const ForgetSet& fs,
                        const prune::MaskSet& masks, const MethodOptions& o,
                        const ModelFactory& fresh) {
  const std::string m = canonical_method(method_name);
  if (m == "retrain") return retrain(model, train, fs, masks, o.retrain, fresh);
  if (m == "ft") return finetune(model, train, fs, masks, o.ft);
  if (m == "ga") return gradient_ascent(model, train, fs, masks, o.ga);
  if (m == "rl") return random_label(model, train, fs, masks, o.rl);
  if (m == "ff") return fisher_forgetting(model, train, fs, masks, o.ff);
  if (m == "iu") return influence_unlearning(model, train, fs, masks, o.iu);
  return l1_sparse(model, train, fs, masks, o.l1);
}

}  // namespace lethe::unlearn
