// Download, checksum and unpack of the official CIFAR archives (see download.h for the
// order of steps and why). libcurl, OpenSSL's EVP and libarchive are used through small RAII
// wrappers so every early throw releases its handle and closes its file.
#include "data/download.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include "kernels/check.h"

namespace lethe::data {
namespace fs = std::filesystem;
namespace {

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct FileDeleter {
  void operator()(FILE* f) const { std::fclose(f); }
};
struct DigestDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

struct Transfer {
  FILE* file = nullptr;
  const ProgressFn* progress = nullptr;
};

size_t write_cb(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  return std::fwrite(data, size, count, t->file);
}

int progress_cb(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->progress && *t->progress) (*t->progress)(static_cast<int64_t>(now), static_cast<int64_t>(total));
  return 0;
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// The part of an archive path kept after dropping one leading folder, or "" to skip it.
std::string flattened_name(std::string path) {
  while (path.size() > 2 && path.compare(0, 2, "./") == 0) path.erase(0, 2);
  const size_t slash = path.find('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    return "";
  return name;
}

}  // namespace

ArchiveSpec archive_for(const std::string& dataset) {
  if (dataset == "cifar10")
    return {"cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
            {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
             "data_batch_5.bin", "test_batch.bin"}};
  if (dataset == "cifar100")
    return {"cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8", {"train.bin", "test.bin"}};
  LETHE_CHECK(false, "no download is known for data set '", dataset,
              "'; expected cifar10 or cifar100.");
  return {};
}

std::string file_digest(const std::string& path, const std::string& algorithm) {
  const EVP_MD* md = algorithm == "md5" ? EVP_md5() : algorithm == "sha256" ? EVP_sha256() : nullptr;
  LETHE_CHECK(md != nullptr, "file_digest: unknown algorithm '", algorithm,
              "'; expected md5 or sha256.");
  std::unique_ptr<FILE, FileDeleter> f(std::fopen(path.c_str(), "rb"));
  LETHE_CHECK(f != nullptr, "cannot open ", path, " to compute its ", algorithm, ".");
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx(EVP_MD_CTX_new());
  LETHE_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1,
              "OpenSSL could not start a ", algorithm, " digest.");
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0)
    LETHE_CHECK(EVP_DigestUpdate(ctx.get(), buf.data(), n) == 1, "OpenSSL ", algorithm,
                " update failed on ", path, ".");
  LETHE_CHECK(!std::ferror(f.get()), "reading ", path, " failed while computing its ",
              algorithm, ".");
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  LETHE_CHECK(EVP_DigestFinal_ex(ctx.get(), out.data(), &len) == 1, "OpenSSL ", algorithm,
              " finalisation failed on ", path, ".");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < len; ++i) {
    s += hex[out[i] >> 4];
    s += hex[out[i] & 15];
  }
  return s;
}

void http_download(const std::string& url, const std::string& dest, const ProgressFn& progress) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> h(curl_easy_init());
  LETHE_CHECK(h != nullptr, "libcurl could not start a transfer for ", url, ".");
  std::unique_ptr<FILE, FileDeleter> f(std::fopen(dest.c_str(), "wb"));
  LETHE_CHECK(f != nullptr, "cannot create ", dest, " to download ", url, " into.");
  Transfer t{f.get(), &progress};
  char err[CURL_ERROR_SIZE] = {0};
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // an HTTP 404 is an error, not a page saved
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);     // safe in multi-threaded programs
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // Give up on a stalled transfer (under 1 kB/s for a minute) rather than hang forever.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, progress ? 0L : 1L);
  const CURLcode rc = curl_easy_perform(c);
  const bool write_ok = std::fflush(f.get()) == 0 && !std::ferror(f.get());
  f.reset();
  if (rc != CURLE_OK || !write_ok) {
    remove_quietly(dest);
    LETHE_CHECK(false, "downloading ", url, " failed (",
                rc != CURLE_OK ? (err[0] ? err : curl_easy_strerror(rc)) : "writing the file failed",
                "); check the network and the address, then retry.");
  }
}

std::vector<std::string> extract_tar_gz(const std::string& path, const std::string& dest_dir) {
  std::unique_ptr<archive, ArchiveDeleter> a(archive_read_new());
  LETHE_CHECK(a != nullptr, "libarchive could not start reading ", path, ".");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  LETHE_CHECK(archive_read_open_filename(a.get(), path.c_str(), 1 << 16) == ARCHIVE_OK,
              "cannot open ", path, " as a .tar.gz archive (", archive_error_string(a.get()), ").");
  fs::create_directories(dest_dir);
  std::vector<std::string> written;
  archive_entry* entry = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const char* raw = archive_entry_pathname(entry);
    const std::string name = flattened_name(raw ? raw : "");
    if (name.empty()) continue;
    const std::string out_path = (fs::path(dest_dir) / name).string();
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    LETHE_CHECK(out.good(), "cannot create ", out_path, " while unpacking ", path, ".");
    std::vector<char> buf(1 << 16);
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf.data(), buf.size())) > 0)
      out.write(buf.data(), static_cast<std::streamsize>(n));
    LETHE_CHECK(n == 0, path, " is corrupt: reading '", raw, "' failed (",
                archive_error_string(a.get()), ").");
    LETHE_CHECK(out.good(), "writing ", out_path, " failed while unpacking ", path, ".");
    written.push_back(name);
  }
  LETHE_CHECK(r == ARCHIVE_EOF, path, " is corrupt or not a .tar.gz archive (",
              archive_error_string(a.get()), ").");
  return written;
}

void download_dataset(const std::string& dataset, const std::string& data_dir,
                      const DownloadOptions& options) {
  const ArchiveSpec spec = archive_for(dataset);
  LETHE_CHECK(!data_dir.empty(), "download_dataset: the data folder is empty.");
  const std::string url = options.url.empty() ? spec.url : options.url;
  const std::string want = options.md5.empty() ? spec.md5 : options.md5;
  // Strip a trailing '/' so "<dir>.partial" lands beside the folder, not inside it.
  std::string dir = fs::path(data_dir).lexically_normal().string();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const std::string archive_path = dir + ".download.tar.gz";
  const std::string staging = dir + ".partial";

  http_download(url, archive_path, options.progress);
  const std::string got = file_digest(archive_path, "md5");
  if (got != want) {
    remove_quietly(archive_path);
    LETHE_CHECK(false, "the archive downloaded from ", url, " has MD5 ", got, ", expected ",
                want, "; it is corrupt or not the official file and was deleted, so retry.");
  }
  remove_quietly(staging);
  try {
    extract_tar_gz(archive_path, staging);
    for (const std::string& f : spec.files)
      LETHE_CHECK(fs::is_regular_file(fs::path(staging) / f), "the archive from ", url,
                  " lacks ", f, "; expected the ", dataset, " binary files.");
  } catch (...) {
    remove_quietly(staging);
    remove_quietly(archive_path);
    throw;
  }
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(staging))
    fs::rename(e.path(), fs::path(dir) / e.path().filename());
  remove_quietly(staging);
  remove_quietly(archive_path);
}

}  // namespace lethe::data
