// Long runs survive SIGKILL (docs/hardening.md): the real `lethe` binary is killed at a random
// moment, every checkpoint left behind must load, `--resume` (lethe train) or a plain re-run
// (lethe pipeline) must continue from the last saved step, and the finished run must equal an
// uninterrupted one bit for bit (CPU, same thread count). The random kill times are printed
// so a failure can be reproduced with LETHE_KILL_MS=<ms>,<ms>.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "framework/checkpoint.h"
#include "framework/safetensors.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("lethe_crash_" + name + "_" +
                                                  std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

/// Starts `lethe args...` with stdout and stderr appended to `log`.
pid_t spawn_lethe(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> all = {LETHE_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

/// Runs `lethe args...` to the end; returns its exit status (-1 when it did not exit).
int run_lethe(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = spawn_lethe(args, log);
  if (pid < 0) return -1;
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/// Starts `lethe args...`, waits until `ready` exists (something worth resuming from), then
/// `delay_ms` more, and SIGKILLs it. Returns true when the kill landed (false: it finished).
bool run_and_kill(const std::vector<std::string>& args, const std::string& log,
                  const std::string& ready, int delay_ms) {
  const pid_t pid = spawn_lethe(args, log);
  EXPECT_GT(pid, 0) << "cannot start " << LETHE_BINARY;
  if (pid < 0) return false;
  int st = 0;
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (!fs::exists(ready) && Clock::now() < deadline) {
    if (waitpid(pid, &st, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  if (waitpid(pid, &st, WNOHANG) == pid) return false;
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/// Kill delays: LETHE_KILL_MS=a,b,... when set (to replay a failure), else random in [0, max).
std::vector<int> kill_delays(int n, int max_ms) {
  std::vector<int> out;
  if (const char* env = std::getenv("LETHE_KILL_MS")) {
    std::stringstream ss(env);
    for (std::string s; std::getline(ss, s, ',');) out.push_back(std::stoi(s));
    return out;
  }
  std::random_device rd;
  std::uniform_int_distribution<int> u(0, max_ms - 1);
  for (int i = 0; i < n; ++i) out.push_back(u(rd));
  return out;
}

std::string delays_str(const std::vector<int>& d) {
  std::ostringstream s;
  for (size_t i = 0; i < d.size(); ++i) s << (i ? "," : "") << d[i];
  return s.str();
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

/// `j` without its wall-clock fields (keys ending in "_s", at any depth).
json without_timings(json j) {
  if (!j.is_object()) return j;
  json out = json::object();
  for (auto& [k, v] : j.items())
    if (k.size() < 2 || k.compare(k.size() - 2, 2, "_s") != 0) out[k] = without_timings(v);
  return out;
}

/// Every tensor of two safetensors files, byte for byte (the metadata may differ: version
/// strings are equal, but nothing else should be needed to match).
void expect_same_tensors(const std::string& a, const std::string& b) {
  const lethe::io::SafetensorsFile fa = lethe::io::read_safetensors(a);
  const lethe::io::SafetensorsFile fb = lethe::io::read_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size()) << a << " vs " << b;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    EXPECT_EQ(fa.tensors[i].name, fb.tensors[i].name);
    EXPECT_TRUE(fa.tensors[i].data == fb.tensors[i].data)
        << "tensor " << fa.tensors[i].name << " differs between " << a << " and " << b;
  }
}

std::vector<std::string> train_args(const std::string& out) {
  return {"train", "--dataset", "synthetic", "--width", "0.0625", "--epochs", "3",
          "--train-limit", "512", "--batch-size", "32", "--save-every", "1",
          "--snapshot-epoch", "1", "--threads", "1", "--quiet", "--out", out};
}

TEST(CrashResume, KilledTrainRunResumesAtItsLastStepAndEndsIdentical) {
  const std::string ref = fresh_dir("train_ref"), run = fresh_dir("train_run");
  const auto t0 = Clock::now();
  ASSERT_EQ(run_lethe(train_args(ref), ref + "/log.txt"), 0);
  const int ref_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());

  const std::vector<int> delays = kill_delays(2, std::max(ref_ms, 1));
  SCOPED_TRACE("kill delays (ms after the first checkpoint): LETHE_KILL_MS=" + delays_str(delays));
  const std::string last = run + "/last.safetensors";
  int64_t expected_start = 0;
  bool killed_any = false;
  for (size_t k = 0; k < delays.size(); ++k) {
    std::vector<std::string> args = train_args(run);
    if (k > 0) args.push_back("--resume");
    if (!run_and_kill(args, run + "/log.txt", last, delays[k])) {
      // This run finished before its kill: the final --resume starts from its last step, not
      // from the checkpoint the previous kill left.
      if (killed_any) expected_start = std::stoll(lethe::read_checkpoint(last).metadata.at("step"));
      break;
    }
    killed_any = true;
    // Whatever the moment, the checkpoint on disk is a whole one of this run.
    const lethe::Checkpoint ck = lethe::read_checkpoint(last);
    expected_start = std::stoll(ck.metadata.at("step"));
    EXPECT_GE(expected_start, 1);
    EXPECT_LE(expected_start, 48);
  }
  if (killed_any) {
    std::vector<std::string> args = train_args(run);
    args.push_back("--resume");
    ASSERT_EQ(run_lethe(args, run + "/log.txt"), 0);
    EXPECT_EQ(read_json(run + "/results.json")["resumed_from_step"].get<int64_t>(),
              expected_start);
  }
  expect_same_tensors(ref + "/last.safetensors", last);
  expect_same_tensors(ref + "/best.safetensors", run + "/best.safetensors");
  expect_same_tensors(ref + "/epoch1.safetensors", run + "/epoch1.safetensors");
  const json a = read_json(ref + "/results.json"), b = read_json(run + "/results.json");
  EXPECT_EQ(a["metrics"], b["metrics"]);
  ASSERT_EQ(b["per_epoch"].size(), 3u);
  for (size_t e = 0; e < 3; ++e)
    for (const char* k : {"epoch", "loss", "train_acc", "val_acc"})
      EXPECT_EQ(a["per_epoch"][e][k], b["per_epoch"][e][k]) << "epoch " << e + 1 << " " << k;
  fs::remove_all(ref);
  fs::remove_all(run);
}

std::vector<std::string> pipeline_args(const std::string& out) {
  return {"pipeline", "--dataset", "synthetic", "--train-limit", "600", "--val-limit", "100",
          "--width", "0.0625", "--epochs", "2", "--rewind-epoch", "1", "--prune-epochs", "2",
          "--batch-size", "64", "--methods", "retrain,ft", "--retrain.epochs", "1",
          "--ft.epochs", "1", "--seeds", "1", "--forget", "class:0", "--mia-variants",
          "false", "--threads", "1", "--quiet", "true", "--out", out};
}

TEST(CrashResume, KilledPipelineRerunEndsIdentical) {
  const std::string ref = fresh_dir("pipe_ref"), run = fresh_dir("pipe_run");
  const auto t0 = Clock::now();
  ASSERT_EQ(run_lethe(pipeline_args(ref), ref + "/log.txt"), 0);
  const int ref_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());

  const std::vector<int> delays = kill_delays(1, std::max(ref_ms, 1));
  SCOPED_TRACE("kill delay (ms after start): LETHE_KILL_MS=" + delays_str(delays));
  // The output folder exists from the start, so the kill lands anywhere in the run.
  run_and_kill(pipeline_args(run), run + "/log.txt", run, delays[0]);
  // Stages are finished exactly when their done.json exists (written atomically, last).
  int finished = 0;
  if (fs::exists(run + "/stages"))
    for (const auto& e : fs::directory_iterator(run + "/stages"))
      finished += fs::exists(e.path() / "done.json");
  ASSERT_EQ(run_lethe(pipeline_args(run), run + "/log.txt"), 0);
  const json a = read_json(ref + "/results.json"), b = read_json(run + "/results.json");
  // The re-run reuses every finished stage and computes only the rest.
  EXPECT_EQ(b["stages"]["cached"].get<int>(), finished);
  EXPECT_EQ(b["stages"]["computed"].get<int>(), a["stages"]["total"].get<int>() - finished);
  ASSERT_EQ(a["runs"].size(), b["runs"].size());
  for (size_t i = 0; i < a["runs"].size(); ++i) {
    EXPECT_EQ(a["runs"][i]["stage"], b["runs"][i]["stage"]);
    EXPECT_EQ(without_timings(a["runs"][i]["metrics"]), without_timings(b["runs"][i]["metrics"]))
        << "run " << i;
  }
  fs::remove_all(ref);
  fs::remove_all(run);
}

}  // namespace
