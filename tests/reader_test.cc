// Readers off the admin lock (include/vgfs/volume_manager.h): the views,
// getattr and `--wait` polling read the snapshot published after each
// change, so they answer while a writer holds the admin mutex; lvcreate
// and lvextend zero their new extents without it; and what readers see is
// never older than the last finished command.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/fault_injector.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"

using namespace vgfs;
using namespace std::chrono_literals;

namespace {

struct Mount : vgfs_test::MountedVg {
  Mount() : MountedVg(vgfs_test::two_pv_yaml("128MiB", "  - {name: a, size: 48MiB}\n  - {name: b, size: 4MiB}\n")) {}
  // A job on LV a that stays running: paused before it can finish (a job
  // that wins the race completes, and the next one moves LV a back).
  uint64_t running_job() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      Result<JobsStarted> ids = manager->move("a", std::nullopt, attempt % 2 ? "pv0" : "pv1", std::nullopt);
      REQUIRE_MESSAGE(ids.ok(), ids.status().message());
      const uint64_t id = ids->jobs[0];
      if (manager->pause(id).ok()) {
        REQUIRE(manager->limit(id, 64 * KiB).ok());
        return id;
      }
      for (int i = 0; i < 1000 && manager->job(id)->sync_status != "completed"; ++i) std::this_thread::sleep_for(10ms);
      REQUIRE(manager->job(id)->sync_status == "completed");
    }
    FAIL("every job completed before it could be paused");
    return 0;
  }
};

// Runs `read` on another thread; true when it returned within 5 s. When it
// does not, the caller lets go of the lock, so the test ends either way.
template <typename F>
bool answers_while_held(std::unique_lock<std::mutex>& held, F read) {
  std::future<void> f = std::async(std::launch::async, read);
  const bool answered = f.wait_for(5s) == std::future_status::ready;
  held.unlock();
  f.get();
  return answered;
}

}  // namespace

TEST_CASE("readers: metadata, PV names, jobs, a job's status and bitmap answer while the admin mutex is held") {
  Mount m;
  const uint64_t id = m.running_job();
  std::unique_lock<std::mutex> held = m.manager->hold_admin_for_testing();
  CHECK_FALSE(m.manager->admin_free_for_testing());
  VgMetadata md;
  std::vector<std::string> pvs;
  std::vector<JobStatus> jobs;
  Result<JobStatus> job = Status::Error(EIO, "not read");
  Result<std::string> bitmap = Status::Error(EIO, "not read");
  CHECK(answers_while_held(held, [&] {
    md = m.manager->metadata();
    pvs = m.manager->pv_names();
    jobs = m.manager->jobs();
    job = m.manager->job(id);
    bitmap = m.manager->bitmap(id);
  }));
  CHECK(md.find_lv("a") >= 0);
  CHECK(md.seqno == m.store->metadata().seqno);
  CHECK(pvs == std::vector<std::string>{"pv0", "pv1"});
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].id == id);
  REQUIRE(job.ok());
  CHECK(job->paused);
  CHECK(job->rate_limit == 64 * KiB);
  CHECK(job->sync_status != "completed");
  CHECK(bitmap.ok());
  CHECK_FALSE(m.manager->job(id + 1).ok());
}

TEST_CASE("readers: what they see after a command returns is that command's commit") {
  Mount m;
  REQUIRE(m.manager->lvcreate("c", 3 * MiB, {}).ok());
  VgMetadata md = m.manager->metadata();
  CHECK(md.seqno == m.store->metadata().seqno);
  REQUIRE(md.find_lv("c") >= 0);
  REQUIRE(m.manager->lvrename("c", "d").ok());
  CHECK(m.manager->metadata().find_lv("d") >= 0);
  CHECK(m.manager->metadata().find_lv("c") < 0);
  CHECK_FALSE(m.manager->pvadd(m.dir / "pv2.img", "").ok());  // no such file: refused, nothing changes
  CHECK(m.manager->pv_names().size() == 2);
  // A job that completes: once its status says so, the metadata shows the new map.
  Result<JobsStarted> ids = m.manager->move("b", std::nullopt, "pv1", std::nullopt);
  REQUIRE(ids.ok());
  for (int i = 0; i < 1000; ++i) {
    Result<JobStatus> s = m.manager->job(ids->jobs[0]);
    REQUIRE(s.ok());
    if (s->sync_status == "completed") break;
    std::this_thread::sleep_for(10ms);
  }
  VgMetadata after = m.manager->metadata();
  const LvInfo& b = after.lvs[static_cast<size_t>(after.find_lv("b"))];
  CHECK(after.pvs[b.map.runs()[0].pv].name == "pv1");
}

TEST_CASE("lvcreate zeroes its new extents without the admin mutex; job control and readers go on meanwhile") {
  Mount m;
  const uint64_t id = m.running_job();
  // Old bytes where the new LV will land: every free PE of pv0 filled.
  {
    const VgMetadata& md = m.store->metadata();
    const uint32_t pv0 = static_cast<uint32_t>(md.find_pv("pv0"));
    for (const PvRun& r : md.pv_map(pv0))
      if (r.free())
        REQUIRE(m.store->pv(pv0)
                    .write_at(std::string(r.count * md.extent_size, 'x').data(), r.count * md.extent_size,
                              md.pvs[pv0].pe_start + r.pe * md.extent_size)
                    .ok());
  }
  bool hook_ran = false;
  std::future<Result<LvSized>> second;
  m.manager->on_zeroing_for_testing([&] {
    if (hook_ran) return;
    hook_ran = true;
    CHECK(m.manager->admin_free_for_testing());
    CHECK(m.manager->limit(id, 32 * KiB).ok());  // job control takes admin_: it does not wait for the zeroing
    CHECK(m.manager->job(id)->rate_limit == 32 * KiB);
    CHECK(m.manager->metadata().find_lv("c") < 0);  // not committed yet
    // Another command waits for this one (commands are serialized): it
    // cannot take the extents being zeroed.
    second = std::async(std::launch::async, [&] { return m.manager->lvcreate("d", 8 * MiB, {"pv0"}); });
    CHECK(second.wait_for(200ms) == std::future_status::timeout);
  });
  Result<LvSized> c = m.manager->lvcreate("c", 8 * MiB, {"pv0"});
  REQUIRE(c.ok());
  REQUIRE(hook_ran);
  Result<LvSized> d = second.get();
  REQUIRE(d.ok());
  m.manager->on_zeroing_for_testing(nullptr);
  const VgMetadata& md = m.store->metadata();
  CHECK(md.validate().ok());  // no PE used twice
  CHECK(m.manager->metadata().seqno == md.seqno);
  // Both new LVs read as zeros.
  for (const char* name : {"c", "d"}) {
    CAPTURE(name);
    const LvInfo& lv = md.lvs[static_cast<size_t>(md.find_lv(name))];
    for (const MapRun& r : lv.map.runs()) {
      std::string bytes(r.count * md.extent_size, '?');
      REQUIRE(m.store->pv(r.pv).read_at(bytes.data(), bytes.size(), md.pvs[r.pv].pe_start + r.pe * md.extent_size).ok());
      CHECK(bytes == std::string(bytes.size(), '\0'));
    }
  }
}

TEST_CASE("lvextend zeroes without the admin mutex too, and a zeroing failure changes nothing") {
  Mount m;
  const uint64_t seqno = m.store->metadata().seqno;
  {
    FaultInjector faults;
    faults.add({.op = FaultOp::kSync, .kind = FaultKind::kError, .error = EIO});
    FaultInjector::Scope scope(faults);
    CHECK_FALSE(m.manager->lvextend("b", 6 * MiB).ok());
    CHECK(faults.fired(0) == 1);
  }
  CHECK(m.store->metadata().seqno == seqno);
  CHECK(m.manager->metadata().seqno == seqno);
  CHECK(m.manager->metadata().lvs[static_cast<size_t>(m.manager->metadata().find_lv("b"))].map.extent_count() == 4);
  bool hook_ran = false;
  m.manager->on_zeroing_for_testing([&] {
    hook_ran = true;
    CHECK(m.manager->admin_free_for_testing());
  });
  REQUIRE(m.manager->lvextend("b", 6 * MiB).ok());
  CHECK(hook_ran);
  CHECK(m.manager->metadata().lvs[static_cast<size_t>(m.manager->metadata().find_lv("b"))].map.extent_count() == 6);
}
