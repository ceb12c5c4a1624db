// FF: Fisher forgetting (the reference's batch-gradient Fisher, noise scaled by it).
#include "unlearn/ff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/loader.h"
#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/trainer.h"
#include "framework/rng.h"

namespace lethe::unlearn {

namespace {
constexpr uint64_t kNoiseStream = 4;
}

std::vector<std::vector<double>> ff_fisher(nn::Module& model, const data::Dataset& train,
                                           const std::vector<int64_t>& retain,
                                           int64_t num_classes, int64_t batch_size, bool quiet) {
  LETHE_CHECK(!retain.empty(), "FF needs a non-empty retain set");
  LETHE_CHECK(batch_size > 0, "FF needs a batch size > 0, got ", batch_size);
  const bool was_training = model.is_training();
  model.eval();
  const std::vector<Tensor> params = model.parameters();
  std::vector<std::vector<double>> fisher(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    fisher[i].assign(static_cast<size_t>(params[i].numel()), 0.0);

  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  data::BatchLoader loader(train, retain, lo);
  loader.start_epoch(0);
  const int64_t batches = loader.num_batches();
  data::Batch b;
  std::vector<float> scratch;
  int64_t done = 0;
  const Device dev = train::model_device(model);
  while (loader.next(&b)) {
    train::to_device(b, dev);
    const Tensor logits = model(b.images);
    const int64_t B = b.size();
    LETHE_CHECK(logits.size(1) == num_classes, "FF: the model has ", logits.size(1),
                " outputs but the data set ", num_classes, " classes");
    std::vector<double> pmean(static_cast<size_t>(num_classes), 0.0);
    {
      autograd::NoGradGuard no_grad;
      const std::vector<float> p = ops::softmax(logits.detach()).to_vector<float>();
      for (int64_t r = 0; r < B; ++r)
        for (int64_t y = 0; y < num_classes; ++y)
          pmean[static_cast<size_t>(y)] += p[static_cast<size_t>(r * num_classes + y)];
      for (double& v : pmean) v /= static_cast<double>(B);
    }
    for (int64_t y = 0; y < num_classes; ++y) {
      // The same forward graph serves every class: backward leaves the tape intact.
      const Tensor target = Tensor::full({B}, static_cast<double>(y), DType::I32);
      const Tensor loss = ops::cross_entropy(logits, target.to(logits.device()));
      model.zero_grad();
      loss.backward();
      const double w = pmean[static_cast<size_t>(y)];
      for (size_t i = 0; i < params.size(); ++i) {
        const Tensor g = params[i].grad();
        if (!g.defined()) continue;
        const float* gv = host_ptr(g, scratch);
        double* f = fisher[i].data();
        const int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t j = 0; j < n; ++j) {
          const double gj = gv[j];
          f[j] += w * gj * gj;
        }
      }
    }
    ++done;
    if (!quiet && (done % std::max<int64_t>(1, batches / 10) == 0 || done == batches))
      std::fprintf(stderr, "[ff] Fisher: batch %lld/%lld\n", static_cast<long long>(done),
                   static_cast<long long>(batches));
  }
  model.zero_grad();
  for (auto& f : fisher)
    for (double& v : f) v /= static_cast<double>(batches);
  model.train(was_training);
  return fisher;
}

FfDistribution ff_distribution(const Tensor& theta0, const std::vector<double>& fisher,
                               int64_t num_classes, double alpha, int64_t forgotten_class) {
  const int64_t n = theta0.numel();
  LETHE_CHECK(static_cast<int64_t>(fisher.size()) == n, "ff_distribution: ", fisher.size(),
              " Fisher values for ", theta0.str());
  FfDistribution d;
  d.mean = host_values(theta0);
  d.var.resize(static_cast<size_t>(n));
  const bool classifier = theta0.dim() >= 1 && theta0.size(0) == num_classes;
  const double cap = classifier ? 1e2 : 1e3;
  for (int64_t j = 0; j < n; ++j)
    d.var[static_cast<size_t>(j)] =
        alpha * std::min(1.0 / (fisher[static_cast<size_t>(j)] + 1e-8), cap);
  if (theta0.dim() > 1) {
    // Mean over dimension 1: view the tensor as [d0, d1, rest].
    const int64_t d0 = theta0.size(0), d1 = theta0.size(1), rest = n / (d0 * d1);
    for (int64_t a = 0; a < d0; ++a)
      for (int64_t r = 0; r < rest; ++r) {
        double s = 0;
        for (int64_t c = 0; c < d1; ++c) s += d.var[static_cast<size_t>((a * d1 + c) * rest + r)];
        const double m = s / static_cast<double>(d1);
        for (int64_t c = 0; c < d1; ++c) d.var[static_cast<size_t>((a * d1 + c) * rest + r)] = m;
      }
  }
  if (classifier && forgotten_class >= 0) {
    const int64_t row = n / theta0.size(0);
    for (int64_t j = forgotten_class * row; j < (forgotten_class + 1) * row; ++j) {
      d.mean[static_cast<size_t>(j)] = 0.0f;
      d.var[static_cast<size_t>(j)] = 1e-4;
    }
  }
  if (classifier || theta0.dim() == 1)
    for (double& v : d.var) v *= 10.0;
  return d;
}

MethodResult fisher_forgetting(nn::Module& model, const data::Dataset& train, const ForgetSet& fs,
                               const prune::MaskSet& masks, const FfOptions& o) {
  LETHE_CHECK(o.alpha >= 0, "FF needs alpha >= 0, got ", o.alpha);
  const Stopwatch clock;
  MethodResult result;
  result.method = "ff";
  install_masks(model, masks);
  const std::vector<std::vector<double>> fisher =
      ff_fisher(model, train, fs.retain, fs.num_classes, o.batch_size, o.quiet);
  result.samples = static_cast<int64_t>(fs.retain.size());
  std::vector<Tensor> params = model.parameters();
  Generator gen(o.seed, kNoiseStream);
  for (size_t i = 0; i < params.size(); ++i) {
    const FfDistribution d =
        ff_distribution(params[i], fisher[i], fs.num_classes, o.alpha, fs.forgotten_class);
    std::vector<float> noise(d.mean.size());
    gen.fill_normal(noise.data(), static_cast<int64_t>(noise.size()));
    std::vector<float> theta(d.mean.size());
    for (size_t j = 0; j < theta.size(); ++j)
      theta[j] = static_cast<float>(d.mean[j] + std::sqrt(d.var[j]) * noise[j]);
    set_host_values(params[i], theta);
  }
  install_masks(model, masks);  // the noise must not revive pruned weights
  result.seconds = clock.seconds();
  return result;
}

}  // namespace lethe::unlearn
