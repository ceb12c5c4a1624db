// The resumable pruning pipelines (see pipeline.h for the stages, folders and the reading of
// SPEC section 4's rewinding rule).
#include "prune/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "framework/parse.h"
#include "prune/select.h"
#include "prune/synflow.h"

namespace lethe::prune {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string in_dir(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

/// Shortest decimal that reads back as the same double ("0.95", not "0.950000").
std::string fmt(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string snapshot_name(int64_t epoch) {
  return "epoch" + std::to_string(epoch) + ".safetensors";
}

/// Everything one run_pipeline call shares between its stages.
struct Run {
  const models::ModelSpec& spec;
  const data::Dataset& train_data;
  const std::vector<int64_t>& indices;
  const data::Dataset& val_data;
  const std::vector<int64_t>& val_indices;
  const PipelineOptions& o;
  int64_t total = 0;        ///< conv weights
  int64_t spe = 0;          ///< steps per epoch
  int64_t stages_trained = 0;
  double dense_seconds = 0;  ///< the dense stage's training time in this call

  /// The seed's initialisation, on o.device (initialised on the host: the same weights on
  /// every device), or on the host when `host`.
  std::shared_ptr<nn::Module> fresh_model(bool host = false) const {
    Generator gen(o.seed, 0);
    auto m = models::make_model(spec, gen);
    if (!host) m->to(o.device);
    return m;
  }

  void say(const char* fmt_str, auto... args) const {
    if (o.train.quiet) return;
    std::fprintf(stderr, "[prune] ");
    std::fprintf(stderr, fmt_str, args...);
    std::fprintf(stderr, "\n");
  }

  /// Trains one stage into o.out_dir of `opts`, continuing its last.safetensors when resuming.
  train::TrainResult fit(nn::Module& model, train::TrainOptions opts, const MaskSet& masks) {
    opts.resume = o.resume && fs::exists(in_dir(opts.out_dir, "last.safetensors"));
    train::TrainResult r =
        train::fit(model, train_data, indices, val_data, val_indices, opts, masks);
    if (r.steps_run > 0) ++stages_trained;
    return r;
  }

  /// True when this call may not start another stage (max_stages reached).
  bool out_of_stages() const { return o.max_stages > 0 && stages_trained >= o.max_stages; }
};

/// The metadata every checkpoint of a pruned stage carries (also run-defining for resume).
/// An IMP round before the last does not depend on the final rate (round s keeps 0.8^s
/// whatever the target), so its metadata leaves the rate out: the first rounds of IMP to 95%
/// and to 99% are the same files, and a comparison may copy them from one run to the other
/// (scripts/prune_comparison.sh does).
io::StMetadata stage_metadata(const Run& run, int64_t round, int64_t rounds, int64_t pruned) {
  io::StMetadata m = run.o.train.metadata;
  const io::StMetadata model = models::model_metadata(run.spec);
  m.insert(model.begin(), model.end());
  m["prune_method"] = run.o.method;
  m["prune_round"] = std::to_string(round);
  if (round == rounds) {
    m["prune_rate"] = fmt(run.o.rate);
    m["prune_rounds"] = std::to_string(rounds);
  }
  if (run.o.method == "imp") m["imp_round_rate"] = fmt(run.o.imp_round_rate);
  if (run.o.method == "random") m["prune_seed"] = std::to_string(run.o.seed);
  if (run.o.method == "synflow") {
    m["synflow_iterations"] = std::to_string(run.o.synflow_iterations);
    m["synflow_precision"] = run.o.synflow_float64 ? "float64" : "float32";
  }
  m["sparsity"] = fmt(static_cast<double>(pruned) / static_cast<double>(run.total));
  m["rewind_epoch"] = run.o.method == "synflow" ? "none" : std::to_string(run.o.rewind_epoch);
  return m;
}

/// The masks of a stage: reused from dir/masks.safetensors when resuming (checked to be the
/// same stage), else computed by `compute` and saved there before any training.
template <class Compute>
MaskSet stage_masks(Run& run, nn::Module& model, const std::string& dir,
                    const io::StMetadata& meta, RoundRecord& rec, Compute compute) {
  const std::string path = in_dir(dir, "masks.safetensors");
  if (run.o.resume && fs::exists(path)) {
    const Checkpoint ck = read_checkpoint(path);
    for (const auto& [key, value] : meta) {  // model, data split and pruning keys
      auto it = ck.metadata.find(key);
      LETHE_CHECK(it != ck.metadata.end() && it->second == value, path, " was made with ",
                  key, " = ", it == ck.metadata.end() ? std::string("(none)") : it->second,
                  ", not ", value, "; use another --out or start over without --resume");
    }
    MaskSet masks = masks_from_checkpoint(ck, model, path);
    LETHE_CHECK(masks.size() == prunable_layers(model).size(), path,
                " lacks the masks of some conv layers; start over without --resume");
    run.say("round %lld: reusing the masks in %s", static_cast<long long>(rec.round), path.c_str());
    return masks;
  }
  const auto t0 = Clock::now();
  MaskSet masks = compute();
  rec.mask_seconds = seconds_since(t0);
  io::StMetadata m = meta;
  m["kind"] = "masks";
  fs::create_directories(dir);
  save_masks(path, masks, m);
  return masks;
}

/// When resuming into a folder whose last.safetensors exists, its masks must be the stage's.
void check_resumed_masks(nn::Module& model, const std::string& dir, const MaskSet& masks) {
  const std::string last = in_dir(dir, "last.safetensors");
  if (!fs::exists(last)) return;
  const MaskSet saved = read_masks(last, model);
  LETHE_CHECK(flatten_masks(model, saved) == flatten_masks(model, masks), last,
              " was trained with other masks than ", in_dir(dir, "masks.safetensors"),
              "; start over without --resume");
}

/// Reports the recipe keys in which an existing dense run differs from this run.
void compare_dense_recipe(const Run& run, const io::StMetadata& dense, const std::string& path) {
  const train::TrainOptions& t = run.o.train;
  const std::vector<std::pair<std::string, std::string>> ours = {
      {"epochs", std::to_string(t.epochs)},
      {"batch_size", std::to_string(t.batch_size)},
      {"lr_schedule", t.lr_schedule},
      {"seed", std::to_string(t.seed)}};
  io::StMetadata expect(ours.begin(), ours.end());
  for (const char* key : {"split_seed", "train_limit"}) {
    auto it = t.metadata.find(key);
    if (it != t.metadata.end()) expect[key] = it->second;
  }
  for (const auto& [key, value] : expect) {
    auto it = dense.find(key);
    if (it != dense.end() && it->second != value)
      run.say("note: the dense run %s has %s = %s, this run %s", path.c_str(), key.c_str(),
              it->second.c_str(), value.c_str());
  }
}

/// Trains (or finds) the dense run; returns its folder, or "" when this call must stop.
std::string dense_stage(Run& run, bool snapshot_only) {
  const PipelineOptions& o = run.o;
  const std::string snap_file = snapshot_name(o.rewind_epoch);
  if (!o.dense_dir.empty()) {  // its snapshot's presence is checked by check_options
    if (!snapshot_only) {
      const std::string last = in_dir(o.dense_dir, "last.safetensors");
      LETHE_CHECK(fs::exists(last), "--dense ", o.dense_dir, " holds no last.safetensors");
      const Checkpoint ck = read_checkpoint(last);
      const auto e = ck.metadata.find("epoch"), n = ck.metadata.find("epochs");
      LETHE_CHECK(e != ck.metadata.end() && n != ck.metadata.end() && e->second == n->second,
                  "the dense run in ", o.dense_dir, " is not finished (epoch ",
                  e == ck.metadata.end() ? "?" : e->second, " of ",
                  n == ck.metadata.end() ? "?" : n->second,
                  "); finish it with 'lethe train --resume' first");
      compare_dense_recipe(run, ck.metadata, last);
    }
    return o.dense_dir;
  }
  const std::string dir = in_dir(o.out_dir, "dense");
  if (snapshot_only && o.resume && fs::exists(in_dir(dir, snap_file))) return dir;
  if (run.out_of_stages()) return "";
  auto model = run.fresh_model();
  train::TrainOptions opts = o.train;
  opts.out_dir = dir;
  opts.snapshot_epoch = o.rewind_epoch;
  // Random pruning needs only the snapshot: stop the dense run there.
  if (snapshot_only) opts.stop_at_step = o.rewind_epoch * run.spe;
  run.say("dense training into %s (%s)", dir.c_str(),
          snapshot_only ? "up to the rewind snapshot" : "all epochs");
  const train::TrainResult r = run.fit(*model, opts, {});
  run.dense_seconds = r.seconds;
  if (snapshot_only ? !fs::exists(in_dir(dir, snap_file)) : !r.finished) return "";
  return dir;
}

}  // namespace

const std::vector<std::string>& known_methods() {
  static const std::vector<std::string> m{"omp", "imp", "synflow", "random"};
  return m;
}

int64_t steps_per_epoch(int64_t n, int64_t batch_size, bool drop_last) {
  LETHE_CHECK(batch_size > 0, "the batch size must be > 0, got ", batch_size);
  return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

Checkpoint rewind_to_snapshot(nn::Module& model, const std::string& snapshot_path,
                              const io::StMetadata& expect) {
  return load_checkpoint(snapshot_path, model, expect);
}

train::TrainOptions rewind_options(const train::TrainOptions& base, int64_t rewind_epoch,
                                   int64_t spe, int64_t dense_epochs) {
  train::TrainOptions o = base;
  o.lr_step_offset = rewind_epoch * spe;
  o.snapshot_epoch = 0;
  if (base.schedule_epochs == 0 && dense_epochs > 0)
    o.schedule_epochs = rewound_schedule_epochs(dense_epochs, rewind_epoch, base.epochs);
  return o;
}

int64_t rewound_schedule_epochs(int64_t dense_epochs, int64_t rewind_epoch,
                                int64_t retrain_epochs) {
  return std::min(dense_epochs, rewind_epoch + retrain_epochs);
}

int64_t snapshot_run_epochs(const Checkpoint& snapshot) {
  const auto it = snapshot.metadata.find("epochs");
  if (it == snapshot.metadata.end()) return 0;
  int64_t e = 0;
  return parse_int(it->second, &e) && e > 0 ? e : 0;
}

void check_options(const PipelineOptions& o) {
  const auto& methods = known_methods();
  LETHE_CHECK(std::find(methods.begin(), methods.end(), o.method) != methods.end(),
              "unknown pruning method '", o.method, "'; choose one of: omp, imp, synflow, random");
  prune_count(o.rate, 0);  // validates the rate
  LETHE_CHECK(!o.out_dir.empty(), "pruning needs an output folder");
  LETHE_CHECK(o.train.epochs > 0, "pruning needs epochs > 0");
  const bool rewinds = o.method != "synflow";
  if (rewinds)
    LETHE_CHECK(o.rewind_epoch >= 1 && o.rewind_epoch <= o.train.epochs, "--rewind-epoch must ",
                "lie in 1..epochs (", o.train.epochs, "), got ", o.rewind_epoch);
  LETHE_CHECK(o.dense_dir.empty() || rewinds, "--dense is for omp, imp and random; synflow ",
              "prunes at initialisation and trains from there");
  LETHE_CHECK(!o.train.resume && o.train.out_dir.empty() && o.train.lr_step_offset == 0,
              "run_pipeline sets resume, out_dir and lr_step_offset per stage; use ",
              "PipelineOptions.resume and .out_dir");
  LETHE_CHECK(o.synflow_iterations >= 1, "--synflow-iterations must be >= 1, got ",
              o.synflow_iterations);
  LETHE_CHECK(o.imp_round_rate > 0 && o.imp_round_rate < 1, "--imp-round-rate must lie in ",
              "(0, 1), got ", o.imp_round_rate);
  LETHE_CHECK(o.max_stages >= 0, "--max-stages must be >= 0, got ", o.max_stages);
  if (!o.dense_dir.empty()) {
    const std::string snap = in_dir(o.dense_dir, snapshot_name(o.rewind_epoch));
    LETHE_CHECK(fs::exists(snap), "--dense ", o.dense_dir, " holds no ",
                snapshot_name(o.rewind_epoch), "; train the dense run with --snapshot-epoch ",
                o.rewind_epoch);
  }
}

PipelineResult run_pipeline(const models::ModelSpec& spec, const data::Dataset& train_data,
                            const std::vector<int64_t>& indices, const data::Dataset& val_data,
                            const std::vector<int64_t>& val_indices, const PipelineOptions& o) {
  check_options(o);
  const bool rewinds = o.method != "synflow";

  Run run{spec, train_data, indices, val_data, val_indices, o};
  run.total = prunable_count(*run.fresh_model(/*host=*/true));
  run.spe = steps_per_epoch(static_cast<int64_t>(indices.size()), o.train.batch_size,
                            o.train.drop_last);
  fs::create_directories(o.out_dir);

  PipelineResult res;
  res.final_dir = o.out_dir;
  const io::StMetadata model_meta = models::model_metadata(spec);

  if (!rewinds) {
    res.rounds_planned = 1;
    RoundRecord rec{1, prune_count(o.rate, run.total), run.total, o.out_dir, 0, 0};
    const io::StMetadata meta = stage_metadata(run, 1, 1, rec.pruned);
    auto model = run.fresh_model();
    const MaskSet masks = stage_masks(run, *model, o.out_dir, meta, rec, [&] {
      run.say("synflow at initialisation: %d iterations to %.4g%% (%s scoring)",
              o.synflow_iterations, 100.0 * o.rate, o.synflow_float64 ? "float64" : "float32");
      SynflowOptions so;
      so.iterations = o.synflow_iterations;
      so.float64 = o.synflow_float64;
      so.verbose = !o.train.quiet;
      // Scored on the host in any case (float64, synflow.h): the same initialisation there.
      return masks_to(synflow_masks(*run.fresh_model(/*host=*/true), o.rate, so), o.device);
    });
    if (o.resume) check_resumed_masks(*model, o.out_dir, masks);
    apply_masks(*model, masks);
    train::TrainOptions opts = o.train;
    opts.out_dir = o.out_dir;
    opts.snapshot_epoch = 0;
    opts.metadata = meta;
    res.final_training = run.fit(*model, opts, masks);
    rec.train_seconds = res.final_training.seconds;
    res.rounds.push_back(rec);
    res.finished = res.final_training.finished;
    res.model = model;
    res.masks = masks;
    return res;
  }

  res.dense_dir = dense_stage(run, o.method == "random");
  res.dense_seconds = run.dense_seconds;
  if (res.dense_dir.empty()) return res;
  const std::string snapshot = in_dir(res.dense_dir, snapshot_name(o.rewind_epoch));

  std::vector<int64_t> schedule;
  if (o.method == "imp") schedule = imp_schedule(o.rate, run.total, o.imp_round_rate);
  if (schedule.empty()) schedule.push_back(prune_count(o.rate, run.total));
  const int64_t rounds = static_cast<int64_t>(schedule.size());
  res.rounds_planned = rounds;

  auto round_dir = [&](int64_t s) {
    return s == rounds ? o.out_dir : in_dir(o.out_dir, "round" + std::to_string(s));
  };
  // Resuming, the latest round whose masks exist is where the work continues: the rounds
  // before it are finished (their masks are derived from the last of them), and IMP needs
  // nothing else from them, not even their checkpoints. So a run can move between machines
  // with the dense run and that one masks file (scripts/prune_comparison.sh handoff-save).
  int64_t first = 1;
  if (o.resume)
    for (int64_t s = rounds; s > 1; --s)
      if (fs::exists(in_dir(round_dir(s), "masks.safetensors"))) {
        first = s;
        break;
      }
  for (int64_t s = 1; s < first; ++s)
    res.rounds.push_back({s, schedule[static_cast<size_t>(s - 1)], run.total, round_dir(s), 0, 0});
  if (first > 1 && !fs::exists(in_dir(round_dir(first - 1), "last.safetensors")))
    run.say("rounds 1-%lld have no checkpoints here; continuing from round %lld's masks in %s",
            static_cast<long long>(first - 1), static_cast<long long>(first),
            round_dir(first).c_str());

  std::string prev_dir = first > 1 ? round_dir(first - 1) : res.dense_dir;
  for (int64_t s = first; s <= rounds; ++s) {
    const std::string dir = round_dir(s);
    RoundRecord rec{s, schedule[static_cast<size_t>(s - 1)], run.total, dir, 0, 0};
    const io::StMetadata meta = stage_metadata(run, s, rounds, rec.pruned);
    auto model = run.fresh_model();
    const MaskSet masks = stage_masks(run, *model, dir, meta, rec, [&] {
      if (o.method == "random") {
        run.say("random global mask: %lld of %lld conv weights (seed %llu, stream %llu)",
                static_cast<long long>(rec.pruned), static_cast<long long>(run.total),
                static_cast<unsigned long long>(o.seed),
                static_cast<unsigned long long>(kPruneStream));
        return random_masks(*model, o.rate, o.seed);
      }
      const std::string src = in_dir(prev_dir, "last.safetensors");
      const Checkpoint ck = load_checkpoint(src, *model, model_meta);
      const MaskSet current = s == 1 ? MaskSet{} : masks_from_checkpoint(ck, *model, src);
      run.say("round %lld/%lld: global magnitude pruning of %s to %lld of %lld conv weights "
              "(%.4g%%)", static_cast<long long>(s), static_cast<long long>(rounds), src.c_str(),
              static_cast<long long>(rec.pruned), static_cast<long long>(run.total),
              100.0 * static_cast<double>(rec.pruned) / static_cast<double>(run.total));
      return magnitude_prune(*model, current, rec.pruned);
    });
    if (o.resume) check_resumed_masks(*model, dir, masks);
    if (!(o.resume && fs::exists(in_dir(dir, "last.safetensors")))) {
      if (run.out_of_stages()) {
        res.rounds.push_back(rec);
        return res;
      }
      run.say("round %lld/%lld: rewinding weights and BN state to %s; new optimizer; LR "
              "schedule advanced by %lld epochs (%lld steps)", static_cast<long long>(s),
              static_cast<long long>(rounds), snapshot.c_str(),
              static_cast<long long>(o.rewind_epoch),
              static_cast<long long>(o.rewind_epoch * run.spe));
    }
    const Checkpoint snap = rewind_to_snapshot(*model, snapshot, model_meta);
    auto st = snap.metadata.find("step");
    if (st != snap.metadata.end() && st->second != std::to_string(o.rewind_epoch * run.spe))
      run.say("note: %s was taken at step %s, but %lld epochs of this run are %lld steps",
              snapshot.c_str(), st->second.c_str(), static_cast<long long>(o.rewind_epoch),
              static_cast<long long>(o.rewind_epoch * run.spe));
    apply_masks(*model, masks);
    // The dense run's schedule, rewound (o.train.schedule_epochs, when set, wins).
    train::TrainOptions opts =
        rewind_options(o.train, o.rewind_epoch, run.spe, snapshot_run_epochs(snap));
    opts.out_dir = dir;
    opts.metadata = meta;
    const train::TrainResult r = run.fit(*model, opts, masks);
    rec.train_seconds = r.seconds;
    res.rounds.push_back(rec);
    if (!r.finished) return res;
    if (s == rounds) {
      res.final_training = r;
      res.model = model;
      res.masks = masks;
      res.finished = true;
    } else if (run.out_of_stages()) {
      return res;
    }
    prev_dir = dir;
  }
  return res;
}

}  // namespace lethe::prune
