// Open, lock and transfer on one PV (include/vgfs/pv_device.h).
#include "vgfs/pv_device.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace vgfs {

PvDevice::PvDevice(PvDevice&& o) noexcept { *this = std::move(o); }

PvDevice& PvDevice::operator=(PvDevice&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    block_device_ = o.block_device_;
    writable_ = o.writable_;
    path_ = std::move(o.path_);
    label_ = std::move(o.label_);
    counters_ = std::move(o.counters_);
  }
  return *this;
}

PvDevice::~PvDevice() {
  if (fd_ >= 0) ::close(fd_);
}

Result<PvDevice> PvDevice::open(const std::string& path, bool writable, std::string label) {
  PvDevice d;
  d.path_ = path;
  d.label_ = std::move(label);
  d.writable_ = writable;
  // The path may come from disk (a PV's last seen path): look before
  // opening, since opening a FIFO blocks and opening a device node can have
  // side effects (a tape rewinds, a terminal becomes ours). O_NONBLOCK and
  // O_NOCTTY cover the race with a swap after the stat; the fstat then proves
  // the file opened is the one looked at.
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0)
    return Status::Error(errno, fmt::format("{}: cannot open: {}", d.label_, std::strerror(errno)));
  if (!S_ISREG(before.st_mode) && !S_ISBLK(before.st_mode))
    return Status::Error(EINVAL, fmt::format("{}: not a regular file or block device", d.label_));
  d.fd_ = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (d.fd_ < 0)
    return Status::Error(errno, fmt::format("{}: cannot open: {}", d.label_, std::strerror(errno)));
  struct stat st {};
  if (fstat(d.fd_, &st) != 0)
    return Status::Error(errno, fmt::format("{}: cannot stat: {}", d.label_, std::strerror(errno)));
  if (st.st_dev != before.st_dev || st.st_ino != before.st_ino || (st.st_mode & S_IFMT) != (before.st_mode & S_IFMT))
    return Status::Error(EAGAIN, fmt::format("{}: the file changed while it was being opened", d.label_));
  // Regular files and block devices ignore O_NONBLOCK for data, but clear it
  // so no layer below ever sees EAGAIN.
  int flags = fcntl(d.fd_, F_GETFL);
  if (flags < 0 || fcntl(d.fd_, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return Status::Error(errno, fmt::format("{}: cannot set file flags: {}", d.label_, std::strerror(errno)));
  if (S_ISBLK(st.st_mode)) {
    d.block_device_ = true;
    if (ioctl(d.fd_, BLKGETSIZE64, &d.size_) != 0)
      return Status::Error(errno, fmt::format("{}: cannot read the device size: {}", d.label_, std::strerror(errno)));
  } else if (S_ISREG(st.st_mode)) {
    d.size_ = static_cast<uint64_t>(st.st_size);
  } else {
    return Status::Error(EINVAL, fmt::format("{}: not a regular file or block device", d.label_));
  }
  return d;
}

Status PvDevice::lock(bool exclusive) {
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd_, F_OFD_SETLK, &fl) == 0) return Status::Ok();
  if (errno == EAGAIN || errno == EACCES)
    return Status::Error(EBUSY, fmt::format("{}: locked by another process (is the VG mounted already?)", label_));
  return Status::Error(errno, fmt::format("{}: cannot lock: {}", label_, std::strerror(errno)));
}

Status PvDevice::read_at(void* buf, uint64_t length, uint64_t offset) const {
  auto* p = static_cast<char*>(buf);
  while (length > 0) {
    ssize_t n = ::pread(fd_, p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(EIO, fmt::format("{}: read at byte {} failed: {}", label_, offset, std::strerror(errno)));
    if (n == 0) return Status::Error(EIO, fmt::format("{}: read at byte {} is past the end", label_, offset));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status PvDevice::write_at(const void* buf, uint64_t length, uint64_t offset) const {
  auto* p = static_cast<const char*>(buf);
  while (length > 0) {
    ssize_t n = ::pwrite(fd_, p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(EIO, fmt::format("{}: write at byte {} failed: {}", label_, offset, std::strerror(errno)));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status PvDevice::sync() const {
  if (::fdatasync(fd_) != 0)
    return Status::Error(EIO, fmt::format("{}: fdatasync failed: {}", label_, std::strerror(errno)));
  return Status::Ok();
}

Status PvDevice::zero(uint64_t offset, uint64_t length) const {
  for (int mode : {FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE})
    if (fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return Status::Ok();
  std::vector<char> zeros(std::min<uint64_t>(length, 1 << 20), 0);
  for (uint64_t done = 0; done < length;) {
    uint64_t n = std::min<uint64_t>(zeros.size(), length - done);
    VGFS_RETURN_IF_ERROR(write_at(zeros.data(), n, offset + done));
    done += n;
  }
  return Status::Ok();
}

Status PvDevice::sync_if_written() const {
  const uint64_t seen = counters_->written.load(std::memory_order_acquire);
  if (counters_->synced.load(std::memory_order_acquire) >= seen) return Status::Ok();
  VGFS_RETURN_IF_ERROR(sync());
  uint64_t prev = counters_->synced.load(std::memory_order_relaxed);
  while (prev < seen && !counters_->synced.compare_exchange_weak(prev, seen, std::memory_order_acq_rel)) {
  }
  return Status::Ok();
}

}  // namespace vgfs
