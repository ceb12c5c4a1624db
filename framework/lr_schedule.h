// Learning-rate schedules as pure functions of the optimizer step, with PyTorch's formulas
// (torch.optim.lr_scheduler), so a lethe run and the paper's PyTorch recipe (SPEC §3: lr 0.1,
// x0.1 after epochs 91 and 136) follow the same curve.
//
// A schedule is stateless: lr(step) with step = number of optimizer steps already taken
// (0 for the first batch). That makes resuming from a checkpoint trivial (the step is in the
// metadata) and lets tests check any step directly. Epoch-based schedules (MultiStep) know
// steps_per_epoch and change only at epoch boundaries, as PyTorch's scheduler.step() called
// once per epoch does; Cosine, OneCycle and LinearWarmup change every step, as PyTorch's
// schedulers stepped once per batch do.
//
// Spec strings for make_lr_schedule (configs and the command line):
//   constant                    base_lr throughout
//   multistep:91,136            base_lr * 0.1^(milestones <= epoch), milestones in epochs
//   cosine                      cosine annealing from base_lr to 0 over all steps
//   onecycle                    OneCycleLR with max_lr = base_lr over all steps
//   warmup:<E>[@<f>]+<inner>    linear warmup over E epochs from f*lr (default f = 1/3, the
//                               default start_factor of PyTorch's LinearLR), then <inner>
//                               built for the remaining epochs (SequentialLR semantics).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lethe {

/// A learning rate as a function of the optimizer step.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  /// The learning rate for optimizer step `step` (0-based, >= 0).
  virtual double lr(int64_t step) const = 0;
  /// A one-line description with every parameter, for the run log.
  virtual std::string describe() const = 0;
};

/// lr = base_lr at every step (torch ConstantLR with factor 1, or no scheduler).
class ConstantLr : public LrSchedule {
 public:
  explicit ConstantLr(double lr);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double lr_;
};

/// torch MultiStepLR stepped per epoch: lr = base_lr * gamma^(number of milestones <= epoch),
/// epoch = step / steps_per_epoch. Milestones are epochs, non-decreasing (a repeated milestone
/// applies gamma twice, as in PyTorch).
class MultiStepLr : public LrSchedule {
 public:
  MultiStepLr(double base_lr, std::vector<int64_t> milestones, double gamma,
              int64_t steps_per_epoch);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double base_lr_, gamma_;
  std::vector<int64_t> milestones_;
  int64_t steps_per_epoch_;
};

/// torch CosineAnnealingLR (closed form) stepped per batch:
/// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T)) / 2 with t = min(step, T).
/// Past T it stays at eta_min instead of PyTorch's rising second half-period.
class CosineLr : public LrSchedule {
 public:
  CosineLr(double base_lr, int64_t total_steps, double eta_min = 0.0);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double base_lr_, eta_min_;
  int64_t total_steps_;
};

/// Linear warmup in front of any schedule, with torch SequentialLR([LinearLR(start_factor,
/// total_iters=W), inner], milestones=[W]) semantics: for step < W,
/// lr = inner.lr(0) * (start_factor + (1 - start_factor) * step / W); from step W on,
/// lr = inner.lr(step - W), i.e. the inner schedule starts its own clock after the warmup.
class LinearWarmupLr : public LrSchedule {
 public:
  LinearWarmupLr(std::unique_ptr<LrSchedule> inner, int64_t warmup_steps, double start_factor);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  std::unique_ptr<LrSchedule> inner_;
  int64_t warmup_steps_;
  double start_factor_;
};

/// torch OneCycleLR's learning rate (anneal_strategy "cos"), stepped per batch:
/// initial = max_lr / div_factor, min = initial / final_div_factor. Two phases end at steps
/// pct_start * total - 1 (initial -> max) and total - 1 (max -> min); with three_phase the
/// phases end at pct_start * total - 1 (initial -> max), 2 * pct_start * total - 2
/// (max -> initial) and total - 1 (initial -> min). Within a phase
/// lr = end + (start - end) * (1 + cos(pi * pct)) / 2, pct = (step - phase start) / length.
/// Steps past total - 1 hold the last value (PyTorch extrapolates one step, then raises).
class OneCycleLr : public LrSchedule {
 public:
  OneCycleLr(double max_lr, int64_t total_steps, double pct_start = 0.3,
             double div_factor = 25.0, double final_div_factor = 1e4, bool three_phase = false);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  double max_lr_, pct_start_, div_factor_, final_div_factor_;
  int64_t total_steps_;
  bool three_phase_;
  std::vector<Phase> phases_;
};

/// Builds a schedule from a spec string (grammar in the header comment) for a run of `epochs`
/// epochs of `steps_per_epoch` optimizer steps. Throws lethe::Error with one sentence listing
/// the valid forms on an unknown or malformed spec.
std::unique_ptr<LrSchedule> make_lr_schedule(const std::string& spec, double base_lr,
                                             int64_t steps_per_epoch, int64_t epochs);

}  // namespace lethe
