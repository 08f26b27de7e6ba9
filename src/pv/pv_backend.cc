// The parts of every PV backend: durability bookkeeping, guaranteed zeroing
// and copying (include/vgfs/pv_backend.h).
#include "vgfs/pv_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace vgfs {

Status PvBackend::write(const void* buf, uint64_t length, uint64_t offset, WriteFlags flags) const {
  const bool fua = flags == WriteFlags::kFua;
  const bool native_fua = fua && capabilities().can_fua;
  VGFS_RETURN_IF_ERROR(do_write(buf, length, offset, native_fua));
  note_written();
  if (fua && !native_fua) return flush();
  return Status::Ok();
}

Status PvBackend::flush() const {
  // Every write counted before the flush starts is durable when it ends.
  const uint64_t seen = written_.load(std::memory_order_acquire);
  VGFS_RETURN_IF_ERROR(do_flush());
  uint64_t prev = flushed_.load(std::memory_order_relaxed);
  while (prev < seen && !flushed_.compare_exchange_weak(prev, seen, std::memory_order_acq_rel)) {
  }
  return Status::Ok();
}

Status PvBackend::flush_if_written() const {
  if (flushed_.load(std::memory_order_acquire) >= written_.load(std::memory_order_acquire)) return Status::Ok();
  return flush();
}

Status PvBackend::zero(uint64_t offset, uint64_t length, bool keep_allocated) const {
  if (length == 0) return Status::Ok();
  VGFS_RETURN_IF_ERROR(do_zero(offset, length, keep_allocated));
  note_written();
  return Status::Ok();
}

Status PvBackend::discard(uint64_t offset, uint64_t length) const {
  if (length == 0) return Status::Ok();
  VGFS_RETURN_IF_ERROR(do_discard(offset, length));
  note_written();
  return Status::Ok();
}

Status PvBackend::write_zeroes(uint64_t offset, uint64_t length) const {
  if (length == 0) return Status::Ok();
  VGFS_RETURN_IF_ERROR(do_write_zeroes(offset, length));
  note_written();
  return Status::Ok();
}

Result<PvExtent> PvBackend::extent_at(uint64_t offset, uint64_t length) const {
  return PvExtent{offset, length, true};
}

Status PvBackend::lock(bool) const { return Status::Ok(); }

void PvBackend::submit(PvRequest& r) const {
  Status st;
  switch (r.op) {
    case PvRequest::Op::kRead: st = read(r.buf, r.length, r.offset); break;
    case PvRequest::Op::kWrite: st = write(r.buf, r.length, r.offset, r.flags); break;
    case PvRequest::Op::kFlush: st = flush(); break;
  }
  r.done(r, std::move(st));
}

Status PvBackend::do_discard(uint64_t offset, uint64_t) const {
  return Status::Error(EOPNOTSUPP, fmt::format("{}: discard at byte {} failed: {}", label(), offset,
                                               std::strerror(EOPNOTSUPP)));
}

Status PvBackend::do_write_zeroes(uint64_t offset, uint64_t) const {
  return Status::Error(EOPNOTSUPP, fmt::format("{}: zeroing at byte {} failed: {}", label(), offset,
                                               std::strerror(EOPNOTSUPP)));
}

Status PvBackend::do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const {
  // Zeroing must never grow a PV that shrank (written zeros would).
  VGFS_RETURN_IF_ERROR(check_range(offset, length));
  // A block device gets its zeroing command first: unlike a discard, the
  // kernel writes zeros where the device has none. A hole in a file reads
  // as zeros only where the file system keeps holes: check that this one did.
  if (!keep_allocated && !capabilities().is_block_device && do_discard(offset, length).ok()) {
    Result<PvExtent> e = extent_at(offset, length);
    if (e.ok() && !e->data && e->length >= length) return Status::Ok();
  }
  if (do_write_zeroes(offset, length).ok()) return Status::Ok();
  std::vector<char> zeros(std::min<uint64_t>(length, 1 << 20), 0);
  for (uint64_t done = 0; done < length;) {
    uint64_t n = std::min<uint64_t>(zeros.size(), length - done);
    VGFS_RETURN_IF_ERROR(do_write(zeros.data(), n, offset + done, false));
    done += n;
  }
  return Status::Ok();
}

Status copy_between(const PvBackend& src, uint64_t src_offset, const PvBackend& dst, uint64_t dst_offset,
                    uint64_t length) {
  const PvCapabilities from = src.capabilities(), to = dst.capabilities();
  uint64_t done = 0;
  if (from.local_fd >= 0 && to.local_fd >= 0) {
    loff_t in = static_cast<loff_t>(src_offset + from.local_fd_offset);
    loff_t out = static_cast<loff_t>(dst_offset + to.local_fd_offset);
    while (done < length) {
      ssize_t n = copy_file_range(from.local_fd, &in, to.local_fd, &out, length - done, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // not supported here, or an error the plain path reports
      done += static_cast<uint64_t>(n);
    }
    if (done > 0) dst.note_written();
  }
  // Read and write, which name the failing side, through the thread's own
  // buffer (the copier's), kept between calls: a fresh 256 KiB allocation
  // per region costs an mmap and its page faults. One synchronous request
  // each way: on a small machine, pieces in flight through submit() cost
  // more in thread hand-offs than they win (docs/nbd.md, "Measured").
  thread_local std::vector<char> buf;
  if (done < length) {
    const uint64_t left = length - done;
    if (buf.size() < left) buf.resize(left);
    VGFS_RETURN_IF_ERROR(src.read(buf.data(), left, src_offset + done));
    VGFS_RETURN_IF_ERROR(dst.write(buf.data(), left, dst_offset + done));
  }
  return Status::Ok();
}

}  // namespace vgfs
