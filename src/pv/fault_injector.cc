// Fault rules for FaultBackend (include/vgfs/fault_injector.h).
#include "vgfs/fault_injector.h"

namespace vgfs {

std::atomic<FaultInjector*> FaultInjector::installed_{nullptr};

void FaultInjector::add(FaultRule rule) {
  std::lock_guard lock(mutex_);
  rules_.push_back(Entry{std::move(rule)});
}

Fault FaultInjector::check(FaultOp op, const std::string& path, uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  for (Entry& e : rules_) {
    const FaultRule& r = e.rule;
    if (r.op != op || (!r.path.empty() && r.path != path)) continue;
    if (op != FaultOp::kSync) {
      const uint64_t last = length == 0 ? offset : offset + length;  // one past the end
      if (!(offset < r.end && (last > r.begin || (length == 0 && offset >= r.begin)))) continue;
    }
    if (e.seen++ < r.skip) return {};
    if (e.fired >= r.times) continue;
    ++e.fired;
    return Fault{true, r.kind, r.error, r.keep};
  }
  return {};
}

uint64_t FaultInjector::fired(size_t rule) const {
  std::lock_guard lock(mutex_);
  return rule < rules_.size() ? rules_[rule].fired : 0;
}

}  // namespace vgfs
