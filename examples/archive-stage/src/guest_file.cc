#include "guest_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

namespace archive {
namespace {

// Writes all of `text` (at the end: the files are opened with O_APPEND).
bool WriteAll(int fd, const std::string& text) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

stowage::Status GuestFile::Open(const std::string& path, bool create, LockMode mode,
                                stowage::Deadline deadline, std::optional<GuestFile>& file) {
  file.reset();
  const int lock = mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH;
  while (true) {
    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0) {
      if (errno == ENOENT && !create) return stowage::Status::Ok();
      return stowage::Status::Unavailable("cannot open " + path + ": " + std::strerror(errno));
    }
    // Waits for the lock without blocking past the deadline.
    while (::flock(fd, lock | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        int error = errno;
        ::close(fd);
        return stowage::Status::Unavailable("cannot lock " + path + ": " + std::strerror(error));
      }
      if (deadline.expired()) {
        ::close(fd);
        return stowage::Status::DeadlineExceeded("the deadline passed while waiting for the lock on " + path);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // An erase may have unlinked the file while this one waited: then the
    // locked file is no longer the guest's file, and the path is opened again.
    struct stat opened {};
    struct stat named {};
    if (::fstat(fd, &opened) == 0 && ::stat(path.c_str(), &named) == 0 && opened.st_dev == named.st_dev &&
        opened.st_ino == named.st_ino) {
      file.emplace(GuestFile(path, fd));
      return stowage::Status::Ok();
    }
    ::close(fd);
    if (deadline.expired())
      return stowage::Status::DeadlineExceeded("the deadline passed while opening " + path);
  }
}

GuestFile::GuestFile(GuestFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

GuestFile::~GuestFile() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

stowage::Status GuestFile::Error(const char* what, int error) const {
  return stowage::Status::Unavailable(std::string("cannot ") + what + " " + path_ + ": " +
                                      std::strerror(error));
}

stowage::Status GuestFile::Append(const std::string& text, bool sync) {
  if (!WriteAll(fd_, text)) return Error("append to", errno);
  if (sync && ::fsync(fd_) != 0) return Error("fsync", errno);
  return stowage::Status::Ok();
}

stowage::Status GuestFile::ReadAll(std::string& text) {
  text.clear();
  char buffer[65536];
  off_t offset = 0;
  while (true) {
    ssize_t n = ::pread(fd_, buffer, sizeof buffer, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error("read", errno);
    }
    if (n == 0) return stowage::Status::Ok();
    text.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
}

stowage::Status GuestFile::Replace(const std::string& text, bool sync) {
  if (::ftruncate(fd_, 0) != 0) return Error("truncate", errno);
  return Append(text, sync);  // O_APPEND: writes at the (new) end
}

stowage::Status GuestFile::Unlink() {
  if (::unlink(path_.c_str()) != 0) return Error("remove", errno);
  return stowage::Status::Ok();
}

}  // namespace archive
