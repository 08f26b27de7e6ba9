// Unit tests of the copier state machine (src/manager/copier.h) and its
// rate limiter (src/manager/rate_limiter.h), without a VG, a mount or FUSE:
// a Copier drives a Transfer over real PV files in a temporary folder, its
// hooks stand in for the manager's commits, and the rate limiter runs on a
// fake clock.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "manager/copier.h"
#include "manager/rate_limiter.h"
#include "test_util.h"
#include "vgfs/fault_injector.h"
#include "vgfs/job_record.h"
#include "vgfs/local_backend.h"
#include "vgfs/pv_device.h"
#include "vgfs/transfer.h"
#include "vgfs/units.h"

using namespace vgfs;
using namespace std::chrono_literals;
using vgfs_test::TempDir;

namespace {

using TimePoint = RateLimiter::Clock::time_point;

// ---- the rate limiter on a fake clock ----

TEST_CASE("rate limiter: unlimited allows every transfer at once") {
  RateLimiter l;
  const TimePoint t0{};
  l.set_rate(0, t0);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(l.allowed(t0, nullptr));
    l.spent(1 * GiB);
  }
}

TEST_CASE("rate limiter: each transfer moves the budget on by bytes/rate") {
  RateLimiter l;
  const TimePoint t0 = TimePoint{} + 10s;
  l.set_rate(1 * MiB, t0);
  TimePoint at{};
  CHECK(l.allowed(t0, &at));
  l.spent(256 * KiB);  // a quarter of a second at 1 MiB/s
  CHECK_FALSE(l.allowed(t0, &at));
  CHECK(at == t0 + 250ms);
  CHECK_FALSE(l.allowed(t0 + 249ms, &at));
  CHECK(l.allowed(t0 + 250ms, &at));
  l.spent(3);  // 3 bytes at 1 MiB/s: 2861 ns
  CHECK_FALSE(l.allowed(t0 + 250ms, &at));
  CHECK(at == t0 + 250ms + 2861ns);
}

TEST_CASE("rate limiter: a budget less than a second behind is caught up on; one further behind is dropped") {
  auto burst_at = [](RateLimiter::Clock::duration idle) {
    RateLimiter l;
    const TimePoint t0 = TimePoint{} + 10s;
    l.set_rate(1 * MiB, t0);
    uint64_t sent = 0;
    while (l.allowed(t0 + idle, nullptr)) {
      l.spent(64 * KiB);  // 62.5 ms each at 1 MiB/s
      sent += 64 * KiB;
      REQUIRE(sent <= 4 * MiB);
    }
    return sent;
  };
  CHECK(burst_at(0ms) == 64 * KiB);
  CHECK(burst_at(500ms) == 9 * 64 * KiB);   // 0, 62.5, ..., 500 ms
  CHECK(burst_at(1000ms) == 17 * 64 * KiB);  // the most: one second's worth and the one that crossed it
  CHECK(burst_at(10s) == 64 * KiB);          // idle: afresh from now
}

TEST_CASE("rate limiter: a new rate counts from the moment it is set") {
  RateLimiter l;
  const TimePoint t0 = TimePoint{} + 10s;
  l.set_rate(1 * KiB, t0);
  l.spent(1 * MiB);  // 1024 s of budget owed at 1 KiB/s
  TimePoint at{};
  CHECK_FALSE(l.allowed(t0 + 1s, &at));
  l.set_rate(1 * KiB, t0 + 1s);  // the same rate again changes nothing
  CHECK_FALSE(l.allowed(t0 + 1s, &at));
  l.set_rate(1 * MiB, t0 + 1s);  // a new one: the debt is forgiven
  CHECK(l.rate() == 1 * MiB);
  CHECK(l.allowed(t0 + 1s, &at));
  l.set_rate(0, t0 + 1s);
  l.spent(1 * GiB);
  CHECK(l.allowed(t0 + 1s, &at));
}

TEST_CASE("rate limiter: over a long run the bytes sent stay within rate x time plus one burst") {
  for (uint64_t rate : {100 * KiB, 1 * MiB, 3 * MiB + 17, 64 * MiB}) {
    CAPTURE(rate);
    RateLimiter l;
    TimePoint now = TimePoint{} + 100s;
    const TimePoint start = now, end = now + 30s;
    l.set_rate(rate, now);
    uint64_t sent = 0;
    while (now < end) {
      TimePoint at{};
      if (l.allowed(now, &at)) {
        l.spent(256 * KiB);
        sent += 256 * KiB;
      } else {
        REQUIRE(at > now);
        now = at;
      }
    }
    const double secs = std::chrono::duration<double>(now - start).count();
    CHECK(static_cast<double>(sent) <= static_cast<double>(rate) * (secs + 1.0) + 256.0 * KiB);
    CHECK(static_cast<double>(sent) >= static_cast<double>(rate) * secs * 0.99);
  }
}

// ---- the copier over PV files ----

constexpr char kDstFill = '\xEE';

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// A destination that loses its unflushed writes on demand, as an NBD export
// whose server was killed and restarted within the reconnect window: lose()
// puts back what the writes since the last good flush overwrote, the next
// flush fails once with EIO, and write_losses() moves (NbdBackend's rules).
class LossyBackend final : public PvBackend {
 public:
  explicit LossyBackend(std::unique_ptr<PvBackend> inner) : PvBackend(inner->label()), inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  PvCapabilities capabilities() const override { return {}; }  // no descriptor: every byte comes through here
  Status check_range(uint64_t offset, uint64_t length) const override { return inner_->check_range(offset, length); }
  uint64_t write_losses() const override { return losses_.load(); }
  void lose() const {
    std::lock_guard lock(m_);
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it)
      REQUIRE(inner_->write(it->second.data(), it->second.size(), it->first).ok());
    lost_writes_ += undo_.size();
    undo_.clear();
    fail_flush_ = true;
    losses_.fetch_add(1);
  }
  size_t lost_writes() const {
    std::lock_guard lock(m_);
    return lost_writes_;
  }

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override { return inner_->read(buf, length, offset); }
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool) const override {
    std::lock_guard lock(m_);
    std::string old(length, '\0');
    VGFS_RETURN_IF_ERROR(inner_->read(old.data(), length, offset));
    undo_.emplace_back(offset, std::move(old));
    return inner_->write(buf, length, offset);
  }
  Status do_flush() const override {
    std::lock_guard lock(m_);
    if (fail_flush_) {
      fail_flush_ = false;
      return Status::Error(EIO, label() + ": lost unflushed writes");
    }
    undo_.clear();
    return inner_->flush();
  }

 private:
  std::unique_ptr<PvBackend> inner_;
  mutable std::mutex m_;
  mutable std::vector<std::pair<uint64_t, std::string>> undo_;  // guarded by m_
  mutable bool fail_flush_ = false;                             // guarded by m_
  mutable size_t lost_writes_ = 0;                              // guarded by m_
  mutable std::atomic<uint64_t> losses_{0};
};

// A source, a destination and a record file with a Transfer over them, and
// a Copier whose hooks do what the manager's do, minus the metadata: the
// switch holds writes, checks that no write slipped in, and finishes.
struct CopierRig {
  TempDir dir;
  uint64_t rs = 64 * KiB, regions, size;
  std::string src_path = dir / "src.img", dst_path = dir / "dst.img", rec_path = dir / "rec.img";
  PvDevice src, dst, rec;
  std::unique_ptr<Transfer> t;
  std::unique_ptr<Copier> copier;
  std::mt19937_64 rng{99};

  std::atomic<Copier::Request> request{Copier::Request::kNone};
  std::vector<Copier::Phase> phases_at_switch;
  int switches = 0, slipped = 0;
  std::optional<JobState> ended;
  std::string reason;

  const LossyBackend* lossy = nullptr;  // the destination's backend when made lossy

  explicit CopierRig(uint64_t region_count = 32, Copier::Tuning tuning = {}, bool lossy_dst = false)
      : regions(region_count), size(region_count * rs) {
    vgfs_test::write_file(src_path, random_bytes(rng, size));
    vgfs_test::write_file(dst_path, std::string(size, kDstFill));
    vgfs_test::make_sparse(rec_path, 1 * MiB);
    src = open(src_path, "PV src");
    if (lossy_dst) {
      Result<std::unique_ptr<LocalBackend>> inner = LocalBackend::open(dst_path, true, "PV dst");
      REQUIRE_MESSAGE(inner.ok(), inner.status().message());
      auto b = std::make_unique<LossyBackend>(std::move(*inner));
      lossy = b.get();
      dst = PvDevice::from_backend(std::move(b), dst_path, true);
    } else {
      dst = open(dst_path, "PV dst");
    }
    rec = open(rec_path, "PV rec");
    Transfer::Geometry g;
    g.job_id = 3;
    g.size = size;
    g.region_size = rs;
    g.source = {&src, 0};
    g.destination = {&dst, 0};
    g.record = {&rec, 4 * KiB};
    t = std::make_unique<Transfer>(g, nullptr);

    Copier::Hooks hooks;
    hooks.request = [this] { return request.load(); };
    hooks.switch_over = [this](Status* st) {
      ++switches;
      phases_at_switch.push_back(copier->phase());
      t->block_writes();
      if (t->pending_count() != 0) {
        ++slipped;
        t->unblock_writes();
        return false;
      }
      *st = t->checkpoint();  // as the manager's: a lossy destination's copies are marked for a recopy
      if (!st->ok() || t->pending_count() != 0) {
        t->unblock_writes();
        return false;
      }
      t->set_sync_status(SyncStatus::kCompleted);
      t->finish();
      return true;
    };
    hooks.end = [this](JobState state, const std::string& why) {
      ended = state;
      reason = why;
      t->block_writes();
      t->set_sync_status(state == JobState::kAborted ? SyncStatus::kAborted : SyncStatus::kFailed);
      t->finish();
    };
    copier = std::make_unique<Copier>(*t, std::move(hooks), tuning);
  }

  static PvDevice open(const std::string& path, const char* label) {
    Result<PvDevice> d = PvDevice::open(path, true, label);
    REQUIRE_MESSAGE(d.ok(), d.status().message());
    return std::move(*d);
  }

  // Steps until the copier asks for anything but kAgain; returns that.
  StepResult run(int max_steps = 100000) {
    for (int i = 0; i < max_steps; ++i) {
      StepResult r = copier->step();
      if (r != StepResult::kAgain) return r;
    }
    FAIL("the copier did not stop asking for more steps");
    return StepResult::kAgain;
  }
  bool equal() const { return vgfs_test::read_file(src_path) == vgfs_test::read_file(dst_path); }
};

TEST_CASE("copier: an idle job goes copying -> resyncing -> synchronized -> switching -> done, data equal") {
  CopierRig rig;
  CHECK(rig.copier->phase() == Copier::Phase::kCopying);
  CHECK(rig.run() == StepResult::kDone);
  CHECK(rig.copier->phase() == Copier::Phase::kDone);
  REQUIRE(rig.switches == 1);
  CHECK(rig.phases_at_switch[0] == Copier::Phase::kSwitching);
  CHECK(rig.slipped == 0);
  CHECK_FALSE(rig.ended.has_value());
  CHECK(rig.t->sync_status() == SyncStatus::kCompleted);
  CHECK(rig.t->progress_pointer() == rig.size);
  CHECK(rig.t->copied_bytes() == rig.size);  // every region once, none again
  CHECK(rig.equal());
  CHECK(rig.copier->rate() == 0);
  CHECK(std::string(copier_phase_name(Copier::Phase::kSynchronized)) == "synchronized");
}

TEST_CASE("copier: phases in order, one step at a time, with the transfer's sync status following") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;  // one region (or one phase change) per step
  CopierRig rig(8, tuning);
  std::vector<Copier::Phase> seen{rig.copier->phase()};
  for (int i = 0; i < 1000 && rig.copier->phase() != Copier::Phase::kDone; ++i) {
    (void)rig.copier->step();
    if (seen.back() != rig.copier->phase()) seen.push_back(rig.copier->phase());
    if (rig.copier->phase() == Copier::Phase::kResyncing) CHECK(rig.t->sync_status() == SyncStatus::kResyncing);
    if (rig.copier->phase() == Copier::Phase::kSynchronized) CHECK(rig.t->sync_status() == SyncStatus::kSynchronized);
  }
  // kSwitching is only seen from inside the hook.
  CHECK(seen == std::vector<Copier::Phase>{Copier::Phase::kCopying, Copier::Phase::kResyncing,
                                           Copier::Phase::kSynchronized, Copier::Phase::kDone});
  CHECK(rig.equal());
}

TEST_CASE("copier: writes racing it are recopied by resync passes; the destination ends equal to the source") {
  CopierRig rig(64);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  std::thread writer([&] {
    std::mt19937_64 rng(7);
    while (!stop.load()) {
      const uint64_t off = rng() % (rig.size - 4 * KiB);
      std::string data = random_bytes(rng, 4 * KiB);
      Status st = rig.t->write(off, data.data(), data.size());
      if (st.code() == EAGAIN) break;  // the switch finished the transfer
      REQUIRE_MESSAGE(st.ok(), st.message());
      ++writes;
      std::this_thread::sleep_for(200us);
    }
  });
  StepResult r = StepResult::kAgain;
  for (int i = 0; i < 200000 && r != StepResult::kDone; ++i) {
    r = rig.copier->step();
    if (i == 20) stop = true;  // writes for the first steps only, so the job converges quickly
  }
  stop = true;
  writer.join();
  CHECK(r == StepResult::kDone);
  CHECK(writes.load() > 0);
  CHECK(rig.t->sync_status() == SyncStatus::kCompleted);
  CHECK(rig.equal());
}

TEST_CASE("copier: a paused transfer parks, and goes on where it was when resumed") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;
  CopierRig rig(8, tuning);
  (void)rig.copier->step();
  (void)rig.copier->step();
  const uint64_t p = rig.t->progress_pointer();
  CHECK(p == 2 * rig.rs);
  rig.t->set_paused(true);
  CHECK(rig.copier->step() == StepResult::kPark);
  CHECK(rig.copier->step() == StepResult::kPark);
  CHECK(rig.t->progress_pointer() == p);
  CHECK(rig.copier->rate() == 0);
  rig.t->set_paused(false);
  CHECK(rig.run() == StepResult::kDone);
  CHECK(rig.equal());
}

TEST_CASE("copier: an abort request ends the job through the end hook, as aborted") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;
  CopierRig rig(8, tuning);
  (void)rig.copier->step();
  rig.request = Copier::Request::kAbort;
  CHECK(rig.copier->step() == StepResult::kDone);
  REQUIRE(rig.ended.has_value());
  CHECK(*rig.ended == JobState::kAborted);
  CHECK(rig.reason == "aborted by the user");
  CHECK(rig.switches == 0);
  CHECK(rig.copier->phase() == Copier::Phase::kDone);
}

TEST_CASE("copier: a stop request checkpoints and leaves without ending the job (unmount)") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;
  CopierRig rig(8, tuning);
  for (int i = 0; i < 3; ++i) (void)rig.copier->step();
  rig.request = Copier::Request::kStop;
  CHECK(rig.copier->step() == StepResult::kDone);
  CHECK_FALSE(rig.ended.has_value());
  CHECK(rig.switches == 0);
  CHECK(rig.t->persisted_pointer() == 3 * rig.rs);  // rule 6: resumes from here
}

TEST_CASE("copier: a rate limit makes it sleep until the budget allows the next region") {
  CopierRig rig(8);
  rig.t->set_rate_limit(rig.rs);  // one region a second
  const auto before = Copier::Clock::now();
  CHECK(rig.copier->step() == StepResult::kSleep);
  CHECK(rig.t->progress_pointer() == rig.rs);  // the first region went at once
  CHECK(rig.copier->wake_at() >= before + 900ms);
  CHECK(rig.copier->wake_at() <= Copier::Clock::now() + 1s);
  // Asked again before its time, it sleeps again without copying.
  CHECK(rig.copier->step() == StepResult::kSleep);
  CHECK(rig.t->progress_pointer() == rig.rs);
  // Lifting the limit lets it run to the end.
  rig.t->set_rate_limit(0);
  CHECK(rig.run() == StepResult::kDone);
  CHECK(rig.equal());
}

TEST_CASE("copier: a destination write failure fails the job with the PV named, through the end hook") {
  CopierRig rig(8);
  FaultInjector faults;
  faults.add({.op = FaultOp::kWrite, .kind = FaultKind::kError, .path = rig.dst_path, .skip = 2, .error = ENOSPC});
  FaultInjector::Scope scope(faults);
  CHECK(rig.run() == StepResult::kDone);
  REQUIRE(rig.ended.has_value());
  CHECK(*rig.ended == JobState::kFailed);
  CHECK(rig.reason.find("PV dst") != std::string::npos);
  CHECK(rig.reason.find(std::strerror(ENOSPC)) != std::string::npos);
  CHECK(rig.switches == 0);
}

TEST_CASE("copier: a switch that finds a write slipped in goes back to synchronized and tries again") {
  CopierRig rig(8);
  Copier::Hooks hooks;
  hooks.request = [] { return Copier::Request::kNone; };
  Copier* self = nullptr;
  std::vector<Copier::Phase> phases;
  hooks.switch_over = [&](Status* st) {
    phases.push_back(self->phase());
    *st = Status::Ok();
    if (++rig.switches == 1) return false;  // as when a write that saw the state before synchronized is pending
    rig.t->block_writes();
    rig.t->set_sync_status(SyncStatus::kCompleted);
    rig.t->finish();
    return true;
  };
  hooks.end = [&](JobState, const std::string& why) { FAIL("ended: " << why); };
  Copier copier(*rig.t, std::move(hooks));
  self = &copier;
  StepResult r = StepResult::kAgain;
  for (int i = 0; i < 1000 && r == StepResult::kAgain; ++i) r = copier.step();
  CHECK(r == StepResult::kDone);
  CHECK(rig.switches == 2);
  CHECK(phases == std::vector<Copier::Phase>{Copier::Phase::kSwitching, Copier::Phase::kSwitching});
  CHECK(copier.phase() == Copier::Phase::kDone);
  CHECK(rig.equal());
}

// Issue 13: a destination that comes back within the window after losing
// acknowledged copies is recopied since the last durable checkpoint, and the
// job completes instead of failing.
TEST_CASE("copier: copies a destination lost before any checkpoint are all recopied; the job completes, data equal") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;  // one region a step
  tuning.checkpoint_interval = 1h;  // only the checkpoints the phases make
  CopierRig rig(16, tuning, true);
  for (int i = 0; i < 5; ++i) (void)rig.copier->step();
  REQUIRE(rig.t->progress_pointer() == 5 * rig.rs);
  rig.lossy->lose();
  CHECK(rig.lossy->lost_writes() == 5);
  CHECK_FALSE(rig.equal());
  CHECK(rig.run() == StepResult::kDone);
  CHECK_FALSE(rig.ended.has_value());
  CHECK(rig.t->sync_status() == SyncStatus::kCompleted);
  CHECK(rig.t->loss_recoveries() == 1);
  CHECK(rig.t->copied_bytes() == 2 * rig.size);  // found at the end of the first pass: everything again
  CHECK(rig.equal());
}

TEST_CASE("copier: after a loss, only the regions since the last durable checkpoint are recopied") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;
  tuning.checkpoint_interval = 1h;
  CopierRig rig(16, tuning, true);
  for (int i = 0; i < 3; ++i) (void)rig.copier->step();
  REQUIRE(rig.t->checkpoint().ok());  // regions 0-2 durable
  REQUIRE(rig.t->persisted_pointer() == 3 * rig.rs);
  for (int i = 0; i < 3; ++i) (void)rig.copier->step();
  rig.lossy->lose();  // regions 3-5 go back to the fill
  CHECK(rig.lossy->lost_writes() == 3);
  // The next checkpoint finds it: P moves on, the regions since the durable
  // one are dirty (record and memory), and the flush after that succeeds.
  REQUIRE(rig.t->checkpoint().ok());
  CHECK(rig.t->loss_recoveries() == 1);
  CHECK(rig.t->persisted_pointer() == 6 * rig.rs);
  CHECK(rig.t->pending_count() == 4);  // 3-5 and the region at P, which the first pass clears
  CHECK(rig.run() == StepResult::kDone);
  CHECK_FALSE(rig.ended.has_value());
  CHECK(rig.t->copied_bytes() == rig.size + 3 * rig.rs);
  CHECK(rig.equal());
}

TEST_CASE("copier: a loss found by the switch's checkpoint sends the copier back to recopy, then it switches") {
  Copier::Tuning tuning;
  tuning.slice = 0ms;
  tuning.checkpoint_interval = 1h;
  CopierRig rig(8, tuning, true);
  // A write below P before the loss: its dirty bit is persisted, then the
  // copier recopies it; the recopy is lost with the server.
  for (int i = 0; i < 8; ++i) (void)rig.copier->step();
  REQUIRE(rig.t->progress_pointer() == rig.size);
  REQUIRE(rig.t->checkpoint().ok());
  std::string data(4 * KiB, 'W');
  REQUIRE(rig.t->write(rig.rs + 100, data.data(), data.size()).ok());
  std::string src = vgfs_test::read_file(rig.src_path);
  src.replace(rig.rs + 100, data.size(), data);
  REQUIRE(vgfs_test::read_file(rig.src_path) == src);
  while (rig.t->pending_count() != 0) (void)rig.copier->step();  // the resync pass recopies region 1
  rig.lossy->lose();
  CHECK(rig.run() == StepResult::kDone);
  CHECK_FALSE(rig.ended.has_value());
  CHECK(rig.t->loss_recoveries() == 1);
  CHECK(rig.switches >= 2);  // the first found the loss and went back
  CHECK(rig.equal());
}

}  // namespace
