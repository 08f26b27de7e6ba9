// PvDevice: one open PV image file or block device.
//
// Invariant: a PvDevice owns its file descriptor (closed on destruction) and
// knows the device size; every read_at/write_at is a full transfer or an
// error naming the PV and offset, and zero() leaves bytes that read as zeros
// whatever the device does with a discard. Every data operation passes the
// FaultInjector seam (include/vgfs/fault_injector.h) when a test installs one. lock() takes an OFD lock on the whole
// device, which belongs to the open file description: it survives fork (the
// daemon keeps it) and conflicts with any other open of the same PV.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "vgfs/status.h"

namespace vgfs {

class PvDevice {
 public:
  PvDevice() = default;
  PvDevice(PvDevice&& other) noexcept;
  PvDevice& operator=(PvDevice&& other) noexcept;
  PvDevice(const PvDevice&) = delete;
  PvDevice& operator=(const PvDevice&) = delete;
  ~PvDevice();

  // `label` names the PV in errors, e.g. "PV pv0 (/srv/pv0.img)".
  static Result<PvDevice> open(const std::string& path, bool writable, std::string label);

  // exclusive: F_WRLCK (needs writable), otherwise F_RDLCK. Never waits.
  Status lock(bool exclusive);

  Status read_at(void* buf, uint64_t length, uint64_t offset) const;
  Status write_at(const void* buf, uint64_t length, uint64_t offset) const;
  Status sync() const;  // fdatasync
  // Makes a byte range read as zeros, guaranteed: a block device gets
  // BLKZEROOUT (the kernel writes zeros where the device cannot); a file gets
  // a hole punch that is then verified with SEEK_DATA, since a punch is only
  // advisory on some file systems (a FUSE file such as nbdfuse's turns it
  // into an NBD trim), else FALLOC_FL_ZERO_RANGE, else written zeros.
  // `keep_allocated` skips the punch (ZERO_RANGE first), so a fully
  // allocated image stays allocated.
  Status zero(uint64_t offset, uint64_t length, bool keep_allocated = false) const;
  // Deallocates a range without promising anything about its content
  // afterwards (an advisory discard); EOPNOTSUPP where the file cannot punch.
  Status punch(uint64_t offset, uint64_t length) const;
  // EIO unless [offset, offset+length) lies inside the device as it is now:
  // a PV image truncated or a block device shrunk under the mount must fail
  // I/O, not return short reads or grow the image again. One fstat (or
  // BLKGETSIZE64); a shrink racing with the I/O that follows is not caught.
  Status check_range(uint64_t offset, uint64_t length) const;

  // Durability tracking for fsync of LV files. note_written() after every
  // completed data write; sync_if_written() fdatasyncs unless a sync that
  // started after every write completed before this call has finished. A
  // sync still running on another thread never counts, since it may have
  // started before a write it would then miss.
  void note_written() const { counters_->written.fetch_add(1, std::memory_order_acq_rel); }
  Status sync_if_written() const;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  bool is_block_device() const { return block_device_; }
  bool writable() const { return writable_; }
  const std::string& path() const { return path_; }
  const std::string& label() const { return label_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  bool block_device_ = false;
  bool writable_ = false;
  std::string path_;
  std::string label_;
  struct Counters {
    std::atomic<uint64_t> written{0};  // data writes completed
    std::atomic<uint64_t> synced{0};   // `written` as of the start of the last finished fdatasync
  };
  std::unique_ptr<Counters> counters_ = std::make_unique<Counters>();
};

}  // namespace vgfs
