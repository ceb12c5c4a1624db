// Downloading the official CIFAR archives: HTTP(S) with libcurl, MD5 / SHA-256 with
// OpenSSL's EVP interface, .tar.gz unpacking with libarchive (Debian packages
// libcurl4-openssl-dev, libssl-dev, libarchive-dev).
//
// Format: the archives hold one folder (cifar-10-batches-bin/ or cifar-100-binary/) of
// binary files; unpacking flattens that folder, so the data folder ends up holding
// data_batch_1.bin ... (or train.bin, test.bin) directly, the layout dataset.h reads and
// unpack.py writes.
//
// Why this order of steps: the archive is fetched to "<dir>.download.tar.gz", its MD5 is
// checked before anything is unpacked (a mismatch deletes the file and fails), it is unpacked
// into "<dir>.partial/", the expected files are checked, and only then are they moved into
// <dir>. An interrupted or corrupt download never leaves half a data set in <dir>, and files
// already in <dir> that the archive does not contain are left alone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lethe::data {

/// Where a data set's official archive lives and what it must contain.
struct ArchiveSpec {
  std::string dataset;             ///< "cifar10" or "cifar100"
  std::string url;                 ///< the official download address
  std::string md5;                 ///< lowercase hex MD5 of the archive
  std::vector<std::string> files;  ///< files that must be present after unpacking
};

/// The official archive of "cifar10" or "cifar100"; throws lethe::Error for other names.
ArchiveSpec archive_for(const std::string& dataset);

/// Lowercase hex digest of a file; `algorithm` is "md5" or "sha256".
std::string file_digest(const std::string& path, const std::string& algorithm);

/// Called during a transfer with (bytes received, total bytes or 0 when unknown).
using ProgressFn = std::function<void(int64_t received, int64_t total)>;

/// Downloads `url` (http or https, redirects followed) into the file `dest`. On failure
/// `dest` is deleted and lethe::Error names the address and the reason.
void http_download(const std::string& url, const std::string& dest,
                   const ProgressFn& progress = {});

/// Unpacks the regular files of a .tar.gz into `dest_dir` (created if missing), dropping
/// one leading folder from each path; entries nested deeper, links and devices are skipped,
/// so nothing can be written outside `dest_dir`. Returns the file names written.
std::vector<std::string> extract_tar_gz(const std::string& archive, const std::string& dest_dir);

/// Overrides for download_dataset (tests serve a small fake archive on loopback).
struct DownloadOptions {
  std::string url{};      ///< empty: the official address
  std::string md5{};      ///< empty: the official checksum
  ProgressFn progress{};  ///< optional transfer progress
};

/// Downloads, verifies and unpacks `dataset`'s archive into `data_dir` (steps in the header
/// comment). Throws lethe::Error on a network failure, a checksum mismatch (the download
/// is deleted) or an archive without the expected files.
void download_dataset(const std::string& dataset, const std::string& data_dir,
                      const DownloadOptions& options = {});

}  // namespace lethe::data
