#include "apps/report.h"

#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "framework/atomic_file.h"
#include "framework/settings.h"
#include "framework/tensor.h"
#include "framework/version.h"

namespace lethe::cli {

nlohmann::json machine_info() {
  std::string cpu = "unknown";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  nlohmann::json j = {{"cpu", cpu},
                      {"cores", std::thread::hardware_concurrency()},
                      {"threads", omp_get_max_threads()},
                      {"cuda_build", built_with_cuda()},
                      {"gpus", cuda_device_count()}};
  return j;
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos && s.size() < 8)
    return Device::cuda(std::stoi(s.substr(5)));
  LETHE_CHECK(false, "--device '", s, "' is not one of: cpu, cuda, cuda:N");
}

nlohmann::json apply_settings(const Config& cfg, bool allow_cuda) {
  const int64_t threads = cfg.get_int("threads", 0);
  LETHE_CHECK(threads >= 0, "--threads must be >= 0 (0: one per core), got ", threads);
  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
  ExecutionSettings s;
  s.math = parse_math_mode(cfg.get_string("math-mode", "fp32"));
  s.conv = parse_conv_backend(cfg.get_string("conv-backend", "lethe"));
  s.sparse = parse_sparse_mode(cfg.get_string("sparse", "auto"));
  const std::string device = cfg.get_string("device", "cpu");
  if (allow_cuda && device != "cpu") {
    const Device d = parse_device(device);
    LETHE_CHECK(d.index < cuda_device_count(), "--device ", device, ": ",
                cuda_device_count() == 0 ? "no CUDA device is visible (or this lethe was built "
                                           "without CUDA)"
                                         : "no such CUDA device");
    set_current_device(d);
  } else {
    LETHE_CHECK(device == "cpu", "--device ", device,
                ": this command runs on the CPU only for now (train, eval, prune, unlearn, "
                "pipeline and bench take cuda)");
  }
  // Settings that would be silently ignored are refused instead.
  LETHE_CHECK(s.conv == ConvBackend::Lethe || device != "cpu",
              "--conv-backend cudnn runs on the GPU only; add --device cuda or drop it");
#ifndef LETHE_WITH_CUDNN
  LETHE_CHECK(s.conv == ConvBackend::Lethe,
              "--conv-backend cudnn: this lethe was built without cuDNN");
#endif
  LETHE_CHECK(s.math == MathMode::FP32 || device != "cpu",
              "--math-mode tf32 applies to the GPU only (the CPU kernels are fp32); drop it or "
              "add --device cuda");
  set_execution_settings(s);
  return {{"device", device},
          {"math_mode", to_string(s.math)},
          {"conv_backend", to_string(s.conv)},
          {"sparse", to_string(s.sparse)},
          {"threads", omp_get_max_threads()}};
}

std::string compute_place(const nlohmann::json& settings) {
  const std::string device = settings.value("device", std::string("cpu"));
  if (device == "cpu") return settings["threads"].dump() + " threads";
  return device == "cuda" ? "cuda:0" : device;
}

nlohmann::json config_json(const Config& cfg) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : cfg.values()) j[k] = v;
  return j;
}

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_results(const std::string& dir, const nlohmann::json& results,
                   const std::string& markdown) {
  std::filesystem::create_directories(dir);
  write_text_atomic((std::filesystem::path(dir) / "results.json").string(),
                    results.dump(2) + "\n");
  write_text_atomic((std::filesystem::path(dir) / "summary.md").string(), markdown);
}

std::string fmt_fixed(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

bool gnuplot_available(const std::string& tag) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) return true;
  std::fprintf(stderr, "[%s] warning: gnuplot not found; the picture is skipped (install "
                       "gnuplot-nox, e.g. scripts/install_deps.sh)\n", tag.c_str());
  return false;
}

bool run_gnuplot(const std::string& dir, const std::string& stem, const std::string& script,
                 const std::string& tag) {
  namespace fs = std::filesystem;
  const std::string gp_path = (fs::path(dir) / (stem + ".gp")).string();
  write_text_atomic(gp_path, script);
  const std::string log = (fs::path(dir) / "gnuplot.log").string();
  std::string cmd = "gnuplot '";
  cmd += gp_path;
  cmd += "' 2>'";
  cmd += log;
  cmd += "'";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "[%s] warning: gnuplot failed (see %s); the picture is skipped\n",
                 tag.c_str(), log.c_str());
    return false;
  }
  return true;
}

}  // namespace lethe::cli
