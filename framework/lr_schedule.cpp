// LR schedules (see lr_schedule.h). Each formula is written in the same operation order as
// torch.optim.lr_scheduler's closed forms so values agree with PyTorch to the last bit where
// the libm agrees.
#include "framework/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "framework/parse.h"
#include "kernels/check.h"

namespace lethe {
namespace {

constexpr const char* kValidSpecs =
    "constant, multistep:<epoch>,<epoch>,..., cosine, onecycle, "
    "warmup:<epochs>[@<start_factor>]+<schedule>";

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

void check_step(int64_t step) {
  LETHE_CHECK(step >= 0, "LrSchedule::lr: step=", step, " must be >= 0.");
}

[[noreturn]] void bad_spec(const std::string& spec, const std::string& why) {
  detail::fail(__FILE__, __LINE__, "learning-rate schedule '", spec, "' ", why,
               "; valid forms are ", kValidSpecs, ".");
}

}  // namespace

// ---- Constant ------------------------------------------------------------------------------

ConstantLr::ConstantLr(double lr) : lr_(lr) {
  LETHE_CHECK(std::isfinite(lr) && lr >= 0.0, "ConstantLr: lr=", lr, " must be finite and >= 0.");
}

double ConstantLr::lr(int64_t step) const {
  check_step(step);
  return lr_;
}

std::string ConstantLr::describe() const { return "constant(lr=" + fmt(lr_) + ")"; }

// ---- MultiStep -----------------------------------------------------------------------------

MultiStepLr::MultiStepLr(double base_lr, std::vector<int64_t> milestones, double gamma,
                         int64_t steps_per_epoch)
    : base_lr_(base_lr), gamma_(gamma), milestones_(std::move(milestones)),
      steps_per_epoch_(steps_per_epoch) {
  LETHE_CHECK(std::isfinite(base_lr) && base_lr >= 0.0, "MultiStepLr: base_lr=", base_lr,
              " must be finite and >= 0.");
  LETHE_CHECK(std::isfinite(gamma) && gamma > 0.0, "MultiStepLr: gamma=", gamma,
              " must be finite and > 0.");
  LETHE_CHECK(steps_per_epoch > 0, "MultiStepLr: steps_per_epoch=", steps_per_epoch,
              " must be > 0.");
  LETHE_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()) &&
                  (milestones_.empty() || milestones_.front() >= 0),
              "MultiStepLr: milestones must be non-negative epochs in non-decreasing order.");
}

double MultiStepLr::lr(int64_t step) const {
  check_step(step);
  const int64_t epoch = step / steps_per_epoch_;
  // bisect_right: milestones <= epoch have already applied their gamma.
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), epoch) -
                      milestones_.begin();
  return base_lr_ * std::pow(gamma_, static_cast<double>(passed));
}

std::string MultiStepLr::describe() const {
  std::ostringstream os;
  os << "multistep(base_lr=" << fmt(base_lr_) << ", milestones=[";
  for (size_t i = 0; i < milestones_.size(); ++i) os << (i ? "," : "") << milestones_[i];
  os << "], gamma=" << fmt(gamma_) << ", steps_per_epoch=" << steps_per_epoch_ << ")";
  return os.str();
}

// ---- Cosine --------------------------------------------------------------------------------

CosineLr::CosineLr(double base_lr, int64_t total_steps, double eta_min)
    : base_lr_(base_lr), eta_min_(eta_min), total_steps_(total_steps) {
  LETHE_CHECK(std::isfinite(base_lr) && std::isfinite(eta_min), "CosineLr: base_lr=", base_lr,
              " and eta_min=", eta_min, " must be finite.");
  LETHE_CHECK(total_steps > 0, "CosineLr: total_steps=", total_steps, " must be > 0.");
}

double CosineLr::lr(int64_t step) const {
  check_step(step);
  const double t = static_cast<double>(std::min(step, total_steps_));
  return eta_min_ + (base_lr_ - eta_min_) *
                        (1.0 + std::cos(std::numbers::pi * t / static_cast<double>(total_steps_))) /
                        2.0;
}

std::string CosineLr::describe() const {
  return "cosine(base_lr=" + fmt(base_lr_) + ", total_steps=" + std::to_string(total_steps_) +
         ", eta_min=" + fmt(eta_min_) + ")";
}

// ---- LinearWarmup --------------------------------------------------------------------------

LinearWarmupLr::LinearWarmupLr(std::unique_ptr<LrSchedule> inner, int64_t warmup_steps,
                               double start_factor)
    : inner_(std::move(inner)), warmup_steps_(warmup_steps), start_factor_(start_factor) {
  LETHE_CHECK(inner_ != nullptr, "LinearWarmupLr: the inner schedule is null.");
  LETHE_CHECK(warmup_steps >= 0, "LinearWarmupLr: warmup_steps=", warmup_steps,
              " must be >= 0.");
  LETHE_CHECK(start_factor > 0.0 && start_factor <= 1.0, "LinearWarmupLr: start_factor=",
              start_factor, " must lie in (0, 1], as for torch LinearLR.");
}

double LinearWarmupLr::lr(int64_t step) const {
  check_step(step);
  if (step >= warmup_steps_) return inner_->lr(step - warmup_steps_);
  // LinearLR's closed form: start + (end - start) * t / T, with end_factor = 1.
  return inner_->lr(0) * (start_factor_ + (1.0 - start_factor_) * static_cast<double>(step) /
                                              static_cast<double>(warmup_steps_));
}

std::string LinearWarmupLr::describe() const {
  return "warmup(steps=" + std::to_string(warmup_steps_) + ", start_factor=" +
         fmt(start_factor_) + ") then " + inner_->describe();
}

// ---- OneCycle ------------------------------------------------------------------------------

OneCycleLr::OneCycleLr(double max_lr, int64_t total_steps, double pct_start, double div_factor,
                       double final_div_factor, bool three_phase)
    : max_lr_(max_lr), pct_start_(pct_start), div_factor_(div_factor),
      final_div_factor_(final_div_factor), total_steps_(total_steps), three_phase_(three_phase) {
  LETHE_CHECK(std::isfinite(max_lr) && max_lr >= 0.0, "OneCycleLr: max_lr=", max_lr,
              " must be finite and >= 0.");
  LETHE_CHECK(total_steps > 0, "OneCycleLr: total_steps=", total_steps, " must be > 0.");
  LETHE_CHECK(pct_start > 0.0 && pct_start < 1.0, "OneCycleLr: pct_start=", pct_start,
              " must lie in (0, 1).");
  LETHE_CHECK(div_factor > 0.0 && final_div_factor > 0.0, "OneCycleLr: div_factor=",
              div_factor, " and final_div_factor=", final_div_factor, " must be > 0.");
  // Exactly torch's phase table, float end steps included (0.3 * 100 - 1 = 29.000000000000004).
  const double initial_lr = max_lr / div_factor;
  const double min_lr = initial_lr / final_div_factor;
  const double total = static_cast<double>(total_steps);
  if (three_phase) {
    phases_ = {{pct_start * total - 1.0, initial_lr, max_lr},
               {2.0 * pct_start * total - 2.0, max_lr, initial_lr},
               {total - 1.0, initial_lr, min_lr}};
  } else {
    phases_ = {{pct_start * total - 1.0, initial_lr, max_lr}, {total - 1.0, max_lr, min_lr}};
  }
}

double OneCycleLr::lr(int64_t step) const {
  check_step(step);
  const double s = static_cast<double>(std::min(step, total_steps_ - 1));
  double start_step = 0.0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& p = phases_[i];
    if (s <= p.end_step || i + 1 == phases_.size()) {
      // A phase of zero length (total_steps == 1) would divide 0 by 0; it is at its end.
      const double len = p.end_step - start_step;
      const double pct = len > 0.0 ? (s - start_step) / len : 1.0;
      // torch's _annealing_cos.
      const double cos_out = std::cos(std::numbers::pi * pct) + 1.0;
      return p.end_lr + (p.start_lr - p.end_lr) / 2.0 * cos_out;
    }
    start_step = p.end_step;
  }
  return phases_.back().end_lr;  // unreachable: the last phase always matches
}

std::string OneCycleLr::describe() const {
  return "onecycle(max_lr=" + fmt(max_lr_) + ", total_steps=" + std::to_string(total_steps_) +
         ", pct_start=" + fmt(pct_start_) + ", div_factor=" + fmt(div_factor_) +
         ", final_div_factor=" + fmt(final_div_factor_) +
         ", three_phase=" + (three_phase_ ? "true" : "false") + ")";
}

// ---- factory -------------------------------------------------------------------------------

std::unique_ptr<LrSchedule> make_lr_schedule(const std::string& spec, double base_lr,
                                             int64_t steps_per_epoch, int64_t epochs) {
  LETHE_CHECK(steps_per_epoch > 0 && epochs > 0, "learning-rate schedule '", spec,
              "': steps_per_epoch=", steps_per_epoch, " and epochs=", epochs,
              " must both be > 0.");
  const int64_t total = steps_per_epoch * epochs;
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string args = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const bool has_args = colon != std::string::npos;

  if (name == "constant" && !has_args) return std::make_unique<ConstantLr>(base_lr);
  if (name == "cosine" && !has_args) return std::make_unique<CosineLr>(base_lr, total, 0.0);
  if (name == "onecycle" && !has_args) return std::make_unique<OneCycleLr>(base_lr, total);
  if (name == "multistep") {
    std::vector<int64_t> milestones;
    std::string rest = args;
    while (has_args) {
      const size_t comma = rest.find(',');
      int64_t e = 0;
      if (!parse_int(rest.substr(0, comma), &e) || e < 0)
        bad_spec(spec, "has a milestone that is not a non-negative whole number of epochs");
      if (!milestones.empty() && e < milestones.back())
        bad_spec(spec, "has milestones out of increasing order");
      milestones.push_back(e);
      if (comma == std::string::npos) break;
      rest = rest.substr(comma + 1);
    }
    if (milestones.empty()) bad_spec(spec, "lists no milestone epochs");
    return std::make_unique<MultiStepLr>(base_lr, std::move(milestones), 0.1, steps_per_epoch);
  }
  if (name == "warmup" && has_args) {
    const size_t plus = args.find('+');
    if (plus == std::string::npos) bad_spec(spec, "has no '+<schedule>' after the warmup");
    const std::string head = args.substr(0, plus);
    const size_t at = head.find('@');
    int64_t warm_epochs = 0;
    double start_factor = 1.0 / 3.0;
    if (!parse_int(head.substr(0, at), &warm_epochs) || warm_epochs < 0 ||
        warm_epochs >= epochs)
      bad_spec(spec, "needs a warmup of 0 to " + std::to_string(epochs - 1) + " whole epochs");
    if (at != std::string::npos &&
        (!parse_double(head.substr(at + 1), &start_factor) || !(start_factor > 0.0) ||
         start_factor > 1.0))
      bad_spec(spec, "has a start factor that is not a number in (0, 1]");
    // SequentialLR semantics: the inner schedule runs on its own clock after the warmup, so
    // it is built for the epochs that remain.
    auto inner =
        make_lr_schedule(args.substr(plus + 1), base_lr, steps_per_epoch, epochs - warm_epochs);
    return std::make_unique<LinearWarmupLr>(std::move(inner), warm_epochs * steps_per_epoch,
                                            start_factor);
  }
  bad_spec(spec, "is not recognised");
}

}  // namespace lethe
