// FaultBackend: a test wrapper around another PV backend that makes chosen
// reads, writes, flushes and discards fail or misbehave (the rules of
// include/vgfs/fault_injector.h), so the copier, commit and record paths can
// be tested against EIO, ENOSPC, short reads, torn writes, failing fdatasync
// and discards that zero nothing.
//
// Invariant: an operation no rule fires on behaves exactly as the wrapped
// backend's; one a rule fires on reports an error naming the PV and offset
// (as the wrapped backend would). The rules are a fixed FaultInjector, or,
// for a backend made by wrap_for_scope(), whichever FaultInjector a
// FaultInjector::Scope has installed at the time of each operation (none:
// no fault). While rules apply, capabilities() offers no local descriptor,
// so no byte can go around the wrapper (copy_file_range, splice).
// Production code never builds one: the data path has no fault check.
#pragma once

#include <memory>
#include <string>

#include "vgfs/fault_injector.h"
#include "vgfs/pv_backend.h"

namespace vgfs {

class FaultBackend final : public PvBackend {
 public:
  // `path` is what FaultRule::path matches; `rules` null follows
  // FaultInjector::active().
  FaultBackend(std::unique_ptr<PvBackend> inner, std::string path, FaultInjector* rules);

  // A PvDevice::BackendWrapper: every PV the test binary opens gets one, so
  // a FaultInjector::Scope reaches PVs opened before it.
  static std::unique_ptr<PvBackend> wrap_for_scope(const std::string& path, std::unique_ptr<PvBackend> inner);

  uint64_t size() const override { return inner_->size(); }
  PvCapabilities capabilities() const override;
  Result<PvExtent> extent_at(uint64_t offset, uint64_t length) const override {
    return inner_->extent_at(offset, length);
  }
  Status check_range(uint64_t offset, uint64_t length) const override { return inner_->check_range(offset, length); }
  Status lock(bool exclusive) const override { return inner_->lock(exclusive); }
  uint64_t write_losses() const override { return inner_->write_losses(); }
  Status take_lease(uint64_t offset) const override { return inner_->take_lease(offset); }

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override;
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const override;
  Status do_flush() const override;
  Status do_discard(uint64_t offset, uint64_t length) const override;
  Status do_write_zeroes(uint64_t offset, uint64_t length) const override {
    return inner_->write_zeroes(offset, length);
  }
  // do_zero stays PvBackend's: its discard and written zeros pass the rules.

 private:
  FaultInjector* rules() const { return rules_ ? rules_ : FaultInjector::active(); }
  Fault fault_for(FaultOp op, uint64_t offset, uint64_t length) const;

  std::unique_ptr<PvBackend> inner_;
  std::string path_;
  FaultInjector* rules_;
};

}  // namespace vgfs
