// `lethe download`: fetches the official CIFAR archive, verifies its checksum and unpacks it.
#include <cstdio>
#include <cstdlib>

#include "apps/cli.h"
#include "apps/commands.h"
#include "data/download.h"

namespace lethe::cli {

int cmd_download(const std::vector<std::string>& args) {
  Command cmd;
  cmd.name = "download";
  cmd.summary = "Download CIFAR-10 or CIFAR-100 (binary version) from the official address,\n"
                "verify its MD5 checksum and unpack it into --data-dir.";
  cmd.options = {{"dataset", "cifar10", "cifar10 | cifar100"},
                 {"data-dir", "", "destination (default: $LETHE_DATA, then ./data_cache/<dataset>)"},
                 {"url", "", "another address for the same archive (e.g. a mirror)"},
                 {"md5", "", "its MD5 checksum, when --url serves a different file"}};
  Config cfg;
  if (!parse_args(cmd, args, cfg)) return 0;
  const std::string dataset = cfg.get_string("dataset", "cifar10");
  std::string dir = cfg.get_string("data-dir", "");
  if (dir.empty()) {
    const char* env = std::getenv("LETHE_DATA");
    dir = env && *env ? env : "data_cache/" + dataset;
  }
  data::DownloadOptions o;
  o.url = cfg.get_string("url", "");
  o.md5 = cfg.get_string("md5", "");
  int last_pct = -1;
  o.progress = [&](int64_t got, int64_t total) {
    if (total <= 0) return;
    const int pct = static_cast<int>(100 * got / total);
    if (pct / 10 != last_pct / 10) std::fprintf(stderr, "[download] %d%%\n", pct);
    last_pct = pct;
  };
  data::download_dataset(dataset, dir, o);
  std::printf("%s is ready in %s\n", dataset.c_str(), dir.c_str());
  return 0;
}

}  // namespace lethe::cli
