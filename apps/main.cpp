// lethe: the command line. `lethe <subcommand> --help` lists each subcommand's options.
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "framework/version.h"
#include "kernels/check.h"

namespace {

const char* kUsage =
    "usage: lethe <subcommand> [--config FILE] [--preset NAME] [--key value ...]\n\n"
    "subcommands:\n"
    "  train      train a dense model (checkpoints, resume, results)\n"
    "  prune      prune a model (omp, imp, synflow, random) and retrain it with the mask\n"
    "  unlearn    unlearn a forget set (retrain, ft, ga, rl, ff, iu, l1) and evaluate it\n"
    "  pipeline   the whole experiment: dense -> prune -> unlearn -> results table\n"
    "  backdoor   backdoor cleansing: poison, train, prune, unlearn the poisoned images\n"
    "  transfer   transfer a (sparse, unlearned) source model to a new task\n"
    "  eval       accuracy of a checkpoint per split\n"
    "  download   fetch CIFAR-10 / CIFAR-100 (checksum verified)\n"
    "  bench      training-step throughput (the protocol of pytorch_baseline.py)\n"
    "  version    print the version\n\n"
    "'lethe <subcommand> --help' lists its options.\n";

// Errors carry "file.cpp:123: " for developers; users get the sentence alone
// (set LETHE_DEBUG=1 to keep the location).
std::string user_message(const std::string& what) {
  if (std::getenv("LETHE_DEBUG")) return what;
  static const std::regex loc(R"(^[^ ]+\.(cpp|h|cu|cuh):[0-9]+: )");
  return std::regex_replace(what, loc, "", std::regex_constants::format_first_only);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string sub = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (sub == "train") return lethe::cli::cmd_train(args);
    if (sub == "prune") return lethe::cli::cmd_prune(args);
    if (sub == "unlearn") return lethe::cli::cmd_unlearn(args);
    if (sub == "pipeline") return lethe::cli::cmd_pipeline(args);
    if (sub == "backdoor") return lethe::cli::cmd_backdoor(args);
    if (sub == "transfer") return lethe::cli::cmd_transfer(args);
    if (sub == "eval") return lethe::cli::cmd_eval(args);
    if (sub == "download") return lethe::cli::cmd_download(args);
    if (sub == "bench") return lethe::cli::cmd_bench(args);
    if (sub == "version" || sub == "--version") {
      std::printf("lethe %s\n", lethe::version().c_str());
      return 0;
    }
    if (sub == "help" || sub == "--help" || sub == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "lethe: unknown subcommand '%s'\n\n%s", sub.c_str(), kUsage);
    return 2;
  } catch (const lethe::Error& e) {
    std::fprintf(stderr, "lethe %s: %s\n", sub.c_str(), user_message(e.what()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lethe %s: unexpected error: %s\n", sub.c_str(), e.what());
    return 1;
  }
}
