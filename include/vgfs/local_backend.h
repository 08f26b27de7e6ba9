// LocalBackend: a PV that is a regular file or a block device of this host.
//
// Invariant: owns its file descriptor (closed on destruction), opened
// without following a swap of the path between the look and the open, with
// O_NONBLOCK cleared; the descriptor is offered as capabilities().local_fd
// so the FUSE layer can splice and the copier can copy_file_range. lock()
// takes an OFD lock on the whole device, which belongs to the open file
// description: it survives fork (the daemon keeps it) and conflicts with any
// other open of the same PV. Everything else is include/vgfs/pv_backend.h.
#pragma once

#include <memory>
#include <string>

#include "vgfs/pv_backend.h"

namespace vgfs {

class LocalBackend final : public PvBackend {
 public:
  // `label` names the PV in errors. Refuses anything but a regular file or
  // a block device (a FIFO would block, a device node may have side effects).
  static Result<std::unique_ptr<LocalBackend>> open(const std::string& path, bool writable, std::string label);
  ~LocalBackend() override;

  uint64_t size() const override { return size_; }
  PvCapabilities capabilities() const override;
  Result<PvExtent> extent_at(uint64_t offset, uint64_t length) const override;
  // One fstat (or BLKGETSIZE64).
  Status check_range(uint64_t offset, uint64_t length) const override;
  // exclusive: F_WRLCK (needs writable), otherwise F_RDLCK.
  Status lock(bool exclusive) const override;

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override;
  // fua: pwritev2 with RWF_DSYNC.
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const override;
  Status do_flush() const override;  // fdatasync
  Status do_discard(uint64_t offset, uint64_t length) const override;  // FALLOC_FL_PUNCH_HOLE
  // A block device: BLKZEROOUT (aligned to 512 bytes only); a file:
  // FALLOC_FL_ZERO_RANGE.
  Status do_write_zeroes(uint64_t offset, uint64_t length) const override;

 private:
  explicit LocalBackend(std::string label) : PvBackend(std::move(label)) {}
  int fd_ = -1;
  uint64_t size_ = 0;
  bool block_device_ = false;
};

}  // namespace vgfs
