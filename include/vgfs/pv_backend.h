// PvBackend: the one interface every byte to or from a PV goes through.
//
// Invariant: every read() and write() is a full transfer or an error naming
// the PV (label()) and the byte offset; a range past the end is an error,
// never a short transfer. zero() leaves bytes that read as zeros whatever
// the device does with a discard; discard() promises nothing about content.
//
// Durability: a write() is durable once a flush() that started after it
// completed has finished, or at once when it was written with kFua. The
// backend counts its own writes (write, zero, discard, copy into it), so
// flush_if_written() (fsync of an LV) flushes only a PV written since its
// last finished flush; a flush still running on another thread never counts,
// since it may have started before a write it would then miss.
//
// Thread safety: every const member may be called from any number of
// threads at once; the data path takes no lock and allocates nothing (the
// volume layer's invariant, include/vgfs/volume.h), except to build the
// message of an error.
//
// Implementations: LocalBackend (a file or block device, vgfs/local_backend.h),
// WindowBackend (a byte range of another backend: a PV inside a partition of
// a disk image, vgfs/window_backend.h), FaultBackend (a test wrapper that
// injects faults, vgfs/fault_backend.h). An NBD backend plugs in by
// implementing the protected do_* members and, to overlap requests,
// overriding submit() (docs/design.md, "PV backends").
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "vgfs/status.h"

namespace vgfs {

// What a backend can do beyond the common interface.
struct PvCapabilities {
  // A descriptor the kernel can read and write the PV's bytes through
  // (splice, copy_file_range, FUSE fd buffers), or -1. Byte `o` of the
  // backend is byte `o + local_fd_offset` of the descriptor.
  int local_fd = -1;
  uint64_t local_fd_offset = 0;
  bool is_block_device = false;
  bool can_fua = false;    // write(kFua) is a single forced-unit-access write, not write + flush
  bool can_punch = false;  // discard() deallocates (else it fails with EOPNOTSUPP)
  bool can_zero = false;   // a zeroing command cheaper than writing zeros exists
  bool has_extents = false;  // extent_at() knows holes (else everything is data)
  // submit() returns before the request completes and calls `done` from a
  // thread of the backend's own (NBD: a connection's I/O thread), so one
  // caller can keep many requests in flight. Else submit() is the default:
  // the synchronous call, then `done`, on the caller's thread.
  bool async_submit = false;
};

enum class WriteFlags : unsigned { kNone = 0, kFua = 1 };

// A run of bytes that is all data or all hole (reads as zeros, holds no
// blocks). A backend that cannot tell reports data.
struct PvExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool data = true;
};

// One request for submit(). The caller owns it and keeps it alive until
// `done` has been called.
struct PvRequest {
  enum class Op { kRead, kWrite, kFlush } op = Op::kRead;
  void* buf = nullptr;  // kRead: filled; kWrite: read from
  uint64_t length = 0;
  uint64_t offset = 0;
  WriteFlags flags = WriteFlags::kNone;
  // Called exactly once with the outcome, on any thread, before or after
  // submit() returns.
  void (*done)(PvRequest& request, Status status) = nullptr;
  void* context = nullptr;  // the caller's
};

class PvBackend {
 public:
  explicit PvBackend(std::string label) : label_(std::move(label)) {}
  virtual ~PvBackend() = default;
  PvBackend(const PvBackend&) = delete;
  PvBackend& operator=(const PvBackend&) = delete;

  // Names the PV in errors, e.g. "PV pv0 (/srv/pv0.img)".
  const std::string& label() const { return label_; }
  // Bytes, as of opening.
  virtual uint64_t size() const = 0;
  virtual PvCapabilities capabilities() const = 0;

  Status read(void* buf, uint64_t length, uint64_t offset) const { return do_read(buf, length, offset); }
  Status write(const void* buf, uint64_t length, uint64_t offset, WriteFlags flags = WriteFlags::kNone) const;
  Status flush() const;
  // flush() unless no write completed since the start of the last finished
  // flush (the fsync of an LV).
  Status flush_if_written() const;
  // For writes that bypass write() through capabilities().local_fd (the
  // FUSE write path splices into the descriptor): counts one, so the next
  // flush_if_written() flushes.
  void note_written() const { written_.fetch_add(1, std::memory_order_acq_rel); }

  // Makes a range read as zeros, guaranteed (see do_zero). `keep_allocated`
  // never deallocates, so a fully allocated image stays allocated.
  Status zero(uint64_t offset, uint64_t length, bool keep_allocated = false) const;
  // Deallocates a range without promising anything about its content
  // afterwards (an advisory discard); EOPNOTSUPP where it cannot.
  Status discard(uint64_t offset, uint64_t length) const;
  // Only the device's zeroing command (capabilities().can_zero): EOPNOTSUPP
  // where there is none, or where it does not apply to this range.
  Status write_zeroes(uint64_t offset, uint64_t length) const;

  // The run of data or hole that begins at `offset`, at most `length` long
  // (length > 0). A hole run is exact; a data run may reach past the end of
  // the data (up to `length`), since finding that end can cost a scan of the
  // file: callers that walk a device ask for bounded lengths. Never fails
  // for lack of knowledge: it reports data.
  virtual Result<PvExtent> extent_at(uint64_t offset, uint64_t length) const;
  // EIO unless [offset, offset+length) lies inside the PV as it is now: a PV
  // truncated or shrunk under the mount must fail I/O, not return short
  // reads or grow again. A shrink racing with the I/O that follows is not
  // caught.
  virtual Status check_range(uint64_t offset, uint64_t length) const = 0;
  // Takes the PV for this process: exclusive for writing, else shared.
  // Never waits. A backend without locks of its own succeeds.
  virtual Status lock(bool exclusive) const;
  // How many times this backend may have lost writes it had acknowledged
  // but not yet made durable (an NBD connection that died holding them: the
  // server may drop them with its session). It only grows. A caller that
  // keeps a durable checkpoint of what it wrote (a migration job) compares
  // it across a flush: a changed count means everything written since the
  // last flush that found it unchanged must be written again. Local files
  // never lose acknowledged writes while the system runs: always 0.
  virtual uint64_t write_losses() const { return 0; }
  // Takes the exclusive lease kept on the PV itself, `offset` being the
  // kLeaseSize bytes its format leaves for one (VgFormat::lease_offset),
  // and keeps it while the backend lives; EBUSY naming the holder when
  // another live vgfs has it. Only a backend that other hosts can reach
  // (NBD) has one: the default does nothing.
  virtual Status take_lease(uint64_t offset) const {
    (void)offset;
    return Status::Ok();
  }

  // Starts a read, write or flush and reports through request.done. The
  // default runs it synchronously on the calling thread; a backend with a
  // queue of its own (NBD) overrides this to complete later, so one thread
  // can keep several requests in flight.
  virtual void submit(PvRequest& request) const;

 protected:
  // The primitives an implementation provides. Offsets are the caller's;
  // bounds are the implementation's to check.
  virtual Status do_read(void* buf, uint64_t length, uint64_t offset) const = 0;
  // `fua` only when capabilities().can_fua: the bytes must be durable when
  // it returns.
  virtual Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const = 0;
  virtual Status do_flush() const = 0;
  // Default: EOPNOTSUPP.
  virtual Status do_discard(uint64_t offset, uint64_t length) const;
  // A zeroing command that guarantees zeros (BLKZEROOUT, ZERO_RANGE, NBD
  // WRITE_ZEROES); default EOPNOTSUPP.
  virtual Status do_write_zeroes(uint64_t offset, uint64_t length) const;
  // Default: check_range, then (unless keep_allocated or a block device) a
  // discard verified with extent_at(), since a discard is only advisory on
  // some file systems (a FUSE file such as nbdfuse's turns it into an NBD
  // trim); else do_write_zeroes(); else written zeros.
  virtual Status do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const;

 private:
  std::string label_;
  mutable std::atomic<uint64_t> written_{0};  // writes completed
  mutable std::atomic<uint64_t> flushed_{0};  // `written_` as of the start of the last finished flush
};

// Copies `length` bytes from `src` to `dst`: copy_file_range where both have
// a local descriptor, read and write through a buffer otherwise (or where
// copy_file_range stops early), through a buffer kept per thread. Errors
// name the failing side.
Status copy_between(const PvBackend& src, uint64_t src_offset, const PvBackend& dst, uint64_t dst_offset,
                    uint64_t length);

}  // namespace vgfs
