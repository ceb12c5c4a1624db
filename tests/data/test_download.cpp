// The download path with no real network: a tiny fake CIFAR archive (a few records per file,
// packed by the `tar` program) served by an HTTP server thread on 127.0.0.1, checked for the
// unpacked layout, a rejected checksum (the download is deleted), HTTP errors, archives
// lacking files or corrupt, and the digests against known answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "data/dataset.h"
#include "data/download.h"
#include "data_test_util.h"
#include "kernels/check.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;
using lethe::testing::TempDir;

// A minimal HTTP/1.1 file server on an ephemeral loopback port: GET /name answers with the
// file root/name, anything else with 404. One connection at a time, closed after each reply.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::string root) : root_(std::move(root)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // the kernel picks a free port
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes the blocked accept()
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& name) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + name;
  }
  int requests() const { return requests_; }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++requests_;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      std::istringstream line(req);
      std::string method, target;
      line >> method >> target;
      std::string body, status = "404 Not Found";
      const std::string name = target.empty() ? "" : target.substr(1);
      if (method == "GET" && !name.empty() && name.find("..") == std::string::npos &&
          fs::is_regular_file(root_ + "/" + name)) {
        std::ifstream f(root_ + "/" + name, std::ios::binary);
        body.assign(std::istreambuf_iterator<char>(f), {});
        status = "200 OK";
      }
      const std::string reply = "HTTP/1.1 " + status + "\r\nContent-Length: " +
                                std::to_string(body.size()) +
                                "\r\nContent-Type: application/octet-stream\r\n"
                                "Connection: close\r\n\r\n" + body;
      for (size_t sent = 0; sent < reply.size();) {
        const ssize_t n = ::send(c, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::close(c);
    }
  }

  std::string root_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class DownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("tar --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar program";
    // A proxy setting must never route the loopback test elsewhere.
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    // The fake official archive: cifar-10-batches-bin/ with 3 records per batch file.
    const std::string top = work_.file("src/cifar-10-batches-bin");
    fs::create_directories(top + "/nested");
    for (int k = 1; k <= 5; ++k)
      lethe::testing::write_cifar10(top + "/data_batch_" + std::to_string(k) + ".bin", 3, 3 * (k - 1));
    lethe::testing::write_cifar10(top + "/test_batch.bin", 4, 100);
    std::ofstream(top + "/batches.meta.txt") << "airplane\n";
    std::ofstream(top + "/nested/deeper.bin") << "skipped";
    ASSERT_EQ(tar(serve_.file("cifar-10-binary.tar.gz"), work_.file("src"), "cifar-10-batches-bin"), 0);
    md5_ = file_digest(serve_.file("cifar-10-binary.tar.gz"), "md5");
  }
  static int tar(const std::string& out, const std::string& dir, const std::string& what) {
    return std::system(("tar -czf '" + out + "' -C '" + dir + "' " + what).c_str());
  }

  TempDir work_, serve_;
  std::string md5_;
};

TEST(Digest, KnownAnswers) {
  TempDir dir;
  std::ofstream(dir.file("abc")) << "abc";
  EXPECT_EQ(file_digest(dir.file("abc"), "md5"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(file_digest(dir.file("abc"), "sha256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(file_digest(dir.file("abc"), "sha1"), Error);
  EXPECT_THROW(file_digest(dir.file("missing"), "md5"), Error);
}

TEST(Digest, OfficialArchives) {
  EXPECT_EQ(archive_for("cifar10").md5, "c32a1d4ab5d03f1284b67883e8d87530");
  EXPECT_EQ(archive_for("cifar10").url, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
  EXPECT_EQ(archive_for("cifar100").md5, "03b5dce01913d631647c71ecec9e9cb8");
  EXPECT_THROW(archive_for("synthetic"), Error);
}

TEST_F(DownloadTest, FetchesVerifiesAndUnpacks) {
  LoopbackServer server(serve_.path());
  const std::string dir = work_.file("cache/cifar10");
  fs::create_directories(dir);
  std::ofstream(dir + "/keep.txt") << "mine";  // unrelated files in the folder survive
  int64_t calls = 0, last = 0;
  download_dataset("cifar10", dir,
                   {.url = server.url("cifar-10-binary.tar.gz"), .md5 = md5_,
                    .progress = [&](int64_t got, int64_t) { ++calls, last = got; }});
  EXPECT_GT(calls, 0);
  EXPECT_EQ(last, static_cast<int64_t>(fs::file_size(serve_.file("cifar-10-binary.tar.gz"))));
  const Dataset train = load_cifar10(dir, Split::Train);
  const Dataset test = load_cifar10(dir, Split::Test);
  ASSERT_EQ(train.size(), 15);
  ASSERT_EQ(test.size(), 4);
  for (int64_t i = 0; i < 15; ++i) EXPECT_EQ(train.labels[i], i % 10);
  EXPECT_EQ(train.image(14)[77], lethe::testing::test_pixel(14, 77));
  EXPECT_TRUE(fs::exists(dir + "/batches.meta.txt"));
  EXPECT_TRUE(fs::exists(dir + "/keep.txt"));
  EXPECT_FALSE(fs::exists(dir + "/deeper.bin"));  // nested entries are skipped
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  EXPECT_FALSE(fs::exists(dir + ".download.tar.gz"));
}

TEST_F(DownloadTest, WrongChecksumIsRejectedAndDeleted) {
  LoopbackServer server(serve_.path());
  const std::string dir = work_.file("cache/cifar10");
  try {
    // No md5 override: the fake archive must fail the official checksum.
    download_dataset("cifar10", dir, {.url = server.url("cifar-10-binary.tar.gz")});
    FAIL() << "expected a checksum error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MD5 " + md5_), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected c32a1d4ab5d03f1284b67883e8d87530"), std::string::npos) << msg;
    EXPECT_NE(msg.find("deleted"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir + ".download.tar.gz"));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
}

TEST_F(DownloadTest, HttpErrorsNameTheAddress) {
  LoopbackServer server(serve_.path());
  const std::string dir = work_.file("cache/cifar10");
  const std::string url = server.url("no-such-file.tar.gz");
  try {
    download_dataset("cifar10", dir, {.url = url, .md5 = md5_});
    FAIL() << "expected an HTTP error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(url), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + ".download.tar.gz"));
  EXPECT_THROW(http_download("ftp://127.0.0.1/x", work_.file("x")), Error);
}

TEST_F(DownloadTest, ArchivesLackingFilesOrCorruptFail) {
  LoopbackServer server(serve_.path());
  // A CIFAR-10 archive where CIFAR-100 is expected: no train.bin.
  try {
    download_dataset("cifar100", work_.file("c100"),
                     {.url = server.url("cifar-10-binary.tar.gz"), .md5 = md5_});
    FAIL() << "expected a missing-file error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lacks train.bin"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(work_.file("c100.partial")));
  EXPECT_FALSE(fs::exists(work_.file("c100")));
  // Bytes that are not a .tar.gz, with a matching checksum.
  std::ofstream(serve_.file("junk.tar.gz")) << "this is not an archive";
  EXPECT_THROW((download_dataset("cifar10", work_.file("junk"),
                                 {.url = server.url("junk.tar.gz"),
                                  .md5 = file_digest(serve_.file("junk.tar.gz"), "md5")})),
               Error);
  EXPECT_FALSE(fs::exists(work_.file("junk")));
  EXPECT_FALSE(fs::exists(work_.file("junk.partial")));
  EXPECT_EQ(server.requests(), 2);
}

TEST_F(DownloadTest, ExtractFlattensOneFolder) {
  const std::vector<std::string> names =
      extract_tar_gz(serve_.file("cifar-10-binary.tar.gz"), work_.file("flat"));
  EXPECT_EQ(names.size(), 7u);  // 5 batches, test batch, meta; nested/deeper.bin skipped
  EXPECT_TRUE(cifar10_present(work_.file("flat")));
  EXPECT_THROW(extract_tar_gz(work_.file("absent.tar.gz"), work_.file("x")), Error);
}

}  // namespace
}  // namespace lethe::data
