// Issue 8, the manager's part: the copier pool (many jobs, few threads; a
// thread that cannot start fails the command, not the daemon), lvcreate's
// slot check before its commit and slot reuse, size overflow, pvmove past
// the migration area's record room, commit problems in the reply, and views
// of bytes that are not UTF-8.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/config.h"
#include "vgfs/control.h"
#include "vgfs/escape.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"
#include "views/views.h"

using namespace vgfs;

namespace {

// An LV `name` of `runs` one-extent runs on pv0, at every other PE, so no
// two merge. Written in the config, so the VG is made by one create (making
// it with lvcreate/lvremove took a thousand commits: 17 s for 260 runs).
std::string fragmented_lvs(const std::string& name, int runs) {
  std::string text = "  - name: " + name + "\n    extents:\n";
  for (int i = 0; i < runs; ++i) text += fmt::format("      - {{le: {}, pv: pv0, pe: {}}}\n", i, 2 * i);
  return text;
}

struct Mount : vgfs_test::MountedVg {
  explicit Mount(const std::string& pv_size = "64MiB") : MountedVg(vgfs_test::two_pv_yaml(pv_size)) {}
  // The VG with only the LV of fragmented_lvs(name, runs).
  Mount(const std::string& pv_size, const std::string& name, int runs)
      : MountedVg(vgfs_test::two_pv_yaml(pv_size, fragmented_lvs(name, runs))) {
    REQUIRE(lv(name.c_str()).map.runs().size() == static_cast<size_t>(runs));
  }

  void wait_all_ended() {
    for (;;) {
      bool running = false;
      for (const JobStatus& j : manager->jobs())
        running = running || (j.sync_status != "completed" && j.sync_status != "aborted" && j.sync_status != "failed");
      if (!running) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

size_t thread_count() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/task");
  REQUIRE(d);
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

}  // namespace

TEST_CASE("copier pool: 40 jobs run on at most kCopierThreads threads and all complete") {
  Mount m("96MiB", "frag", 40);
  const size_t before = thread_count();
  Result<JobsStarted> ids = m.manager->move("frag", std::nullopt, "pv1", std::nullopt);
  REQUIRE(ids.ok());
  CHECK(ids->jobs.size() == 40);
  CHECK(m.manager->copier_threads() <= kCopierThreads);
  CHECK(thread_count() <= before + kCopierThreads);
  m.wait_all_ended();
  for (const JobStatus& j : m.manager->jobs()) CHECK(j.sync_status == "completed");
  for (const MapRun& r : m.lv("frag").map.runs()) CHECK(r.pv == 1);
  CHECK(thread_count() <= before + kCopierThreads);
}

TEST_CASE("copier pool: paused jobs do not hold the copiers") {
  Mount m("64MiB", "frag", 12);
  Result<JobsStarted> ids = m.manager->move("frag", IndexRange{0, 6}, "pv1", std::nullopt);
  REQUIRE(ids.ok());
  for (uint64_t id : ids->jobs) (void)m.manager->pause(id);  // some may have completed already
  Result<JobsStarted> more = m.manager->move("frag", IndexRange{6, 6}, "pv1", std::nullopt);
  REQUIRE(more.ok());
  // With one thread per paused job this waited forever once the pool was taken.
  for (;;) {
    bool done = true;
    for (uint64_t id : more->jobs) done = done && m.manager->job(id)->sync_status == "completed";
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (uint64_t id : ids->jobs) (void)m.manager->resume(id);
  m.wait_all_ended();
  for (const JobStatus& j : m.manager->jobs()) CHECK(j.sync_status == "completed");
}

TEST_CASE("copier pool: a copier that cannot start fails the command, changes nothing, and the next one works") {
  Mount m;
  m.manager->fail_thread_start_for_testing(true);
  const uint64_t seqno = m.store->metadata().seqno;
  Result<JobsStarted> ids = m.manager->move("a", std::nullopt, "pv1", std::nullopt);
  REQUIRE_FALSE(ids.ok());
  CHECK(ids.status().code() == EAGAIN);
  CHECK(ids.status().message().find("cannot start a copier thread") != std::string::npos);
  CHECK(m.store->metadata().seqno == seqno);
  CHECK(m.store->metadata().jobs.empty());
  CHECK(m.manager->jobs().empty());
  // The control file answers with the error; the process goes on.
  Result<Command> c = parse_command("move a pv1");
  REQUIRE(c.ok());
  Reply r = execute(*m.manager, *c);
  CHECK(r.code == EAGAIN);
  m.manager->fail_thread_start_for_testing(false);
  REQUIRE(m.manager->move("a", std::nullopt, "pv1", std::nullopt).ok());
  m.wait_all_ended();
  CHECK(m.lv("a").map.runs()[0].pv == 1);
}

TEST_CASE("lvcreate: no slot left is refused before the commit (no ghost LV); removed LVs' slots are reused") {
  Mount m;
  // Take every slot the way a long-lived mount would, through the VolumeSet.
  VgMetadata md = m.store->metadata();
  uint32_t taken = 1;  // LV a
  for (; taken < kMaxLvSlots; ++taken) {
    md.lvs[0].name = fmt::format("x{}", taken);
    REQUIRE(m.volume->publish_lv(md, 0).ok());
  }
  const uint64_t seqno = m.store->metadata().seqno;
  Result<LvSized> r = m.manager->lvcreate("ghost", MiB, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  CHECK(m.store->metadata().seqno == seqno);
  CHECK(m.store->metadata().find_lv("ghost") < 0);
  // A removed LV gives its slot back.
  REQUIRE(m.manager->lvremove("a").ok());
  Result<LvSized> again = m.manager->lvcreate("b", MiB, {});
  REQUIRE(again.ok());
  CHECK(m.volume->slot("b").has_value());
}

TEST_CASE("VolumeSet reuses the slots of removed LVs once the fresh ones are gone") {
  Mount m;
  VgMetadata md = m.store->metadata();
  for (uint32_t i = 0; i < kMaxLvSlots + 100; ++i) {
    md.lvs[0].name = fmt::format("y{}", i);
    Result<uint32_t> slot = m.volume->publish_lv(md, 0);
    REQUIRE(slot.ok());
    m.volume->remove_lv(*slot);
  }
  CHECK(m.volume->slot_available());
}

TEST_CASE("sizes past what the VG could hold are 'too large', never wrapped") {
  Mount m;
  for (uint64_t size : {UINT64_MAX, UINT64_MAX - MiB + 2, uint64_t{16777215} * TiB}) {
    CAPTURE(size);
    Result<LvSized> c = m.manager->lvcreate("big", size, {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("too large") != std::string::npos);
    Result<LvSized> e = m.manager->lvextend("a", size);
    REQUIRE_FALSE(e.ok());
    CHECK(e.status().message().find("too large") != std::string::npos);
    Result<LvSized> r = m.manager->lvreduce("a", size);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("too large") != std::string::npos);
  }
  CHECK(m.store->metadata().seqno == 1);
  CHECK(m.store->metadata().find_lv("big") < 0);
}

TEST_CASE("pvmove of a PV with more runs than job records fit: moves what fits, says so, and empties it in rounds") {
  Mount m("540MiB", "frag", 260);
  Result<JobsStarted> ids = m.manager->pvmove("pv0", {});
  REQUIRE(ids.ok());
  CHECK(ids->jobs.size() < 260);
  REQUIRE(ids->partial());
  CHECK(ids->runs == 260);
  CHECK(ids->runs_moving < 260);
  const std::string reply = ok_text(cmd::Pvmove{"pv0", {}}, *ids);
  CHECK(reply.find("(partial: ") != std::string::npos);
  CHECK(reply.find("run pvmove pv0 again") != std::string::npos);
  for (int round = 0; round < 5 && !m.store->metadata().lvs_on_pv(0).empty(); ++round) {
    m.wait_all_ended();
    Result<JobsStarted> next = m.manager->pvmove("pv0", {});
    if (!next.ok()) break;
  }
  m.wait_all_ended();
  CHECK(m.store->metadata().lvs_on_pv(0).empty());
}

TEST_CASE("a commit problem is appended to the ok reply") {
  Mount m;
  // The archive cannot be written: its folder is a symlink.
  std::filesystem::create_symlink(m.dir / "elsewhere", m.dir / "archive");
  Result<Command> c = parse_command("lvcreate b 1MiB");
  REQUIRE(c.ok());
  Reply r = execute(*m.manager, *c);
  CHECK(r.code == 0);
  CHECK(r.text.rfind("ok LV b created", 0) == 0);
  CHECK(r.text.find("(warning: the metadata archive folder") != std::string::npos);
  CHECK(r.text.back() == '\n');
  CHECK(r.text.find('\n') == r.text.size() - 1);
}

TEST_CASE("limit is durable before ok, paused or not") {
  Mount m("256MiB");
  REQUIRE(m.manager->lvextend("a", 200 * MiB).ok());
  Result<JobsStarted> ids = m.manager->move("a", std::nullopt, "pv1", std::nullopt);
  REQUIRE(ids.ok());
  const uint64_t id = ids->jobs[0];
  REQUIRE(m.manager->pause(id).ok());
  REQUIRE(m.manager->limit(id, 5 * MiB).ok());
  // Read the record as a new mount would, without any shutdown checkpoint.
  VolumeSet volume(*m.store);
  VolumeManager fresh(*m.store, volume);
  Result<JobStatus> s = fresh.job(id);
  REQUIRE(s.ok());
  CHECK(s->rate_limit == 5 * MiB);
  CHECK(s->paused);
}

TEST_CASE("views: PV paths and reasons that are not UTF-8 or hold control bytes are escaped, never thrown on") {
  Mount m;
  VgMetadata md = m.store->metadata();
  md.pvs[0].path = "/srv/\xff\xfe pv\n0.img";
  JobStatus job;
  job.id = 7;
  job.lv = "a";
  job.source_pv = "pv0";
  job.destination_pv = "pv1";
  job.reason = "EIO at \x1b[31m\xc3";
  nlohmann::json vg = views::vg_json(md, {job});
  std::string text;
  REQUIRE_NOTHROW(text = vg.dump(2));
  nlohmann::json back = nlohmann::json::parse(text);
  CHECK(back["pvs"][0]["path"] == "/srv/\\xff\\xfe pv\\x0a0.img");
  CHECK(unescape_bytes(back["pvs"][0]["path"].get<std::string>()).value() == md.pvs[0].path);
  CHECK(back["jobs"][0]["reason"] == "EIO at \\x1b[31m\\xc3");
  const std::string info = views::pv_info(md, 0);
  CHECK(info.find("path: /srv/\\xff\\xfe pv\\x0a0.img\n") != std::string::npos);
  CHECK(views::job_status(job).find("reason: EIO at \\x1b[31m\\xc3\n") != std::string::npos);
  for (const std::string& table : {views::pvs_table(vg, true), views::jobs_table(vg)})
    for (char c : table) CHECK((c == '\n' || static_cast<unsigned char>(c) >= 0x20));
}

TEST_CASE("pvadd refuses a path on the mount, also when the mount point was named through a symlink") {
  Mount m;
  // /proc stands in for this VG's mount: mountinfo lists it as "/proc".
  std::filesystem::create_symlink("/", m.dir / "via");
  m.manager->set_mount_point(m.dir / "via/proc");
  Result<PvAdded> r = m.manager->pvadd("/proc/self/status", "");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EINVAL);
  CHECK(r.status().message().find("own mount") != std::string::npos);
  CHECK(m.store->metadata().pvs.size() == 2);
}
