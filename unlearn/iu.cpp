// IU: influence unlearning with the reference's WoodFisher recursion.
#include "unlearn/iu.h"

#include <omp.h>

#include <cstdio>

#include "data/loader.h"
#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/trainer.h"

namespace lethe::unlearn {

namespace {

int64_t parameter_count(const std::vector<Tensor>& params) {
  int64_t n = 0;
  for (const Tensor& p : params) n += p.numel();
  return n;
}

/// Copies every parameter's .grad into `out` (flattened, named_parameters order; 0 where a
/// parameter got no gradient).
void gather_gradient(const std::vector<Tensor>& params, std::vector<double>& out,
                     std::vector<float>& scratch) {
  out.assign(static_cast<size_t>(parameter_count(params)), 0.0);
  size_t off = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (g.defined()) {
      const float* gv = host_ptr(g, scratch);
      for (int64_t j = 0; j < p.numel(); ++j) out[off + static_cast<size_t>(j)] = gv[j];
    }
    off += static_cast<size_t>(p.numel());
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  const int64_t n = static_cast<int64_t>(a.size());
  const double* x = a.data();
  const double* y = b.data();
  // Per-thread partial sums over static chunks, combined in thread order: the same result
  // for the same thread count, run after run (design.md); an OpenMP reduction clause would
  // combine in an unspecified order.
  const int threads = n > 65536 ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(threads), 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
    double s = 0;
    for (int64_t j = lo; j < hi; ++j) s += x[j] * y[j];
    partial[static_cast<size_t>(t)] = s;
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

/// y -= c * x
void axpy(std::vector<double>& y, double c, const std::vector<double>& x) {
  const int64_t n = static_cast<int64_t>(y.size());
  double* yp = y.data();
  const double* xp = x.data();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t j = 0; j < n; ++j) yp[j] -= c * xp[j];
}

/// Restores the model's train/eval mode and drops gradients when the scope ends.
class EvalScope {
 public:
  explicit EvalScope(nn::Module& m) : model_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalScope() {
    model_.zero_grad();
    model_.train(was_training_);
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  nn::Module& model_;
  bool was_training_;
};

}  // namespace

std::vector<double> summed_gradient(nn::Module& model, const data::Dataset& train,
                                    const std::vector<int64_t>& indices, int64_t batch_size) {
  LETHE_CHECK(batch_size > 0, "IU needs a batch size > 0, got ", batch_size);
  const EvalScope scope(model);
  const std::vector<Tensor> params = model.parameters();
  model.zero_grad();
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  data::BatchLoader loader(train, indices, lo);
  loader.start_epoch(0);
  data::Batch b;
  const Device dev = train::model_device(model);
  // The leaves' .grad accumulate the per-batch sums across backward calls.
  while (loader.next(&b)) {
    train::to_device(b, dev);
    ops::cross_entropy(model(b.images), b.labels, ops::Reduction::Sum).backward();
  }
  std::vector<double> out;
  std::vector<float> scratch;
  gather_gradient(params, out, scratch);
  return out;
}

std::vector<double> iu_direction(nn::Module& model, const data::Dataset& train,
                                 const ForgetSet& fs, int64_t batch_size) {
  LETHE_CHECK(!fs.forget.empty() && !fs.retain.empty(), "IU needs non-empty forget and retain sets");
  const double nf = static_cast<double>(fs.forget.size());
  const double nr = static_cast<double>(fs.retain.size());
  const double n = nf + nr;
  std::vector<double> v = summed_gradient(model, train, fs.forget, batch_size);
  const std::vector<double> r = summed_gradient(model, train, fs.retain, batch_size);
  for (size_t j = 0; j < v.size(); ++j) v[j] = v[j] / n - r[j] * nf / (n * nr);
  return v;
}

std::vector<double> woodfisher(nn::Module& model, const data::Dataset& train,
                               const std::vector<int64_t>& retain, std::vector<double> v,
                               int64_t n, bool quiet) {
  LETHE_CHECK(n > 0, "the WoodFisher N must be > 0, got ", n);
  const EvalScope scope(model);
  const std::vector<Tensor> params = model.parameters();
  std::vector<double> k = std::move(v), o, g;
  std::vector<float> scratch;
  const double N = static_cast<double>(n);
  const int64_t steps = std::min<int64_t>(n + 2, static_cast<int64_t>(retain.size()));
  data::LoaderOptions lo;
  lo.batch_size = 1;
  data::BatchLoader loader(train, std::vector<int64_t>(retain.begin(), retain.begin() + steps), lo);
  loader.start_epoch(0);
  data::Batch b;
  const Device dev = train::model_device(model);
  for (int64_t i = 0; loader.next(&b); ++i) {
    train::to_device(b, dev);
    model.zero_grad();
    ops::cross_entropy(model(b.images), b.labels).backward();
    gather_gradient(params, g, scratch);
    if (i == 0) {
      o = g;
    } else {
      const double t = dot(o, g);
      axpy(k, dot(k, g) / (N + t), o);
      axpy(o, t / (N + t), o);
    }
    if (!quiet && ((i + 1) % 100 == 0 || i + 1 == steps))
      std::fprintf(stderr, "[iu] WoodFisher: sample %lld/%lld\n", static_cast<long long>(i + 1),
                   static_cast<long long>(steps));
  }
  return k;
}

void apply_perturbation(nn::Module& model, const std::vector<double>& k, double alpha) {
  std::vector<Tensor> params = model.parameters();
  LETHE_CHECK(static_cast<int64_t>(k.size()) == parameter_count(params),
              "apply_perturbation: ", k.size(), " values for ", parameter_count(params),
              " parameters");
  size_t off = 0;
  for (Tensor& p : params) {
    std::vector<float> theta = host_values(p);
    for (size_t j = 0; j < theta.size(); ++j)
      theta[j] = static_cast<float>(static_cast<double>(theta[j]) + alpha * k[off + j]);
    set_host_values(p, theta);
    off += theta.size();
  }
}

MethodResult influence_unlearning(nn::Module& model, const data::Dataset& train,
                                  const ForgetSet& fs, const prune::MaskSet& masks,
                                  const IuOptions& o) {
  const Stopwatch clock;
  MethodResult result;
  result.method = "iu";
  install_masks(model, masks);
  std::vector<double> v = iu_direction(model, train, fs, o.batch_size);
  if (!o.quiet) std::fprintf(stderr, "[iu] gradients of the forget and retain sets done\n");
  const std::vector<double> k = woodfisher(model, train, fs.retain, std::move(v), o.woodfisher_n,
                                           o.quiet);
  apply_perturbation(model, k, o.alpha);
  install_masks(model, masks);  // pruned weights stay exactly 0
  result.samples = static_cast<int64_t>(fs.forget.size() + fs.retain.size()) +
                   std::min<int64_t>(o.woodfisher_n + 2, static_cast<int64_t>(fs.retain.size()));
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
