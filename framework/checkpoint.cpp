#include "framework/checkpoint.h"

#include <cmath>
#include <cstring>

namespace lethe {

namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

bool is_counter(const std::string& name) {
  const std::string suffix = "num_batches_tracked";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::NamedTensors& tensors,
                     const io::StMetadata& metadata) {
  std::vector<Tensor> host;  // keeps the host copies alive until the write
  std::vector<std::vector<int64_t>> widened;
  std::vector<io::StTensorView> views;
  host.reserve(tensors.size());
  widened.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    LETHE_CHECK(t.defined(), "save_checkpoint: tensor '", name, "' is undefined");
    host.push_back(t.device().is_cpu() && t.is_contiguous() ? t : t.to(Device::cpu()));
    const Tensor& h = host.back();
    if (is_counter(name) && h.dtype() == DType::I32) {
      // PyTorch's num_batches_tracked is int64: store it so, so load_state_dict accepts it.
      const int32_t* src = h.data<int32_t>();
      widened.emplace_back(src, src + h.numel());
      views.push_back({name, "I64", h.shape(), widened.back().data(),
                       widened.back().size() * sizeof(int64_t)});
      continue;
    }
    views.push_back({name, st_dtype(h.dtype()), h.shape(), h.raw_data(), h.nbytes()});
  }
  io::write_safetensors(path, views, metadata);
}

Checkpoint read_checkpoint(const std::string& path) {
  io::SafetensorsFile file = io::read_safetensors(path);
  Checkpoint ck;
  ck.metadata = file.metadata;
  for (const io::StTensor& st : file.tensors) {
    Tensor t;
    if (st.dtype == "F32" || st.dtype == "F64" || st.dtype == "I32" || st.dtype == "U8" ||
        st.dtype == "BOOL") {
      const DType d = st.dtype == "F32"   ? DType::F32
                      : st.dtype == "F64" ? DType::F64
                      : st.dtype == "I32" ? DType::I32
                                          : DType::U8;
      t = Tensor::empty(st.shape, d);
      std::memcpy(t.raw_data(), st.data.data(), st.data.size());
    } else if (st.dtype == "I64") {
      // Counters (num_batches_tracked) come back as int32; larger values cannot be held.
      t = Tensor::empty(st.shape, DType::I32);
      const size_t n = st.data.size() / sizeof(int64_t);
      for (size_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, st.data.data() + i * sizeof(int64_t), sizeof(v));
        LETHE_CHECK(v >= INT32_MIN && v <= INT32_MAX, path, ": int64 tensor '", st.name,
                    "' holds ", v, ", beyond what lethe's int32 tensors hold");
        t.data<int32_t>()[i] = static_cast<int32_t>(v);
      }
    } else {
      LETHE_CHECK(false, path, ": tensor '", st.name, "' has dtype ", st.dtype,
                  ", which lethe checkpoints do not use (F32, F64, I32, I64, U8)");
    }
    ck.tensors.emplace(st.name, std::move(t));
  }
  return ck;
}

Checkpoint load_checkpoint(const std::string& path, nn::Module& module,
                           const io::StMetadata& expect) {
  Checkpoint ck = read_checkpoint(path);
  for (const auto& [key, want] : expect) {
    auto it = ck.metadata.find(key);
    LETHE_CHECK(it != ck.metadata.end(), path, " has no metadata '", key, "' (expected '", want,
                "'); is it a lethe checkpoint?");
    LETHE_CHECK(it->second == want, path, " was saved with ", key, " = '", it->second,
                "' but this model has ", key, " = '", want, "'");
  }
  const nn::NamedTensors state = module.state_dict();
  // Validate everything before the first copy, so a bad file leaves the module untouched.
  for (const auto& [name, t] : state) {
    auto it = ck.tensors.find(name);
    LETHE_CHECK(it != ck.tensors.end(), path, " lacks tensor '", name, "' of the model");
    const Tensor& src = it->second;
    LETHE_CHECK(src.shape() == t.shape() && src.dtype() == t.dtype(), path, ": tensor '", name,
                "' is ", src.str(), " but the model expects ", t.str());
    if (src.dtype() == DType::F32) {
      const float* v = src.data<float>();
      for (int64_t i = 0; i < src.numel(); ++i)
        LETHE_CHECK(std::isfinite(v[i]), path, ": tensor '", name, "' holds a NaN or Inf at ",
                    "element ", i);
    }
  }
  for (const auto& [name, t] : state) const_cast<Tensor&>(t).copy_(ck.tensors.at(name));
  return ck;
}

}  // namespace lethe
