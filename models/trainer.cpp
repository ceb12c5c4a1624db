#include "models/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/augment.h"
#include "framework/atomic_file.h"
#include "framework/autograd.h"
#include "framework/checkpoint.h"
#include "framework/dispatch.h"
#include "framework/lr_schedule.h"
#include "framework/ops.h"
#include "framework/version.h"
#include "kernels/augment.h"

namespace lethe::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Correct predictions of a [B,C] float logits tensor against int32 labels (either device:
/// GPU results are copied to the host, B*C floats).
int64_t count_correct(const Tensor& logits_in, const Tensor& labels_in) {
  const Tensor logits = logits_in.device().is_cpu() ? logits_in : logits_in.to(Device::cpu());
  const Tensor labels = labels_in.device().is_cpu() ? labels_in : labels_in.to(Device::cpu());
  const int64_t B = logits.size(0), C = logits.size(1);
  const float* l = logits.data<float>();
  const int32_t* y = labels.data<int32_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < B; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (l[i * C + c] > l[i * C + best]) best = c;
    correct += best == y[i];
  }
  return correct;
}

std::string format_eta(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

nlohmann::json to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},         {"loss", r.loss},    {"train_acc", r.train_acc},
          {"val_acc", r.val_acc},     {"lr", r.lr},        {"seconds", r.seconds},
          {"images_per_s", r.images_per_s}};
}

EpochRecord from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<int64_t>();
  r.loss = j.at("loss").get<double>();
  r.train_acc = j.at("train_acc").get<double>();
  r.val_acc = j.at("val_acc").get<double>();
  r.lr = j.at("lr").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.images_per_s = j.at("images_per_s").get<double>();
  return r;
}

void write_log(const std::string& path, const std::vector<EpochRecord>& history) {
  nlohmann::json j = {{"epochs", nlohmann::json::array()}};
  for (const auto& r : history) j["epochs"].push_back(to_json(r));
  write_text_atomic(path, j.dump(1) + "\n");
}

std::vector<EpochRecord> read_log(const std::string& path, int64_t upto_epoch) {
  std::vector<EpochRecord> out;
  std::ifstream f(path);
  if (!f) return out;
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    for (const auto& e : j.at("epochs")) {
      EpochRecord r = from_json(e);
      if (r.epoch <= upto_epoch) out.push_back(r);
    }
  } catch (const nlohmann::json::exception& e) {
    LETHE_CHECK(false, path, " is not a valid training log (", e.what(), ")");
  }
  return out;
}

/// The run-defining options, recorded in every checkpoint: resuming with different ones
/// would not continue the same run.
io::StMetadata run_metadata(const TrainOptions& o, int64_t steps_per_epoch) {
  io::StMetadata m = o.metadata;
  m["format"] = "lethe-checkpoint-1";
  m["lethe_version"] = version();
  m["epochs"] = std::to_string(o.epochs);
  m["batch_size"] = std::to_string(o.batch_size);
  m["steps_per_epoch"] = std::to_string(steps_per_epoch);
  m["lr"] = std::to_string(o.sgd.lr);
  m["lr_schedule"] = o.lr_schedule;
  m["lr_step_offset"] = std::to_string(o.lr_step_offset);
  // Only when it differs, so runs whose schedule spans their own epochs keep the metadata
  // (and resume) of checkpoints written before the option existed.
  if (lr_schedule_span(o) != o.epochs) m["schedule_epochs"] = std::to_string(lr_schedule_span(o));
  m["seed"] = std::to_string(o.seed);
  return m;
}

}  // namespace

Device model_device(const nn::Module& model) {
  const nn::NamedTensors p = model.named_parameters();
  return p.empty() ? Device::cpu() : p.front().second.device();
}

void to_device(data::Batch& b, Device dev) {
  if (b.raw.defined()) {
    // A raw batch: the uint8 images (a quarter of the float bytes) and the transforms go to
    // `dev`, which converts and augments there (kernels/augment.h: the same floats as the
    // CPU's crop_flip_image / image_to_float).
    const int64_t n = b.size();
    const bool aug = b.shift_y.defined();
    Tensor out = Tensor::empty({n, data::kChannels, data::kHeight, data::kWidth}, DType::F32, dev);
    detail::on_device("to_device", dev, [&] {
      const uint8_t* src = b.raw.data<uint8_t>();
      const uint8_t* dy = aug ? b.shift_y.data<uint8_t>() : nullptr;
      const uint8_t* dx = aug ? b.shift_x.data<uint8_t>() : nullptr;
      const uint8_t* flip = aug ? b.flip.data<uint8_t>() : nullptr;
      float* dst = out.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* img = src + i * data::kImageBytes;
        float* o = dst + i * data::kImageBytes;
        if (aug)
          data::crop_flip_image(
              img, {static_cast<int8_t>(dy[i]), static_cast<int8_t>(dx[i]), flip[i] != 0}, o);
        else
          data::image_to_float(img, o);
      }
    }, [&] {
      const Tensor raw = b.raw.to(dev);
      if (aug) {
        const Tensor dy = b.shift_y.to(dev), dx = b.shift_x.to(dev), flip = b.flip.to(dev);
        kernels::crop_flip_cuda(n, raw.data<uint8_t>(),
                                reinterpret_cast<const int8_t*>(dy.data<uint8_t>()),
                                reinterpret_cast<const int8_t*>(dx.data<uint8_t>()),
                                flip.data<uint8_t>(), out.data<float>(), detail::cuda_exec());
      } else {
        kernels::image_to_float_cuda(n, raw.data<uint8_t>(), out.data<float>(),
                                     detail::cuda_exec());
      }
    });
    b.images = out;
    b.raw = b.shift_y = b.shift_x = b.flip = Tensor();
  } else if (!dev.is_cpu()) {
    b.images = b.images.to(dev);
  }
  if (!dev.is_cpu()) b.labels = b.labels.to(dev);
}

EvalResult evaluate(nn::Module& model, const data::Dataset& data,
                    const std::vector<int64_t>& indices, int64_t batch_size) {
  EvalResult r;
  if (indices.empty()) return r;
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  const Device dev = model_device(model);
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.raw = !dev.is_cpu();  // converted on the GPU (to_device)
  data::BatchLoader loader(data, indices, lo);
  loader.start_epoch(0);
  data::Batch b;
  int64_t correct = 0;
  double loss_sum = 0;
  while (loader.next(&b)) {
    to_device(b, dev);
    const Tensor logits = model(b.images);
    correct += count_correct(logits, b.labels);
    loss_sum += ops::cross_entropy(logits, b.labels, ops::Reduction::Sum).item();
    r.n += b.size();
  }
  model.train(was_training);
  r.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(r.n);
  r.loss = loss_sum / static_cast<double>(r.n);
  return r;
}

void save_training_checkpoint(const std::string& path, const nn::Module& model, const SGD* opt,
                              const std::map<std::string, Tensor>& masks,
                              const io::StMetadata& metadata) {
  nn::NamedTensors tensors = model.state_dict();
  if (opt) {
    const nn::NamedTensors params = model.named_parameters();
    const auto& bufs = const_cast<SGD*>(opt)->momentum_buffers();
    for (size_t i = 0; i < params.size() && i < bufs.size(); ++i)
      if (bufs[i].defined()) tensors.emplace_back("optim." + params[i].first + ".momentum_buffer", bufs[i]);
  }
  for (const auto& [name, m] : masks) tensors.emplace_back(name + ".mask", m);
  save_checkpoint(path, tensors, metadata);
}

TrainResult fit(nn::Module& model, const data::Dataset& train_data,
                const std::vector<int64_t>& indices, const data::Dataset& val_data,
                const std::vector<int64_t>& val_indices, const TrainOptions& o,
                const std::map<std::string, Tensor>& masks) {
  LETHE_CHECK(o.epochs > 0 && o.batch_size > 0, "training needs epochs > 0 and batch size > 0");
  LETHE_CHECK(!indices.empty(), "training needs a non-empty training set");
  const Device dev = model_device(model);
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = true;
  lo.augment = o.augment;
  lo.drop_last = o.drop_last;
  lo.seed = o.seed;
  lo.raw = !dev.is_cpu();  // augmented on the GPU (to_device)
  data::BatchLoader loader(train_data, indices, lo);
  const int64_t spe = loader.num_batches();
  LETHE_CHECK(spe > 0, "the training set (", indices.size(), " images) gives no batch of ",
              o.batch_size, " with drop_last");

  const nn::NamedTensors named = model.named_parameters();
  std::vector<Tensor> params;
  for (const auto& [n, p] : named) params.push_back(p);
  SGD opt(params, o.sgd);
  for (const auto& [name, mask] : masks) {
    bool found = false;
    for (const auto& [n, p] : named)
      if (n == name) {
        opt.set_mask(p, mask);
        found = true;
      }
    LETHE_CHECK(found, "mask for '", name, "', which is not a parameter of the model");
  }
  LETHE_CHECK(o.schedule_epochs >= 0, "the LR schedule needs epochs >= 0, got ", o.schedule_epochs);
  const auto schedule = make_lr_schedule(o.lr_schedule, o.sgd.lr, spe, lr_schedule_span(o));
  const io::StMetadata meta = run_metadata(o, spe);

  namespace fs = std::filesystem;
  const bool files = !o.out_dir.empty();
  const std::string last_path = files ? (fs::path(o.out_dir) / "last.safetensors").string() : "";
  const std::string log_path = files ? (fs::path(o.out_dir) / "train_log.json").string() : "";
  if (files) fs::create_directories(o.out_dir);

  TrainResult res;
  res.total_steps = o.epochs * spe;
  int64_t step = 0;
  // The epoch's loss and accuracy so far. Saved with mid-epoch checkpoints, so a resumed
  // epoch reports the same numbers as an uninterrupted one.
  struct {
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
  } running;
  if (o.resume) {
    LETHE_CHECK(files, "--resume needs an output folder to resume from");
    LETHE_CHECK(fs::exists(last_path), "cannot resume: ", last_path,
                " does not exist (start the run without --resume)");
    io::StMetadata expect = meta;  // same model and the same run-defining options
    expect.erase("lethe_version");
    Checkpoint ck = load_checkpoint(last_path, model, expect);
    step = std::stoll(ck.metadata.at("step"));
    LETHE_CHECK(step >= 0 && step <= res.total_steps, last_path, " holds step ", step,
                " outside this run's 0..", res.total_steps);
    for (size_t i = 0; i < named.size(); ++i) {
      auto it = ck.tensors.find("optim." + named[i].first + ".momentum_buffer");
      if (it != ck.tensors.end() && opt.momentum_buffers()[i].defined())
        opt.momentum_buffers()[i].copy_(it->second);
    }
    opt.set_steps_taken(step);
    res.history = read_log(log_path, step / spe);
    if (step % spe != 0) {  // mid-epoch: the epoch's running loss and accuracy so far
      const auto& md = ck.metadata;
      LETHE_CHECK(md.count("epoch_loss_sum") && md.count("epoch_correct") && md.count("epoch_seen"),
                  last_path, " was saved mid-epoch without the epoch's running statistics");
      running.loss_sum = std::strtod(md.at("epoch_loss_sum").c_str(), nullptr);
      running.correct = std::stoll(md.at("epoch_correct"));
      running.seen = std::stoll(md.at("epoch_seen"));
    }
    if (!o.quiet)
      std::fprintf(stderr, "[train] resuming %s at step %lld of %lld (epoch %lld)\n",
                   last_path.c_str(), static_cast<long long>(step),
                   static_cast<long long>(res.total_steps), static_cast<long long>(step / spe + 1));
  }
  res.start_step = step;

  auto save_last = [&](int64_t epochs_done) {
    if (!files) return;
    io::StMetadata m = meta;
    m["step"] = std::to_string(step);
    m["epoch"] = std::to_string(epochs_done);
    m["kind"] = "training";
    if (step % spe != 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%a", running.loss_sum);  // hex float: exact round trip
      m["epoch_loss_sum"] = buf;
      m["epoch_correct"] = std::to_string(running.correct);
      m["epoch_seen"] = std::to_string(running.seen);
    }
    save_training_checkpoint(last_path, model, &opt, masks, m);
  };
  double best_val = -1;
  for (const auto& r : res.history) best_val = std::max(best_val, r.val_acc);

  const auto t_run = Clock::now();
  const int64_t log_every = std::max<int64_t>(1, spe / 10);
  for (int64_t epoch = step / spe; epoch < o.epochs; ++epoch) {
    model.train();
    loader.start_epoch(epoch, step % spe);
    const auto t_epoch = Clock::now();
    if (step % spe == 0) running = {};
    int64_t seen_here = 0;  // images this process trained on this epoch (for images/s)
    data::Batch b;
    while (loader.next(&b)) {
      to_device(b, dev);
      opt.set_lr(schedule->lr(step + o.lr_step_offset));
      const Tensor logits = model(b.images);
      const Tensor loss = o.loss ? o.loss(logits, b)
                                 : ops::cross_entropy(logits, b.labels, ops::Reduction::Mean,
                                                      o.label_smoothing);
      const double lv = loss.item();
      LETHE_CHECK(std::isfinite(lv), "the training loss became ", lv, " at epoch ", epoch + 1,
                  " step ", step + 1, " (global); stopping. The last good checkpoint is ",
                  files ? last_path : std::string("not saved (no output folder)"),
                  "; lower the learning rate or check the data");
      opt.zero_grad();
      loss.backward();
      opt.step();
      ++step;
      ++res.steps_run;
      running.loss_sum += lv * static_cast<double>(b.size());
      running.correct += count_correct(logits, b.labels);
      running.seen += b.size();
      seen_here += b.size();

      const double el = seconds_since(t_epoch);
      if (!o.quiet && (step % log_every == 0 || step % spe == 0)) {
        const double ips = static_cast<double>(seen_here) / std::max(el, 1e-9);
        const double run_el = seconds_since(t_run);
        const double eta = run_el / static_cast<double>(res.steps_run) *
                           static_cast<double>(res.total_steps - step);
        std::fprintf(stderr,
                     "[train] epoch %lld/%lld step %lld/%lld loss %.4f acc %.1f%% lr %.4g "
                     "%.0f img/s ETA %s\n",
                     static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                     static_cast<long long>(step - epoch * spe), static_cast<long long>(spe),
                     running.loss_sum / static_cast<double>(running.seen),
                     100.0 * static_cast<double>(running.correct) /
                         static_cast<double>(running.seen),
                     opt.lr(), ips, format_eta(eta).c_str());
      }
      if (o.save_every > 0 && step % o.save_every == 0 && step % spe != 0) save_last(epoch);
      if (o.stop_at_step > 0 && step >= o.stop_at_step && step % spe != 0) {
        save_last(epoch);
        res.seconds = seconds_since(t_run);
        return res;
      }
    }
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.seconds = seconds_since(t_epoch);
    const double seen = static_cast<double>(running.seen);
    rec.loss = running.seen ? running.loss_sum / seen : 0;
    rec.train_acc = running.seen ? 100.0 * static_cast<double>(running.correct) / seen : 0;
    rec.images_per_s = static_cast<double>(seen_here) / std::max(rec.seconds, 1e-9);
    rec.lr = opt.lr();
    if (!val_indices.empty()) rec.val_acc = evaluate(model, val_data, val_indices).accuracy;
    res.history.push_back(rec);
    if (!o.quiet)
      std::fprintf(stderr,
                   "[train] epoch %lld/%lld done: loss %.4f train acc %.2f%% val acc %.2f%% "
                   "%.1f s (%.0f img/s)\n",
                   static_cast<long long>(rec.epoch), static_cast<long long>(o.epochs), rec.loss,
                   rec.train_acc, rec.val_acc, rec.seconds, rec.images_per_s);
    if (files) {
      // last.safetensors is the commit point of an epoch, so it is written after everything
      // else: a run killed in between redoes the epoch on --resume and rewrites the same log,
      // best and snapshot files (read_log drops log records past the checkpoint's epoch).
      write_log(log_path, res.history);
      io::StMetadata m = meta;
      m["step"] = std::to_string(step);
      m["epoch"] = std::to_string(epoch + 1);
      if (rec.val_acc > best_val) {
        best_val = rec.val_acc;
        m["kind"] = "best";
        m["val_acc"] = std::to_string(rec.val_acc);
        save_training_checkpoint((fs::path(o.out_dir) / "best.safetensors").string(), model,
                                 nullptr, masks, m);
      }
      if (o.snapshot_epoch > 0 && epoch + 1 == o.snapshot_epoch) {
        m["kind"] = "snapshot";
        save_training_checkpoint(
            (fs::path(o.out_dir) / ("epoch" + std::to_string(o.snapshot_epoch) + ".safetensors"))
                .string(),
            model, &opt, masks, m);
      }
      save_last(epoch + 1);
    }
    if (o.stop_at_step > 0 && step >= o.stop_at_step && epoch + 1 < o.epochs) {
      res.seconds = seconds_since(t_run);
      return res;
    }
  }
  res.finished = true;
  res.seconds = seconds_since(t_run);
  return res;
}

}  // namespace lethe::train
