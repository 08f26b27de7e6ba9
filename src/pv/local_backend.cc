// A PV on a local file or block device (include/vgfs/local_backend.h).
#include "vgfs/local_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vgfs {

LocalBackend::~LocalBackend() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<LocalBackend>> LocalBackend::open(const std::string& path, bool writable, std::string label) {
  std::unique_ptr<LocalBackend> d(new LocalBackend(std::move(label)));
  // The path may come from disk (a PV's last seen path): look before
  // opening, since opening a FIFO blocks and opening a device node can have
  // side effects (a tape rewinds, a terminal becomes ours). O_NONBLOCK and
  // O_NOCTTY cover the race with a swap after the stat; the fstat then proves
  // the file opened is the one looked at.
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0)
    return Status::Error(errno, fmt::format("{}: cannot open: {}", d->label(), std::strerror(errno)));
  if (!S_ISREG(before.st_mode) && !S_ISBLK(before.st_mode))
    return Status::Error(EINVAL, fmt::format("{}: not a regular file or block device", d->label()));
  d->fd_ = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (d->fd_ < 0)
    return Status::Error(errno, fmt::format("{}: cannot open: {}", d->label(), std::strerror(errno)));
  struct stat st {};
  if (fstat(d->fd_, &st) != 0)
    return Status::Error(errno, fmt::format("{}: cannot stat: {}", d->label(), std::strerror(errno)));
  if (st.st_dev != before.st_dev || st.st_ino != before.st_ino || (st.st_mode & S_IFMT) != (before.st_mode & S_IFMT))
    return Status::Error(EAGAIN, fmt::format("{}: the file changed while it was being opened", d->label()));
  // Regular files and block devices ignore O_NONBLOCK for data, but clear it
  // so no layer below ever sees EAGAIN.
  int flags = fcntl(d->fd_, F_GETFL);
  if (flags < 0 || fcntl(d->fd_, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return Status::Error(errno, fmt::format("{}: cannot set file flags: {}", d->label(), std::strerror(errno)));
  if (S_ISBLK(st.st_mode)) {
    d->block_device_ = true;
    if (ioctl(d->fd_, BLKGETSIZE64, &d->size_) != 0)
      return Status::Error(errno, fmt::format("{}: cannot read the device size: {}", d->label(), std::strerror(errno)));
  } else if (S_ISREG(st.st_mode)) {
    d->size_ = static_cast<uint64_t>(st.st_size);
  } else {
    return Status::Error(EINVAL, fmt::format("{}: not a regular file or block device", d->label()));
  }
  return d;
}

PvCapabilities LocalBackend::capabilities() const {
  PvCapabilities c;
  c.local_fd = fd_;
  c.is_block_device = block_device_;
  c.can_fua = true;
  c.can_punch = true;
  c.can_zero = true;
  c.has_extents = !block_device_;
  return c;
}

Status LocalBackend::lock(bool exclusive) const {
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd_, F_OFD_SETLK, &fl) == 0) return Status::Ok();
  if (errno == EAGAIN || errno == EACCES)
    return Status::Error(EBUSY, fmt::format("{}: locked by another process (is the VG mounted already?)", label()));
  return Status::Error(errno, fmt::format("{}: cannot lock: {}", label(), std::strerror(errno)));
}

Status LocalBackend::do_read(void* buf, uint64_t length, uint64_t offset) const {
  auto* p = static_cast<char*>(buf);
  while (length > 0) {
    ssize_t n = ::pread(fd_, p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(EIO, fmt::format("{}: read at byte {} failed: {}", label(), offset, std::strerror(errno)));
    if (n == 0)
      return Status::Error(EIO, fmt::format("{}: read at byte {} is past the end (has the PV shrunk?)", label(), offset));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status LocalBackend::do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const {
  auto* p = static_cast<const char*>(buf);
  while (length > 0) {
    iovec v{const_cast<char*>(p), length};
    ssize_t n = fua ? ::pwritev2(fd_, &v, 1, static_cast<off_t>(offset), RWF_DSYNC)
                    : ::pwrite(fd_, p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(EIO, fmt::format("{}: write at byte {} failed: {}", label(), offset, std::strerror(errno)));
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status LocalBackend::do_flush() const {
  if (::fdatasync(fd_) != 0)
    return Status::Error(EIO, fmt::format("{}: fdatasync failed: {}", label(), std::strerror(errno)));
  return Status::Ok();
}

Status LocalBackend::check_range(uint64_t offset, uint64_t length) const {
  uint64_t now = 0;
  if (block_device_) {
    if (ioctl(fd_, BLKGETSIZE64, &now) != 0)
      return Status::Error(EIO, fmt::format("{}: cannot read the device size: {}", label(), std::strerror(errno)));
  } else {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return Status::Error(EIO, fmt::format("{}: cannot stat: {}", label(), std::strerror(errno)));
    now = static_cast<uint64_t>(st.st_size);
  }
  if (offset > now || length > now - offset)
    return Status::Error(EIO, fmt::format("{}: bytes {}-{} lie past its end: the PV is {} bytes now, {} when it was opened",
                                          label(), offset, offset + length, now, size_));
  return Status::Ok();
}

Status LocalBackend::do_discard(uint64_t offset, uint64_t length) const {
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
    return Status::Ok();
  const int err = errno;
  return Status::Error(err == EOPNOTSUPP ? EOPNOTSUPP : EIO,
                       fmt::format("{}: discard at byte {} failed: {}", label(), offset, std::strerror(err)));
}

Status LocalBackend::do_write_zeroes(uint64_t offset, uint64_t length) const {
  if (block_device_) {
    // The kernel guarantees zeros: it writes them where the device has no
    // zeroing command, unlike BLKDISCARD or a punch.
    if (offset % 512 == 0 && length % 512 == 0) {
      uint64_t range[2] = {offset, length};
      if (ioctl(fd_, BLKZEROOUT, range) == 0) return Status::Ok();
    } else {
      errno = EOPNOTSUPP;
    }
  } else if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(length)) == 0) {
    return Status::Ok();  // zeros by contract, whatever the file system does with the blocks
  }
  const int err = errno;
  return Status::Error(err, fmt::format("{}: zeroing at byte {} failed: {}", label(), offset, std::strerror(err)));
}

Result<PvExtent> LocalBackend::extent_at(uint64_t offset, uint64_t length) const {
  if (block_device_) return PvExtent{offset, length, true};
  // An error other than "no data after offset" reports data: a copy or a
  // written zero is never wrong, a skipped one may be.
  off_t data = lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) return PvExtent{offset, length, errno != ENXIO};
  if (static_cast<uint64_t>(data) > offset)
    return PvExtent{offset, std::min(static_cast<uint64_t>(data) - offset, length), false};
  off_t hole = lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
  if (hole < 0 || static_cast<uint64_t>(hole) <= offset) return PvExtent{offset, length, true};
  return PvExtent{offset, std::min(static_cast<uint64_t>(hole) - offset, length), true};
}

}  // namespace vgfs
