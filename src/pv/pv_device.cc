// Open, lock and transfer on one PV (include/vgfs/pv_device.h).
#include "vgfs/pv_device.h"

#include "vgfs/fault_injector.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

namespace {
// The fault a test asked for, if a FaultInjector is installed (one relaxed
// load otherwise).
Fault fault_for(FaultOp op, const std::string& path, uint64_t offset, uint64_t length) {
  FaultInjector* f = FaultInjector::active();
  return f ? f->check(op, path, offset, length) : Fault{};
}
}  // namespace

Status PvDevice::read_at(void* buf, uint64_t length, uint64_t offset) const {
  auto* p = static_cast<char*>(buf);
  uint64_t limit = UINT64_MAX;  // bytes readable before an injected end of file
  if (Fault f = fault_for(FaultOp::kRead, path_, offset, length); f.fire) {
    if (f.kind == FaultKind::kError)
      return Status::Error(f.error, fmt::format("{}: read at byte {} failed: {}", label_, offset, std::strerror(f.error)));
    limit = f.keep;
  }
  while (length > 0) {
    ssize_t n = limit == 0 ? 0 : ::pread(fd_, p, std::min(length, limit), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(EIO, fmt::format("{}: read at byte {} failed: {}", label_, offset, std::strerror(errno)));
    if (n == 0)
      return Status::Error(EIO, fmt::format("{}: read at byte {} is past the end (has the PV shrunk?)", label_, offset));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
    if (limit != UINT64_MAX) limit -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status PvDevice::write_at(const void* buf, uint64_t length, uint64_t offset) const {
  auto* p = static_cast<const char*>(buf);
  const uint64_t start = offset;
  Fault f = fault_for(FaultOp::kWrite, path_, offset, length);
  // A torn write puts its first `keep` bytes on the PV, then fails.
  if (f.fire) length = f.kind == FaultKind::kTear ? std::min(f.keep, length) : 0;
  while (length > 0) {
    ssize_t n = ::pwrite(fd_, p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(EIO, fmt::format("{}: write at byte {} failed: {}", label_, offset, std::strerror(errno)));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  if (f.fire) return Status::Error(EIO, fmt::format("{}: write at byte {} failed: {}", label_, start, std::strerror(f.error)));
  return Status::Ok();
}

Status PvDevice::sync() const {
  if (Fault f = fault_for(FaultOp::kSync, path_, 0, 0); f.fire)
    return Status::Error(EIO, fmt::format("{}: fdatasync failed: {}", label_, std::strerror(f.error)));
  if (::fdatasync(fd_) != 0)
    return Status::Error(EIO, fmt::format("{}: fdatasync failed: {}", label_, std::strerror(errno)));
  return Status::Ok();
}

Status PvDevice::check_range(uint64_t offset, uint64_t length) const {
  uint64_t now = 0;
  if (block_device_) {
    if (ioctl(fd_, BLKGETSIZE64, &now) != 0)
      return Status::Error(EIO, fmt::format("{}: cannot read the device size: {}", label_, std::strerror(errno)));
  } else {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return Status::Error(EIO, fmt::format("{}: cannot stat: {}", label_, std::strerror(errno)));
    now = static_cast<uint64_t>(st.st_size);
  }
  if (offset > now || length > now - offset)
    return Status::Error(EIO, fmt::format("{}: bytes {}-{} lie past its end: the PV is {} bytes now, {} when it was opened",
                                          label_, offset, offset + length, now, size_));
  return Status::Ok();
}

Status PvDevice::punch(uint64_t offset, uint64_t length) const {
  if (Fault f = fault_for(FaultOp::kPunch, path_, offset, length); f.fire) {
    if (f.kind == FaultKind::kNoop) return Status::Ok();
    return Status::Error(f.error, fmt::format("{}: discard at byte {} failed: {}", label_, offset, std::strerror(f.error)));
  }
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
    return Status::Ok();
  const int err = errno;
  return Status::Error(err == EOPNOTSUPP ? EOPNOTSUPP : EIO,
                       fmt::format("{}: discard at byte {} failed: {}", label_, offset, std::strerror(err)));
}

Status PvDevice::zero(uint64_t offset, uint64_t length, bool keep_allocated) const {
  if (length == 0) return Status::Ok();
  // Zeroing must never grow a PV that shrank (written zeros would).
  VGFS_RETURN_IF_ERROR(check_range(offset, length));
  if (block_device_) {
    // The kernel guarantees zeros: it writes them where the device has no
    // zeroing command, unlike BLKDISCARD or a punch.
    if (offset % 512 == 0 && length % 512 == 0) {
      uint64_t range[2] = {offset, length};
      if (ioctl(fd_, BLKZEROOUT, range) == 0) return Status::Ok();
    }
  } else {
    // A hole reads as zeros only where the file system keeps holes; check
    // that this one did (an advisory punch leaves data behind).
    if (!keep_allocated && punch(offset, length).ok()) {
      off_t data = lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
      if ((data < 0 && errno == ENXIO) || (data >= 0 && static_cast<uint64_t>(data) >= offset + length))
        return Status::Ok();
    }
    // Zeros by contract, whatever the file system does with the blocks.
    if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0)
      return Status::Ok();
  }
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
