// WindowBackend: a byte range [offset, offset+length) of another backend,
// seen as a PV of its own (a PV inside a partition of a disk image).
//
// Invariant: no operation reaches a byte of the underlying backend outside
// the window: every offset and length is checked against the window before
// it is translated, with arithmetic that cannot overflow, and a range that
// does not fit is an EIO error naming the window and the offset. The
// underlying backend is shared (several partitions of one image), so a
// flush of one window flushes the whole image; durability bookkeeping is
// per window.
#pragma once

#include <memory>

#include "vgfs/pv_backend.h"

namespace vgfs {

class WindowBackend final : public PvBackend {
 public:
  // EINVAL unless the window lies inside `base` as opened.
  static Result<std::unique_ptr<WindowBackend>> open(std::shared_ptr<const PvBackend> base, uint64_t offset,
                                                     uint64_t length, std::string label);

  uint64_t size() const override { return length_; }
  PvCapabilities capabilities() const override;
  Result<PvExtent> extent_at(uint64_t offset, uint64_t length) const override;
  Status check_range(uint64_t offset, uint64_t length) const override;
  Status lock(bool exclusive) const override { return base_->lock(exclusive); }
  uint64_t write_losses() const override { return base_->write_losses(); }
  Status take_lease(uint64_t offset) const override { return base_->take_lease(offset_ + offset); }

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override;
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const override;
  Status do_flush() const override { return base_->flush(); }
  Status do_discard(uint64_t offset, uint64_t length) const override;
  Status do_write_zeroes(uint64_t offset, uint64_t length) const override;
  Status do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const override;

 private:
  WindowBackend(std::shared_ptr<const PvBackend> base, uint64_t offset, uint64_t length, std::string label)
      : PvBackend(std::move(label)), base_(std::move(base)), offset_(offset), length_(length) {}
  // EIO unless [offset, offset+length) lies inside the window.
  Status inside(const char* what, uint64_t offset, uint64_t length) const;

  std::shared_ptr<const PvBackend> base_;
  uint64_t offset_;
  uint64_t length_;
};

}  // namespace vgfs
