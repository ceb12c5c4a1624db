// The stage cache and progress lines of the experiment commands (apps/stages.h).
#include "apps/stages.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/options.h"
#include "apps/report.h"
#include "framework/atomic_file.h"
#include "framework/rng.h"
#include "framework/version.h"
#include "kernels/check.h"
#include "prune/mask.h"
#include "prune/pipeline.h"
#include "unlearn/unlearn.h"

namespace lethe::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string stable_hash(const std::string& text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Stage::file(const std::string& f) const { return (fs::path(dir) / f).string(); }

bool Stage::done() const { return fs::exists(file("done.json")); }

json Stage::result() const {
  std::ifstream in(file("done.json"));
  return json::parse(in);
}

void Stage::finish(const json& key, const json& result) const {
  write_text_atomic(file("done.json"), json{{"key", key}, {"result", result}}.dump(2) + "\n");
}

Stage make_stage(const std::string& out, const std::string& name, const json& key) {
  Stage s;
  s.name = name;
  s.hash = stable_hash(key.dump()).substr(0, 12);
  s.dir = (fs::path(out) / "stages" / (name + "-" + s.hash)).string();
  return s;
}

namespace {
std::string minutes(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return buf;
}
}  // namespace

void Progress::begin(const std::string& what, bool cached) {
  ++index_;
  if (quiet_) return;
  const double el = clock_.seconds();
  std::string eta = "?";
  if (computed_ > 0) {
    const double rest = (computed_s_ / computed_) * static_cast<double>(total_ - index_ + 1);
    // Appended, not "~" + string: GCC 12 warns falsely (-Wrestrict) on that operator+.
    eta.assign(1, '~');
    eta += minutes(rest);
  }
  std::fprintf(stderr, "[%s] stage %lld/%lld: %s%s (elapsed %s, ETA %s)\n", tag_.c_str(),
               static_cast<long long>(index_), static_cast<long long>(total_), what.c_str(),
               cached ? " [cached]" : " ...", minutes(el).c_str(), eta.c_str());
}

void Progress::computed(double seconds) {
  ++computed_;
  computed_s_ += seconds;
}

std::string rate_percent(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", 100.0 * rate);
  return buf;
}

std::vector<double> parse_rates(const Config& cfg, const std::string& key,
                                const std::vector<std::string>& def) {
  std::vector<double> rates;
  for (const std::string& r : cfg.get_list(key, def)) {
    double v = -1;
    size_t used = 0;
    try {
      v = std::stod(r, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LETHE_CHECK(used == r.size() && v >= 0 && v < 1, "--", key, ": '", r,
                "' is not a pruning rate in [0, 1)");
    rates.push_back(v);
  }
  LETHE_CHECK(!rates.empty(), "--", key, " lists no pruning rate");
  return rates;
}

std::vector<Option> experiment_options(std::vector<Option> own, const std::string& rewind,
                                       const std::string& out) {
  std::vector<Option> opts = concat(std::move(own), {
      {"rewind-epoch", rewind, "OMP rewinds to the dense run's snapshot after this many epochs"},
      {"prune-epochs", "",
       "epochs of the OMP retraining (default: --epochs); a shorter one runs the dense LR "
       "schedule cut to rewind-epoch + prune-epochs epochs, so it ends where a schedule ends"},
      {"val-limit", "0", "validate on the first N validation images (0: all)"},
  });
  for (const std::string& m : unlearn::method_names())
    for (const auto& [key, help] : unlearn::method_option_help())
      opts.push_back({cat(m, ".", key), "", cat(m, ": ", help)});
  opts = concat(concat(opts, training_options()), concat(data_options(), setting_options()));
  set_option(opts, "out", out, "output folder (results and stages/)");
  set_option(opts, "resume", "false", "ignored: the experiment always resumes from its stages");
  return opts;
}

models::ModelSpec experiment_spec(const Config& cfg, int64_t num_classes,
                                  const std::string& dataset) {
  models::ModelSpec spec;
  spec.arch = cfg.get_string("model", "resnet18");
  spec.width = cfg.get_double("width", 0.25);
  spec.num_classes = num_classes;
  spec.dataset = dataset;
  return spec;
}

json results_header(const std::string& command, const Config& cfg, const json& settings,
                    const std::string& started) {
  return {{"lethe_version", version()}, {"command", command}, {"config", config_json(cfg)},
          {"settings", settings},       {"machine", machine_info()}, {"started", started}};
}

void limit_validation(const Config& cfg, std::vector<int64_t>& val_idx) {
  const int64_t limit = cfg.get_int("val-limit", 0);
  LETHE_CHECK(limit >= 0, "--val-limit must be >= 0, got ", limit);
  if (limit > 0 && limit < static_cast<int64_t>(val_idx.size()))
    val_idx.resize(static_cast<size_t>(limit));
}

io::StMetadata experiment_metadata(const Config& cfg, const models::ModelSpec& spec,
                                   uint64_t seed) {
  io::StMetadata meta = models::model_metadata(spec);
  meta["split_seed"] = std::to_string(cfg.get_int("split-seed", 0));
  meta["train_limit"] = std::to_string(cfg.get_int("train-limit", 0));
  meta["seed"] = std::to_string(seed);
  return meta;
}

json data_key(const Config& cfg, const std::string& dataset, size_t n_train, size_t n_val) {
  return {{"dataset", dataset}, {"split_seed", cfg.get_int("split-seed", 0)},
          {"train_limit", cfg.get_int("train-limit", 0)}, {"n_train", n_train},
          {"n_val", n_val}};
}

train::TrainOptions recipe(const Config& cfg, int64_t epochs) {
  train::TrainOptions o = training_recipe(cfg);
  o.epochs = epochs;
  return o;
}

train::TrainOptions prune_recipe(const Config& cfg, const train::TrainOptions& dense,
                                 int64_t rewind_epoch) {
  train::TrainOptions o = recipe(cfg, cfg.get_int("prune-epochs", dense.epochs));
  // prune::run_pipeline would derive the same span from the dense snapshot; set here, it is
  // part of the prune stage's key (recipe_json), so a changed schedule is never served stale.
  o.schedule_epochs = prune::rewound_schedule_epochs(dense.epochs, rewind_epoch, o.epochs);
  return o;
}

json recipe_json(const train::TrainOptions& o) {
  json j = {{"epochs", o.epochs}, {"batch_size", o.batch_size}, {"lr", o.sgd.lr},
            {"momentum", o.sgd.momentum}, {"weight_decay", o.sgd.weight_decay},
            {"nesterov", o.sgd.nesterov}, {"lr_schedule", o.lr_schedule},
            {"label_smoothing", o.label_smoothing}, {"augment", o.augment}, {"seed", o.seed}};
  // Only when it changes the schedule: stages cached before the option existed keep their
  // keys where they are still right (prune-epochs == epochs), and are recomputed where the
  // schedule used to be squeezed into prune-epochs.
  if (train::lr_schedule_span(o) != o.epochs) j["schedule_epochs"] = train::lr_schedule_span(o);
  return j;
}

double checkpoint_test_accuracy(const std::string& path, const data::Dataset& test,
                                const std::vector<int64_t>& test_idx, Device device) {
  const unlearn::TrainedModel tm = unlearn::load_trained_model(path, -1, device);
  return train::evaluate(*tm.model, test, test_idx).accuracy;
}

Stage dense_stage(const std::string& out, const std::string& name, const json& data_key,
                  const json& model_key, const models::ModelSpec& spec, uint64_t model_seed,
                  const io::StMetadata& meta, train::TrainOptions o, int64_t snapshot,
                  const StageData& d, Progress& progress) {
  o.metadata = meta;
  o.snapshot_epoch = snapshot;
  const json key = {{"stage", "dense"}, {"data", data_key}, {"model", model_key},
                    {"recipe", recipe_json(o)}, {"snapshot_epoch", snapshot}};
  const Stage st = make_stage(out, name, key);
  progress.begin(cat(name, " training (", std::to_string(o.epochs), " epochs)"), st.done());
  if (st.done()) return st;
  unlearn::Stopwatch sw;
  fs::create_directories(st.dir);
  Generator init_gen(model_seed, 0);
  auto model = models::make_model(spec, init_gen);
  model->to(d.device);
  o.out_dir = st.dir;
  o.resume = fs::exists(st.file("last.safetensors"));
  const train::TrainResult tr = train::fit(*model, d.train, d.train_idx, d.train, d.val_idx, o);
  LETHE_CHECK(tr.finished, name, " training stopped early");
  double best_val = -1;
  for (const auto& e : tr.history) best_val = std::max(best_val, e.val_acc);
  st.finish(key,
            {{"test_acc_best", checkpoint_test_accuracy(st.file("best.safetensors"), d.test,
                                                        d.test_idx, d.device)},
             {"test_acc_last", checkpoint_test_accuracy(st.file("last.safetensors"), d.test,
                                                        d.test_idx, d.device)},
             {"best_val_acc", best_val}, {"seconds", sw.seconds()}});
  progress.computed(sw.seconds());
  return st;
}

Stage omp_stage(const std::string& out, const std::string& name, const Stage& dense,
                const models::ModelSpec& spec, uint64_t model_seed, const io::StMetadata& meta,
                double rate, int64_t rewind, train::TrainOptions o, const StageData& d,
                Progress& progress) {
  prune::PipelineOptions po;
  po.method = "omp";
  po.rate = rate;
  po.rewind_epoch = rewind;
  po.seed = model_seed;
  po.train = std::move(o);
  po.train.metadata = meta;
  po.device = d.device;
  const json key = {{"stage", "prune"}, {"dense", dense.hash}, {"method", po.method},
                    {"rate", po.rate}, {"rewind_epoch", rewind},
                    {"recipe", recipe_json(po.train)}};
  const Stage st = make_stage(out, name, key);
  progress.begin(cat("OMP pruning to ", rate_percent(rate), "% (",
                     std::to_string(po.train.epochs), " epochs)"), st.done());
  if (st.done()) return st;
  unlearn::Stopwatch sw;
  fs::create_directories(st.dir);
  po.out_dir = st.dir;
  po.dense_dir = dense.dir;
  po.resume = true;  // continues an interrupted retraining; a fresh folder starts from scratch
  const prune::PipelineResult pr =
      prune::run_pipeline(spec, d.train, d.train_idx, d.train, d.val_idx, po);
  LETHE_CHECK(pr.finished, "pruning stopped early");
  const double sp = prune::sparsity_report(*pr.model).sparsity();
  st.finish(key, {{"test_acc_last", checkpoint_test_accuracy(st.file("last.safetensors"), d.test,
                                                             d.test_idx, d.device)},
                  {"sparsity", sp}, {"seconds", sw.seconds()}});
  progress.computed(sw.seconds());
  return st;
}

}  // namespace lethe::cli
