// FaultInjector: the rules of a FaultBackend (include/vgfs/fault_backend.h),
// a test wrapper around a PV backend that makes chosen reads, writes,
// fdatasyncs and hole punches fail or misbehave, so the copier, commit and
// record paths can be tested against EIO, ENOSPC, short reads, torn writes,
// failing fdatasync and punches that zero nothing.
//
// Invariant: an operation consults the rules in the order they were added
// and the first rule that matches decides; each rule fires
// deterministically: it lets `skip` matching operations pass, then fires on
// the next `times` ones, then never again. Matching is by operation, PV path
// (empty = every PV) and byte range overlap.
//
// Outside tests nothing consults it: PVs are not wrapped, so the data path
// has no fault check at all. The unit-test binary wraps every PV it opens
// (PvDevice::set_backend_wrapper with FaultBackend::wrap_for_scope), and a
// test installs its rules with FaultInjector::Scope, which removes them
// again on every exit path; the rules then reach PVs opened before it.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace vgfs {

enum class FaultOp { kRead, kWrite, kSync, kPunch };

enum class FaultKind {
  kError,  // the operation fails with `error` before touching anything
  kShort,  // read: the first `keep` bytes arrive, then end of file
  kTear,   // write: the first `keep` bytes reach the PV, then it fails with `error`
  kNoop,   // punch: reports success and leaves the bytes as they were
           // (an advisory discard: NBD trim, a block device that keeps data)
};

struct FaultRule {
  FaultOp op = FaultOp::kWrite;
  FaultKind kind = FaultKind::kError;
  std::string path = {};           // PvDevice::path(); empty matches every PV
  uint64_t begin = 0;              // the operation must overlap [begin, end)
  uint64_t end = UINT64_MAX;       //   (sync has no range and always overlaps)
  uint64_t skip = 0;               // matching operations let through first
  uint64_t times = 1;              // then this many fire; UINT64_MAX = forever
  int error = EIO;                 // errno for kError and kTear
  uint64_t keep = 0;               // bytes kept by kShort and kTear
};

// What one operation is told to do.
struct Fault {
  bool fire = false;
  FaultKind kind = FaultKind::kError;
  int error = 0;
  uint64_t keep = 0;
};

class FaultInjector {
 public:
  void add(FaultRule rule);
  // Consulted by FaultBackend before each operation; counts matches.
  Fault check(FaultOp op, const std::string& path, uint64_t offset, uint64_t length);
  // How many operations a rule fired on so far (rules numbered from 0).
  uint64_t fired(size_t rule) const;

  // The installed injector, or null (the normal case).
  static FaultInjector* active() { return installed_.load(std::memory_order_relaxed); }

  // Installs an injector for the life of the scope.
  class Scope {
   public:
    explicit Scope(FaultInjector& f) { installed_.store(&f); }
    ~Scope() { installed_.store(nullptr); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };

 private:
  struct Entry {
    FaultRule rule;
    uint64_t seen = 0, fired = 0;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> rules_;
  static std::atomic<FaultInjector*> installed_;
};

}  // namespace vgfs
