// A guest's archive file, opened and locked for one operation.
//
// Every operation on a guest's file holds an flock(2) lock on it for its
// whole length: exclusive to change the file, shared to read it. The lock is
// on the open file, so threads of one process and several processes that
// archive into the same folder exclude each other alike. An erase unlinks
// the file under the lock; one that waited for it finds the file gone and
// opens the new one, so no write lands in an unlinked file.
#pragma once

#include <optional>
#include <string>

#include "stowage/context.h"
#include "stowage/status.h"

namespace archive {

enum class LockMode { kShared, kExclusive };

class GuestFile {
 public:
  // Opens and locks `path` by `deadline`. Creates the file when `create`;
  // otherwise a missing file leaves `file` empty and returns ok.
  static stowage::Status Open(const std::string& path, bool create, LockMode mode, stowage::Deadline deadline,
                              std::optional<GuestFile>& file);

  GuestFile(GuestFile&& other) noexcept;
  GuestFile& operator=(GuestFile&&) = delete;
  GuestFile(const GuestFile&) = delete;
  GuestFile& operator=(const GuestFile&) = delete;
  ~GuestFile();

  // Adds `text` at the end; with `sync`, on disk before it returns.
  stowage::Status Append(const std::string& text, bool sync);
  // The whole file.
  stowage::Status ReadAll(std::string& text);
  // Replaces the whole file with `text`.
  stowage::Status Replace(const std::string& text, bool sync);
  // Removes the file from its folder (the lock is held until destruction).
  stowage::Status Unlink();

 private:
  GuestFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  stowage::Status Error(const char* what, int error) const;

  std::string path_;
  int fd_ = -1;
};

}  // namespace archive
