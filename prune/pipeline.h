// The pruning pipelines of SPEC section 4 as resumable stages on disk: what `lethe prune` runs.
//
//   OMP      dense training (snapshot after `rewind_epoch` epochs) -> one global magnitude
//            prune of the last dense weights to `rate` -> rewind -> retrain.
//   IMP      dense -> rounds s = 1..R of {prune 20% of the remaining conv weights (by the
//            previous round's last weights), rewind, retrain}; round s keeps 0.8^s, round R
//            prunes to exactly `rate` (select.h imp_schedule).
//   random   as OMP with a random global mask (the control, as the reference's random_prune in
//            main_imp.py); it needs only the dense snapshot, so without --dense the dense run
//            stops after `rewind_epoch` epochs.
//   synflow  SynFlow mask at initialisation (synflow.h) -> normal training, no rewinding.
//
// Rewinding (OMP, IMP, random): the weights AND the BN state (running mean/var, counter) come
// from the dense run's epoch<rewind_epoch>.safetensors; the optimizer is new (momentum zero);
// the LR schedule is advanced by rewind_epoch epochs: global step s of the retraining uses
// schedule(s + rewind_epoch * steps_per_epoch). "Train the full epoch count again" is read as
// the reference (OPTML-Group/Unlearn-Sparse main_imp.py) runs it: the retraining is `epochs`
// epochs long, as long as the dense run, with the schedule object of an `epochs`-long run
// stepped rewind_epoch times first. So multistep:91,136 decays after retraining epochs 83 and
// 128, and the last rewind_epoch epochs run past the schedule's end at its final value (cosine /
// one-cycle hold their last LR; lr_schedule.h). The retraining is therefore rewind_epoch epochs
// longer than "the rest of the dense schedule", exactly as the reference does. A retraining
// shorter than the dense run (a CPU-scale recipe's prune-epochs, or --epochs below the --dense
// run's) runs the dense schedule cut to rewind_epoch + epochs epochs (rewound_schedule_epochs),
// so it ends where its schedule ends rather than at a high LR or, as a schedule built over the
// retraining's own epochs would, at the floor for its last rewind_epoch epochs.
//
// Folders (all under `out_dir`):
//   dense/                the dense run (unless `dense_dir` names an existing one): last, best,
//                         epoch<rewind_epoch>.safetensors, train_log.json
//   round<s>/             IMP rounds s < R: masks.safetensors, last, best, train_log.json
//   ./                    the final stage (OMP, random, SynFlow, IMP round R): masks.safetensors,
//                         last.safetensors, best.safetensors, train_log.json
// Every checkpoint of a pruned stage carries its masks ("<param>.mask") and the metadata
// prune_method, prune_round, sparsity, rewind_epoch (+ imp_round_rate, prune_seed or
// synflow_iterations / synflow_precision), and in the final stage prune_rate and
// prune_rounds. IMP rounds before the last do not record the final rate: they are the same for
// every target, so the rounds of one IMP run may be copied into another's folder and reused
// with `resume`. With `resume`, finished stages are skipped, a stage's masks.safetensors is
// reused (the mask of a round is computed once), and an interrupted stage continues from its
// last.safetensors bit for bit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/trainer.h"
#include "prune/mask.h"

namespace lethe::prune {

/// The methods run_pipeline knows, in the order messages list them.
const std::vector<std::string>& known_methods();

struct PipelineOptions {
  std::string method = "omp";  ///< omp | imp | synflow | random
  double rate = 0.95;          ///< fraction of conv weights pruned at the end
  int64_t rewind_epoch = 8;    ///< the dense snapshot OMP / IMP / random rewind to
  double imp_round_rate = 0.2;
  int synflow_iterations = 100;
  bool synflow_float64 = true;
  uint64_t seed = 1;           ///< model init (stream 0) and random pruning (stream 5)
  std::string out_dir;         ///< required
  Device device = Device::cpu();  ///< where every stage's model trains (init on the host)
  std::string dense_dir;       ///< an existing dense run; "" trains one into out_dir/dense
  bool resume = false;
  /// Train at most this many stages (dense, rounds) in this call, then return unfinished
  /// (continue with resume); 0: all.
  int64_t max_stages = 0;
  /// The training recipe of every stage (epochs, batch, SGD, schedule, data seed, quiet,
  /// save_every, stop_at_step, metadata). out_dir, resume, snapshot_epoch and lr_step_offset
  /// are set per stage.
  train::TrainOptions train;
};

/// One pruning round (OMP, random and SynFlow have one).
struct RoundRecord {
  int64_t round = 0;    ///< 1-based
  int64_t pruned = 0;   ///< conv weights pruned after this round
  int64_t total = 0;    ///< conv weights in all
  std::string dir;      ///< where its checkpoints are
  double train_seconds = 0;  ///< wall time of its training in this call (0 when skipped)
  double mask_seconds = 0;   ///< time to compute its mask in this call (0 when reused)
};

struct PipelineResult {
  bool finished = false;                ///< false: stopped (max_stages, stop_at_step); resume
  std::shared_ptr<nn::Module> model;    ///< the final model (last weights, masks applied)
  MaskSet masks;                        ///< its masks
  std::vector<RoundRecord> rounds;      ///< every round reached so far
  int64_t rounds_planned = 0;           ///< pruning rounds of the whole run (0: not known yet)
  train::TrainResult final_training;    ///< the final stage's fit (history read back if skipped)
  std::string final_dir;                ///< out_dir
  std::string dense_dir;                ///< the dense run used (rewinding methods)
  double dense_seconds = 0;             ///< dense training time in this call (0 if reused)
};

/// Checks the options alone (method, rate, rewind epoch, the dense run's files), so a command
/// can fail before it loads any data. run_pipeline calls it too.
void check_options(const PipelineOptions& options);

/// Runs `options.method` for a model of `spec` on `indices` of `train_data` (validating on
/// `val_indices` of `val_data` after each epoch when non-empty). Throws lethe::Error with one
/// sentence on bad options, a missing or mismatched dense run, or a mask file that does not fit.
PipelineResult run_pipeline(const models::ModelSpec& spec, const data::Dataset& train_data,
                            const std::vector<int64_t>& indices, const data::Dataset& val_data,
                            const std::vector<int64_t>& val_indices,
                            const PipelineOptions& options);

/// Steps per epoch of the training loader for n images (train::fit's count).
int64_t steps_per_epoch(int64_t n, int64_t batch_size, bool drop_last);

/// Rewinds `model` to a dense snapshot: loads every parameter and buffer (weights, BN running
/// statistics and counters) from `snapshot_path`, checked against `expect` (model metadata).
/// Returns the snapshot (its metadata holds the epoch and step it was taken at).
Checkpoint rewind_to_snapshot(nn::Module& model, const std::string& snapshot_path,
                              const io::StMetadata& expect);

/// The retraining options after rewinding: `base` with a fresh optimizer (fit always builds
/// one) and lr_step_offset = rewind_epoch * steps_per_epoch; no snapshot of its own. The LR
/// schedule is the dense run's, rewound: unless base sets schedule_epochs, it spans
/// rewound_schedule_epochs(dense_epochs, rewind_epoch, base.epochs) (dense_epochs 0: the
/// retraining's own epochs, SPEC section 4's "train the full epoch count again").
train::TrainOptions rewind_options(const train::TrainOptions& base, int64_t rewind_epoch,
                                   int64_t steps_per_epoch, int64_t dense_epochs = 0);

/// Epochs the LR schedule of a retraining of `retrain_epochs` after rewinding to epoch
/// `rewind_epoch` spans: the dense run's `dense_epochs`, cut to rewind_epoch + retrain_epochs
/// when the retraining would stop before the schedule ends. SPEC's full-length retraining
/// (retrain_epochs = dense_epochs) keeps the dense schedule; a shortened one (the pipeline's
/// prune-epochs) still ends where its schedule ends instead of stopping at a high LR.
int64_t rewound_schedule_epochs(int64_t dense_epochs, int64_t rewind_epoch,
                                int64_t retrain_epochs);

/// The epoch count of the run that wrote `snapshot` (its "epochs" metadata), or 0 when it
/// has none.
int64_t snapshot_run_epochs(const Checkpoint& snapshot);

}  // namespace lethe::prune
