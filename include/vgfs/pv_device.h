// PvDevice: the owning handle of one open PV: its backend (the bytes,
// include/vgfs/pv_backend.h), the path it was opened by and the label that
// names it in errors.
//
// Invariant: every byte to or from the PV goes through backend(); PvDevice
// adds no I/O of its own, only the names callers already use (read_at is
// read, write_at is write, sync is flush, sync_if_written is
// flush_if_written). Opening a path gives a LocalBackend (a file or block
// device); from_backend() takes any other, e.g. a WindowBackend for a PV
// inside a partition of a disk image. The handle is movable; the backend
// stays where it is, so pointers to it (the volume layer's) survive a move.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "vgfs/pv_backend.h"
#include "vgfs/status.h"

namespace vgfs {

class PvDevice {
 public:
  PvDevice() = default;

  // `label` names the PV in errors, e.g. "PV pv0 (/srv/pv0.img)".
  static Result<PvDevice> open(const std::string& path, bool writable, std::string label);
  static PvDevice from_backend(std::unique_ptr<PvBackend> backend, std::string path, bool writable);

  // For tests: every backend open() makes from now on is passed through
  // `wrap` (FaultBackend::wrap_for_scope puts a fault injector around it).
  // Null (the default) wraps nothing, so the data path has no test seam.
  using BackendWrapper = std::unique_ptr<PvBackend> (*)(const std::string& path, std::unique_ptr<PvBackend> backend);
  static void set_backend_wrapper(BackendWrapper wrap);

  // exclusive: F_WRLCK (needs writable), otherwise F_RDLCK. Never waits.
  Status lock(bool exclusive) { return backend_->lock(exclusive); }

  Status read_at(void* buf, uint64_t length, uint64_t offset) const { return backend_->read(buf, length, offset); }
  Status write_at(const void* buf, uint64_t length, uint64_t offset) const {
    return backend_->write(buf, length, offset);
  }
  Status sync() const { return backend_->flush(); }
  // PvBackend::submit(): `done` may run on another thread, before or after
  // this returns (capabilities().async_submit says which).
  void submit(PvRequest& request) const { backend_->submit(request); }
  // Guaranteed zeros (PvBackend::zero).
  Status zero(uint64_t offset, uint64_t length, bool keep_allocated = false) const {
    return backend_->zero(offset, length, keep_allocated);
  }
  // EIO unless the range lies inside the PV as it is now (one fstat, or
  // BLKGETSIZE64, for a local PV); PvBackend::check_range.
  Status check_range(uint64_t offset, uint64_t length) const { return backend_->check_range(offset, length); }

  // Durability tracking for fsync of LV files lives in the backend: its
  // writes count themselves. note_written() is for writes that went around
  // it through local_fd() (the FUSE splice path).
  void note_written() const { backend_->note_written(); }
  Status sync_if_written() const { return backend_->flush_if_written(); }

  // The descriptor to splice to or from, or -1 where the backend has none;
  // byte `o` of the PV is byte `o + local_fd_offset` of it.
  PvCapabilities capabilities() const { return backend_->capabilities(); }

  const PvBackend& backend() const { return *backend_; }
  uint64_t size() const { return backend_->size(); }
  bool is_block_device() const { return backend_->capabilities().is_block_device; }
  bool writable() const { return writable_; }
  const std::string& path() const { return path_; }
  const std::string& label() const { return backend_->label(); }

 private:
  std::unique_ptr<PvBackend> backend_;
  bool writable_ = false;
  std::string path_;
};

}  // namespace vgfs
