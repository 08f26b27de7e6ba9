// Unit tests of moves of one leg of a striped run (issue 12; docs/records.md
// "Moving a leg of a striped run"): JobInfo::leg through validate(), the
// vgfs metadata text and the hidden LVs of an LVM2 VG, hostile values
// refused naming the field, ExtentMap::remap_leg, and the write path of a
// moving leg (VolumeSet routes each piece by its PV place).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <thread>

#include "printers.h"
#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/lvm2_move.h"
#include "vgfs/metadata.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

// Three PVs of 100 PEs; LV "st": LE 0-3 linear on pv0 PE 0-3, LE 4-13
// striped over two legs (pv0 PE 10-14, pv1 PE 20-24) in 64 KiB chunks.
// Job 3 moves leg 1 (pv1 PE 20-24) to pv2 PE 40-44.
VgMetadata striped_vg() {
  VgMetadata md;
  md.name = "vgleg";
  md.uuid = new_uuid();
  md.extent_size = 4 * MiB;
  md.region_size = 256 * KiB;
  md.seqno = 3;
  for (const char* name : {"pv0", "pv1", "pv2"}) {
    PvInfo pv;
    pv.name = name;
    pv.uuid = new_uuid();
    pv.path = std::string("/srv/") + name + ".img";
    pv.pe_start = 13 * MiB;
    pv.pe_count = 100;
    md.pvs.push_back(pv);
  }
  LvInfo lv;
  lv.name = "st";
  lv.uuid = new_uuid();
  lv.map.append(0, 0, 4);
  MapRun r;
  r.count = 10;
  r.pv = 0;
  r.pe = 10;
  r.stripe_size = 64 * KiB;
  r.more_legs = {StripeLeg{1, 20}};
  lv.map.append_run(r);
  md.lvs.push_back(lv);
  JobInfo j;
  j.id = 3;
  j.lv = "st";
  j.le = 4;
  j.count = 5;
  j.leg = 1;
  j.src_pv = 1;
  j.src_pe = 20;
  j.dst_pv = 2;
  j.dst_pe = 40;
  j.record_offset = 0;
  j.record_size = 8 * KiB;
  md.jobs.push_back(j);
  md.next_job_id = 4;
  return md;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  return text.replace(at, from.size(), to);
}

void check_refused(const Status& st, const std::string& field) {
  REQUIRE_FALSE(st.ok());
  CHECK_MESSAGE(st.message().find(field) != std::string::npos, st.message());
  CHECK(st.message().find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("leg move: a leg job validates, reserves its destination as that leg, and round-trips the vgfs text") {
  VgMetadata md = striped_vg();
  Status st = md.validate();
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(md.job_les(md.jobs[0]) == IndexRange{4, 10});
  bool seen = false;
  for (const PvRun& r : md.pv_map(2))
    if (r.job == 3) {
      seen = true;
      CHECK(r.pe == 40);
      CHECK(r.count == 5);
      CHECK(r.stripe == 1);
      CHECK(r.stripes == 2);
    }
  CHECK(seen);

  const std::string text = encode_metadata(md);
  CHECK(text.find("leg: 1") != std::string::npos);
  Result<VgMetadata> back = decode_metadata(text, "leg");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  REQUIRE(back->jobs.size() == 1);
  CHECK(back->jobs[0].leg == std::optional<uint32_t>(1));
  CHECK(back->jobs[0].count == 5);
  CHECK(encode_metadata(*back) == text);

  // A linear job's text has no leg key and decodes without one, as before.
  VgMetadata lin = striped_vg();
  lin.jobs[0].leg.reset();
  lin.jobs[0].le = 1;
  lin.jobs[0].count = 2;
  lin.jobs[0].src_pv = 0;
  lin.jobs[0].src_pe = 1;
  lin.jobs[0].record_size = 4 * KiB;
  REQUIRE(lin.validate().ok());
  const std::string lin_text = encode_metadata(lin);
  CHECK(lin_text.find("leg:") == std::string::npos);
  Result<VgMetadata> lin_back = decode_metadata(lin_text, "linear");
  REQUIRE_MESSAGE(lin_back.ok(), lin_back.status().message());
  CHECK_FALSE(lin_back->jobs[0].leg.has_value());
}

TEST_CASE("leg move: hostile leg jobs are refused naming the field") {
  const std::string text = encode_metadata(striped_vg());
  SUBCASE("leg out of the run's range") {
    check_refused(decode_metadata(replaced(text, "leg: 1", "leg: 2"), "t").status(), "leg 2 is out of range");
  }
  SUBCASE("leg beyond any stripe count") {
    check_refused(decode_metadata(replaced(text, "leg: 1", "leg: 4294967296"), "t").status(), "\"leg\"");
  }
  SUBCASE("leg not a number") {
    check_refused(decode_metadata(replaced(text, "leg: 1", "leg: one"), "t").status(), "\"leg\"");
  }
  SUBCASE("the source is the other leg's PV") {
    check_refused(decode_metadata(replaced(text, "source: pv1 20", "source: pv0 10"), "t").status(),
                  "leg 1 of LV st LE 4-13 is PV pv1 PE 20-24, not its source PV pv0");
  }
  SUBCASE("the leg does not start where the job says") {
    check_refused(decode_metadata(replaced(text, "source: pv1 20", "source: pv1 21"), "t").status(), "leg 1");
  }
  SUBCASE("LE not the start of a striped run") {
    VgMetadata md = striped_vg();
    md.jobs[0].le = 5;
    check_refused(md.validate(), "does not start a striped run");
    md.jobs[0].le = 0;  // a linear run
    check_refused(md.validate(), "does not start a striped run");
  }
  SUBCASE("part of a leg") {
    VgMetadata md = striped_vg();
    md.jobs[0].count = 4;
    check_refused(md.validate(), "leg 1");
  }
  SUBCASE("a job on a striped run without a leg") {
    VgMetadata md = striped_vg();
    md.jobs[0].leg.reset();
    check_refused(md.validate(), "names no leg");
  }
  SUBCASE("the destination overlapping the other leg") {
    VgMetadata md = striped_vg();
    md.jobs[0].dst_pv = 0;
    md.jobs[0].dst_pe = 12;
    check_refused(md.validate(), "reserved by job 3");
  }
}

TEST_CASE("leg move: remap_leg puts one leg elsewhere and keeps the run") {
  VgMetadata md = striped_vg();
  ExtentMap map = md.lvs[0].map;
  map.remap_leg(4, 1, 2, 40);
  REQUIRE(map.runs().size() == 2);
  const MapRun& r = map.runs()[1];
  CHECK(r.le == 4);
  CHECK(r.count == 10);
  CHECK(r.stripe_size == 64 * KiB);
  CHECK(r.leg(0) == StripeLeg{0, 10});
  CHECK(r.leg(1) == StripeLeg{2, 40});
  map.remap_leg(4, 0, 1, 60);
  CHECK(map.runs()[1].leg(0) == StripeLeg{1, 60});
  CHECK(map.runs()[0] == md.lvs[0].map.runs()[0]);
}

TEST_CASE("leg move: the hidden LVs of an LVM2 VG carry the leg and decode back; hostile tags stay LVs") {
  VgMetadata md = striped_vg();
  md.jobs[0].record_pv = 1;
  md.jobs[0].record_pe = 30;
  md.kept = {{"id", "\"abcdef-ghij\""}};
  REQUIRE(md.validate().ok());
  std::vector<LvInfo> lvs = lvm2::job_lvs(md);
  REQUIRE(lvs.size() == 2);
  std::string tags;
  for (const auto& [k, v] : lvs[0].kept)
    if (k == "tags") tags = v;
  CHECK(tags.find("\"vgfs.leg=1\"") != std::string::npos);
  CHECK(tags.find("\"vgfs.source=pv1:20\"") != std::string::npos);
  CHECK(lvs[0].map.runs()[0].count == 5);

  auto decoded = [&](const std::string& from, const std::string& to) {
    VgMetadata back = md;
    back.jobs.clear();
    std::vector<LvInfo> pair = lvs;
    for (auto& [k, v] : pair[0].kept)
      if (k == "tags" && !from.empty()) v = replaced(v, from, to);
    back.lvs.insert(back.lvs.end(), pair.begin(), pair.end());
    lvm2::jobs_from_lvs(&back);
    return back;
  };
  VgMetadata back = decoded("", "");
  REQUIRE(back.jobs.size() == 1);
  CHECK(back.jobs[0].leg == std::optional<uint32_t>(1));
  CHECK(back.jobs[0].src_pv == 1);
  CHECK(back.jobs[0].src_pe == 20);
  CHECK(back.jobs[0].dst_pv == 2);
  CHECK(back.jobs[0].dst_pe == 40);
  CHECK(back.jobs[0].count == 5);
  CHECK(back.lvs.size() == 1);
  Status st = back.validate();
  CHECK_MESSAGE(st.ok(), st.message());

  // An older text (no vgfs.leg tag) of a linear move decodes as before; one
  // of these with a hostile leg is no job: it stays two hidden LVs.
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"vgfs.leg=1\"", "\"vgfs.leg=2\""},           // out of range
           {"\"vgfs.leg=1\"", "\"vgfs.leg=01\""},          // two spellings
           {"\"vgfs.leg=1\"", "\"vgfs.leg=x\""},           // not a number
           {"\"vgfs.leg=1\"", "\"vgfs.leg=0\""},           // leg 0 is on pv0, not the source pv1
           {"\"vgfs.leg=1\"", "\"vgfs.leg=1\", \"vgfs.leg=1\""},  // twice
           {", \"vgfs.leg=1\"", ""},                      // no leg on a striped run
           {"vgfs.source=pv1:20", "vgfs.source=pv0:10"}}) {  // the wrong leg's PV
    CAPTURE(to);
    VgMetadata hostile = decoded(from, to);
    CHECK(hostile.jobs.empty());
    CHECK(hostile.lvs.size() == 3);
  }
}

// ---- the write path of a moving leg ----

namespace {

constexpr uint64_t kEs = 64 * KiB;

const char* kConfig = R"(vg:
  name: vglegw
  extent_size: 64KiB
  region_size: 64KiB
pvs:
  - {name: pv0, path: pv0.img, size: 24MiB}
  - {name: pv1, path: pv1.img, size: 24MiB}
  - {name: pv2, path: pv2.img, size: 24MiB}
lvs:
  - {name: lin, size: 64KiB}
)";

}  // namespace

TEST_CASE("leg move: writes below P reach the leg's bitmap, above P the source only; other legs never") {
  TempDir dir;
  std::unique_ptr<VgStore> store = vgfs_test::create_and_open(dir, kConfig);
  // LV st: 8 extents striped over pv0 PE 10-13 and pv1 PE 10-13 in 4 KiB chunks.
  {
    VgMetadata md = store->metadata();
    LvInfo st;
    st.name = "st";
    st.uuid = new_uuid();
    MapRun r;
    r.count = 8;
    r.pv = 0;
    r.pe = 10;
    r.stripe_size = 4 * KiB;
    r.more_legs = {StripeLeg{1, 10}};
    st.map.append_run(r);
    md.lvs.push_back(st);
    Status s = store->commit(std::move(md));
    REQUIRE_MESSAGE(s.ok(), s.message());
  }
  const VgMetadata& md = store->metadata();
  const uint32_t lv = static_cast<uint32_t>(md.find_lv("st"));
  VolumeSet vs(*store);
  const uint64_t size = vs.lv_size(lv);
  REQUIRE(size == 8 * kEs);
  std::mt19937_64 rng(12);
  std::string model(size, '\0');
  for (char& c : model) c = static_cast<char>(rng() % 255 + 1);
  REQUIRE(*vs.write(lv, 0, model.data(), size) == size);

  // Leg 1 (pv1 PE 10-13) moving to pv2 PE 50-53; record at pv2 PE 60.
  auto place = [&](uint32_t pv, uint64_t pe) { return md.pvs[pv].pe_start + pe * kEs; };
  Transfer::Geometry g;
  g.job_id = 1;
  g.leg = true;
  g.lv_begin = 0;
  g.size = 4 * kEs;
  g.region_size = kEs;
  g.source = {&store->pv(1), place(1, 10)};
  g.destination = {&store->pv(2), place(2, 50)};
  g.record = {&store->pv(2), place(2, 60)};
  Transfer t(g, nullptr);
  vs.publish_transfers(lv, {&t});
  REQUIRE(t.copy_next().ok());
  REQUIRE(t.copy_next().ok());  // P = 2 regions: leg bytes 0-128 KiB, LV chunks 1, 3, .. 63
  REQUIRE(t.progress_pointer() == 2 * kEs);

  auto leg_byte_to_lv = [](uint64_t leg, uint64_t b) { return ((b / (4 * KiB)) * 2 + leg) * 4 * KiB + b % (4 * KiB); };
  auto dirty = [&] {
    std::vector<uint64_t> out;
    for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) out.push_back(*r);
    return out;
  };
  auto write = [&](uint64_t at, uint64_t len, char c) {
    std::string bytes(len, c);
    REQUIRE(*vs.write(lv, at, bytes.data(), len) == len);
    std::fill_n(model.begin() + static_cast<ptrdiff_t>(at), len, c);
  };
  const std::string dst_path = store->pv(2).path();
  auto dst = [&] { return vgfs_test::pread_file(dst_path, g.destination.offset, g.size); };
  const std::string dst_before = dst();

  // Leg 0's chunks, below and above P: not the transfer's, nothing dirty.
  write(leg_byte_to_lv(0, 0), 4 * KiB, 'a');
  write(leg_byte_to_lv(0, 3 * kEs), 4 * KiB, 'b');
  CHECK(dirty().empty());
  // Leg 1 above P (region 3): the source only.
  write(leg_byte_to_lv(1, 3 * kEs + 8 * KiB), 4 * KiB, 'c');
  CHECK(dirty().empty());
  CHECK(dst() == dst_before);
  // Leg 1 below P (region 1): its bit, persisted before the source write.
  write(leg_byte_to_lv(1, kEs + 4 * KiB), 4 * KiB, 'd');
  CHECK(dirty() == std::vector<uint64_t>{1});
  CHECK(t.bitmap_bytes()[0] == '\x02');
  // One write over both legs and P (8 chunks from LV chunk 60: leg byte
  // 120-136 KiB of each leg): region 1 again and 2, which is above P.
  write(60 * 4 * KiB, 32 * KiB, 'e');
  CHECK(dirty() == std::vector<uint64_t>{1});

  // Reads come from the source until the switch.
  std::string all(size, '\0');
  REQUIRE(*vs.read(lv, 0, all.data(), size) == size);
  CHECK(all == model);

  // Finish the copy, then the switch: leg 1 is on pv2 now, the data the same.
  while (t.progress_pointer() < g.size) REQUIRE(t.copy_next().ok());
  for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) REQUIRE(t.recopy(*r).ok());
  REQUIRE(t.checkpoint().ok());
  CHECK(dst() == vgfs_test::pread_file(store->pv(1).path(), g.source.offset, g.size));
  t.block_writes();
  VgMetadata next = store->metadata();
  next.lvs[lv].map.remap_leg(0, 1, 2, 50);
  REQUIRE(store->commit(next).ok());
  REQUIRE(vs.publish_lv(store->metadata(), lv).ok());
  vs.publish_transfers(lv, {});
  t.finish();
  vs.quiesce();
  REQUIRE(*vs.read(lv, 0, all.data(), size) == size);
  CHECK(all == model);
  // And a write after the switch lands on the new leg.
  write(leg_byte_to_lv(1, 0), 4 * KiB, 'f');
  CHECK(vgfs_test::pread_file(dst_path, g.destination.offset, 4 * KiB) == std::string(4 * KiB, 'f'));
}

// ---- the manager: pvmove of a PV holding a leg ----

namespace {

// pv0-pv2 of 16 MiB; LV st striped over pv0 PE 10-13 and pv1 PE 10-13, LV
// lin on pv0; the manager over them, started.
struct LegMount {
  TempDir dir;
  std::unique_ptr<VgStore> store;
  std::unique_ptr<VolumeSet> volume;
  std::unique_ptr<VolumeManager> manager;
  LegMount() {
    store = vgfs_test::create_and_open(dir, kConfig);
    VgMetadata md = store->metadata();
    LvInfo st;
    st.name = "st";
    st.uuid = new_uuid();
    MapRun r;
    r.count = 8;
    r.pv = 0;
    r.pe = 10;
    r.stripe_size = 4 * KiB;
    r.more_legs = {StripeLeg{1, 10}};
    st.map.append_run(r);
    md.lvs.push_back(st);
    REQUIRE(store->commit(std::move(md)).ok());
    volume = std::make_unique<VolumeSet>(*store);
    manager = std::make_unique<VolumeManager>(*store, *volume);
    REQUIRE(manager->start().ok());
  }
  ~LegMount() { manager->shutdown(); }
  const MapRun& run() const { return store->metadata().lvs[store->metadata().find_lv("st")].map.runs()[0]; }
  void wait_ended() {
    for (;;) {
      bool running = false;
      for (const JobStatus& j : manager->jobs())
        running = running || (j.sync_status != "completed" && j.sync_status != "aborted" && j.sync_status != "failed");
      if (!running) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

}  // namespace

TEST_CASE("leg move: pvmove of a PV holding a leg moves that leg; the data stays; refusals change nothing") {
  LegMount m;
  const uint32_t lv = *m.volume->slot("st");
  std::mt19937_64 rng(7);
  std::string model(8 * kEs, '\0');
  for (char& c : model) c = static_cast<char>(rng());
  REQUIRE(*m.volume->write(lv, 0, model.data(), model.size()) == model.size());

  // pv1 holds leg 1: it cannot go to pv0, which holds leg 0.
  const uint64_t seqno = m.store->metadata().seqno;
  Result<JobsStarted> refused = m.manager->pvmove("pv1", {"pv0"});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message() ==
        "leg 1 of LV st LE 0-7 (striped over 2 PVs) cannot move to PV pv0: it holds another leg of the same "
        "striped run");
  CHECK(m.store->metadata().seqno == seqno);
  // `move` of striped LEs says to use pvmove.
  Result<JobsStarted> moved = m.manager->move("st", std::nullopt, "pv2", std::nullopt);
  REQUIRE_FALSE(moved.ok());
  CHECK(moved.status().message().find("pvmove") != std::string::npos);

  // Without a destination, leg 1 goes to pv2, the only PV without a leg.
  Result<JobsStarted> started = m.manager->pvmove("pv1", {});
  REQUIRE_MESSAGE(started.ok(), started.status().message());
  REQUIRE(started->jobs.size() == 1);
  Result<JobStatus> status = m.manager->job(started->jobs[0]);
  REQUIRE(status.ok());
  CHECK(status->leg == std::optional<uint32_t>(1));
  CHECK(status->le_count == 8);
  CHECK(status->size == 4 * kEs);
  // A second pvmove touching the run while the job runs is busy.
  CHECK(m.manager->pvmove("pv0", {}).status().code() == EBUSY);
  m.wait_ended();
  REQUIRE(m.manager->job(started->jobs[0])->sync_status == "completed");
  CHECK(m.run().leg(0) == StripeLeg{0, 10});
  CHECK(m.run().leg(1).pv == 2);
  CHECK(m.run().count == 8);
  std::string back(model.size(), '\0');
  REQUIRE(*m.volume->read(lv, 0, back.data(), back.size()) == back.size());
  CHECK(back == model);
  CHECK(m.store->metadata().free_extents(1) == m.store->metadata().pvs[1].pe_count);
}

TEST_CASE("leg move: abort leaves the run on its source and frees the destination") {
  LegMount m;
  const uint32_t lv = *m.volume->slot("st");
  std::string model(8 * kEs, '\0');
  std::mt19937_64 rng(8);
  for (char& c : model) c = static_cast<char>(rng());
  REQUIRE(*m.volume->write(lv, 0, model.data(), model.size()) == model.size());
  const MapRun before = m.run();
  const uint64_t free_before = m.store->metadata().free_extents(2);
  Result<JobsStarted> started = m.manager->pvmove("pv1", {"pv2"}, 4096);  // slow: abort comes first
  REQUIRE_MESSAGE(started.ok(), started.status().message());
  REQUIRE(started->jobs.size() == 1);
  REQUIRE(m.manager->job(started->jobs[0])->leg == std::optional<uint32_t>(1));
  CHECK(m.store->metadata().free_extents(2) == free_before - 4);
  // A write while it runs goes through the transfer (both legs touched).
  std::string bytes(64 * KiB, 'w');
  REQUIRE(*m.volume->write(lv, 3 * kEs, bytes.data(), bytes.size()) == bytes.size());
  std::copy(bytes.begin(), bytes.end(), model.begin() + static_cast<ptrdiff_t>(3 * kEs));
  REQUIRE(m.manager->abort(started->jobs[0]).ok());
  CHECK(m.manager->job(started->jobs[0])->sync_status == "aborted");
  CHECK(m.run() == before);
  CHECK(m.store->metadata().free_extents(2) == free_before);
  std::string back(model.size(), '\0');
  REQUIRE(*m.volume->read(lv, 0, back.data(), back.size()) == back.size());
  CHECK(back == model);
}
