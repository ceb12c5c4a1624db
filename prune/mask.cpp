// Masks and the sparsity report (see mask.h).
#include "prune/mask.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "models/model.h"

namespace lethe::prune {

namespace {

const std::string kMaskSuffix = ".mask";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// |values| of a float tensor (any device) as doubles on the host.
std::vector<double> host_abs(const Tensor& t) {
  std::vector<double> out;
  if (t.dtype() == DType::F32) {
    const std::vector<float> v = t.to_vector<float>();
    out.assign(v.begin(), v.end());
  } else {
    LETHE_CHECK(t.dtype() == DType::F64, "pruning covers float weights, got ", t.str());
    out = t.to_vector<double>();
  }
  for (double& x : out) x = std::fabs(x);
  return out;
}

}  // namespace

ConvList prunable_layers(nn::Module& model) {
  ConvList convs = models::conv_layers(model);
  LETHE_CHECK(!convs.empty(), "the model has no Conv2d layer, so there is nothing to prune");
  return convs;
}

std::string mask_tensor_name(const std::string& param) { return param + kMaskSuffix; }

MaskSet all_ones_masks(nn::Module& model) {
  MaskSet out;
  for (const auto& [name, conv] : prunable_layers(model))
    out[name] = Tensor::full(conv->weight.shape(), 1.0, DType::U8, conv->weight.device());
  return out;
}

void validate_masks(nn::Module& model, const MaskSet& masks, const std::string& origin) {
  const ConvList convs = prunable_layers(model);
  for (const auto& [name, mask] : masks) {
    const nn::Conv2d* conv = nullptr;
    for (const auto& [n, c] : convs)
      if (n == name) conv = c;
    LETHE_CHECK(conv != nullptr, origin, ": mask for '", name,
                "', which is not a conv weight of this model (masks cover conv weights only; ",
                "is it a mask for another architecture or width?)");
    LETHE_CHECK(mask.defined(), origin, ": the mask for '", name, "' is empty");
    LETHE_CHECK(mask.dtype() == DType::U8, origin, ": the mask for '", name,
                "' must be uint8, got ", dtype_name(mask.dtype()));
    LETHE_CHECK(mask.shape() == conv->weight.shape(), origin, ": the mask for '", name,
                "' has shape ", shape_str(mask.shape()), " but the weight has ",
                shape_str(conv->weight.shape()));
    const std::vector<uint8_t> v = mask.to_vector<uint8_t>();
    for (size_t i = 0; i < v.size(); ++i)
      LETHE_CHECK(v[i] <= 1, origin, ": the mask for '", name, "' holds the value ",
                  static_cast<int>(v[i]), " at element ", i, "; masks hold only 0 and 1");
  }
}

void apply_masks(nn::Module& model, const MaskSet& masks) {
  validate_masks(model, masks, "apply_masks");
  autograd::NoGradGuard no_grad;
  for (const auto& [name, conv] : prunable_layers(model)) {
    auto it = masks.find(name);
    if (it == masks.end()) {
      conv->set_mask(Tensor());
      continue;
    }
    const Tensor mask = it->second.device() == conv->weight.device()
                            ? it->second
                            : it->second.to(conv->weight.device());
    conv->set_mask(mask);
    // Zero the stored weight too: the forward already multiplies by the mask, but checkpoints,
    // the sparsity report and magnitude ranking read the stored values.
    conv->weight.copy_(ops::mul(conv->weight.detach(), mask));
  }
}

MaskSet masks_to(const MaskSet& masks, Device device) {
  MaskSet out;
  for (const auto& [name, m] : masks) out[name] = m.device() == device ? m : m.to(device);
  return out;
}

MaskSet masks_from_checkpoint(const Checkpoint& ck, nn::Module& model, const std::string& path) {
  MaskSet masks;
  for (const auto& [name, t] : ck.tensors)
    if (ends_with(name, kMaskSuffix)) masks[name.substr(0, name.size() - kMaskSuffix.size())] = t;
  validate_masks(model, masks, path);
  // Files are read to the host; the masks go where the weights are (SGD::set_mask needs that).
  for (const auto& [name, conv] : prunable_layers(model)) {
    auto it = masks.find(name);
    if (it != masks.end() && it->second.device() != conv->weight.device())
      it->second = it->second.to(conv->weight.device());
  }
  return masks;
}

MaskSet read_masks(const std::string& path, nn::Module& model) {
  return masks_from_checkpoint(read_checkpoint(path), model, path);
}

void save_masks(const std::string& path, const MaskSet& masks, const io::StMetadata& metadata) {
  nn::NamedTensors tensors;
  for (const auto& [name, m] : masks) tensors.emplace_back(mask_tensor_name(name), m);
  save_checkpoint(path, tensors, metadata);
}

int64_t prunable_count(nn::Module& model) {
  int64_t n = 0;
  for (const auto& [name, conv] : prunable_layers(model)) n += conv->weight.numel();
  return n;
}

std::vector<uint8_t> flatten_masks(nn::Module& model, const MaskSet& masks) {
  std::vector<uint8_t> flat;
  flat.reserve(static_cast<size_t>(prunable_count(model)));
  for (const auto& [name, conv] : prunable_layers(model)) {
    auto it = masks.find(name);
    if (it == masks.end()) {
      flat.insert(flat.end(), static_cast<size_t>(conv->weight.numel()), uint8_t{1});
    } else {
      const std::vector<uint8_t> v = it->second.to_vector<uint8_t>();
      flat.insert(flat.end(), v.begin(), v.end());
    }
  }
  return flat;
}

MaskSet unflatten_masks(nn::Module& model, const std::vector<uint8_t>& flat) {
  LETHE_CHECK(static_cast<int64_t>(flat.size()) == prunable_count(model), "unflatten_masks: ",
              flat.size(), " values for ", prunable_count(model), " conv weights");
  MaskSet out;
  size_t at = 0;
  for (const auto& [name, conv] : prunable_layers(model)) {
    const size_t n = static_cast<size_t>(conv->weight.numel());
    std::vector<uint8_t> part(flat.begin() + static_cast<std::ptrdiff_t>(at),
                              flat.begin() + static_cast<std::ptrdiff_t>(at + n));
    Tensor m = Tensor::from_vector(part, conv->weight.shape());
    out[name] = conv->weight.device().is_cpu() ? m : m.to(conv->weight.device());
    at += n;
  }
  return out;
}

std::vector<double> flat_abs_weights(nn::Module& model) {
  std::vector<double> flat;
  flat.reserve(static_cast<size_t>(prunable_count(model)));
  for (const auto& [name, conv] : prunable_layers(model)) {
    const std::vector<double> v = host_abs(conv->weight);
    flat.insert(flat.end(), v.begin(), v.end());
  }
  return flat;
}

SparsityReport sparsity_report(nn::Module& model) {
  SparsityReport r;
  for (const auto& [name, conv] : prunable_layers(model)) {
    LayerSparsity l;
    l.name = name;
    l.shape = conv->weight.shape();
    for (double v : host_abs(conv->weight)) l.zeros += v == 0.0;
    l.total = conv->weight.numel();
    if (!conv->last_path().empty()) l.path = conv->last_path();
    r.total += l.total;
    r.zeros += l.zeros;
    r.layers.push_back(l);
  }
  return r;
}

std::string format_sparsity(const SparsityReport& report) {
  size_t width = 7;
  for (const auto& l : report.layers) width = std::max(width, l.name.size());
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-*s %-18s %12s %12s %8s  %s\n", static_cast<int>(width),
                "layer", "shape", "zeros", "weights", "sparsity", "path");
  os << line;
  for (const auto& l : report.layers) {
    std::snprintf(line, sizeof line, "%-*s %-18s %12lld %12lld %7.2f%%  %s\n",
                  static_cast<int>(width), l.name.c_str(), shape_str(l.shape).c_str(),
                  static_cast<long long>(l.zeros), static_cast<long long>(l.total),
                  100.0 * l.sparsity(), l.path.c_str());
    os << line;
  }
  std::snprintf(line, sizeof line, "%-*s %-18s %12lld %12lld %7.2f%%\n", static_cast<int>(width),
                "overall", "", static_cast<long long>(report.zeros),
                static_cast<long long>(report.total), 100.0 * report.sparsity());
  os << line;
  return os.str();
}

nlohmann::json sparsity_json(const SparsityReport& report) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : report.layers)
    layers.push_back({{"name", l.name},
                      {"shape", l.shape},
                      {"total", l.total},
                      {"zeros", l.zeros},
                      {"sparsity", l.sparsity()},
                      {"path", l.path}});
  return {{"overall",
           {{"total", report.total}, {"zeros", report.zeros}, {"sparsity", report.sparsity()}}},
          {"layers", layers}};
}

}  // namespace lethe::prune
