// LVM2's VG lock file and O_EXCL claims on block devices (include/vgfs/host_locks.h).
#include "vgfs/host_locks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "vgfs/escape.h"

namespace vgfs {

HostLocks& HostLocks::operator=(HostLocks&& other) noexcept {
  if (this != &other) {
    release();
    lock_file_ = std::move(other.lock_file_);
    lock_fd_ = other.lock_fd_;
    claims_ = std::move(other.claims_);
    other.lock_fd_ = -1;
    other.claims_.clear();
  }
  return *this;
}

Result<HostLocks> HostLocks::acquire(const std::string& lock_dir, const std::string& vg_name, bool exclusive,
                                     const std::vector<std::string>& devices) {
  HostLocks held;
  std::error_code ec;
  std::filesystem::create_directories(lock_dir, ec);
  if (ec)
    return Status::Error(ec.value(), fmt::format("LVM2 lock folder {}: cannot create it: {}", printable(lock_dir),
                                                 ec.message()));
  ::chmod(lock_dir.c_str(), 0700);  // as LVM2 creates it; best effort on an existing folder
  held.lock_file_ = lock_dir + "/V_" + vg_name;
  // LVM2 unlinks a lock file when it lets go and nobody else holds it, so
  // a lock taken on a file that was unlinked meanwhile is no lock: retry
  // until the locked file is the one at the path (as LVM2's own locking).
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(held.lock_file_.c_str(), O_CREAT | O_APPEND | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
      return Status::Error(errno, fmt::format("LVM2 lock file {}: cannot open: {}", printable(held.lock_file_),
                                              std::strerror(errno)));
    if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        return Status::Error(EBUSY, fmt::format("VG {} is locked by another process (LVM2's lock file {} is held: "
                                                "an LVM2 command or another mount of it is running)",
                                                printable(vg_name), printable(held.lock_file_)));
      return Status::Error(err, fmt::format("LVM2 lock file {}: cannot lock: {}", printable(held.lock_file_),
                                            std::strerror(err)));
    }
    struct stat by_fd {}, by_path {};
    if (::fstat(fd, &by_fd) == 0 && ::stat(held.lock_file_.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
        by_fd.st_dev == by_path.st_dev) {
      held.lock_fd_ = fd;
      break;
    }
    ::close(fd);
    if (attempt == 100)
      return Status::Error(EAGAIN, fmt::format("LVM2 lock file {} keeps being replaced", printable(held.lock_file_)));
  }
  std::set<std::string> seen;
  for (const std::string& path : devices) {
    struct stat st {};
    if (!exclusive || !seen.insert(path).second || ::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) continue;
    int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int err = errno;
      return Status::Error(err == EBUSY ? EBUSY : err,
                           fmt::format("{}: {}", printable(path),
                                       err == EBUSY ? "the block device is in use (mounted, opened exclusively by "
                                                      "another program, or held by device-mapper for an active "
                                                      "LV): deactivate or unmount it first"
                                                    : std::strerror(err)));
    }
    held.claims_.push_back(fd);
  }
  return held;
}

void HostLocks::release() {
  for (int fd : claims_) ::close(fd);
  claims_.clear();
  if (lock_fd_ < 0) return;
  // Unlink the file only when nobody else holds it (LVM2 does the same).
  struct stat by_fd {}, by_path {};
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0 && ::fstat(lock_fd_, &by_fd) == 0 &&
      ::stat(lock_file_.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev)
    ::unlink(lock_file_.c_str());
  ::close(lock_fd_);
  lock_fd_ = -1;
}

Status check_not_in_device_mapper(const std::string& sysfs_root, const std::string& vg_id, const std::string& vg_name) {
  const std::string want = "LVM-" + vg_id;
  std::error_code ec;
  std::filesystem::directory_iterator it(sysfs_root + "/block", ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string dev = it->path().filename().string();
    if (dev.rfind("dm-", 0) != 0) continue;
    std::ifstream uuid_file(it->path() / "dm" / "uuid");
    std::string uuid;
    if (!std::getline(uuid_file, uuid) || uuid.rfind(want, 0) != 0) continue;
    std::ifstream name_file(it->path() / "dm" / "name");
    std::string name;
    std::getline(name_file, name);
    return Status::Error(EBUSY, fmt::format("VG {} is active in this host's device-mapper ({} is its LV {}); "
                                            "deactivate it first (vgchange -an {})",
                                            printable(vg_name), dev, printable(name.empty() ? "?" : name),
                                            printable(vg_name)));
  }
  return Status::Ok();
}

}  // namespace vgfs
