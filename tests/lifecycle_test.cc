// LV and PV lifecycle through the VolumeManager on real PV files: size
// rounding, the extend preference, refusals, and the PV index shift of
// pvremove.
#include <doctest/doctest.h>

#include <fstream>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/config.h"
#include "vgfs/control.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"

using namespace vgfs;

namespace {

// The lifecycle verbs need no copier: the manager is not started.
struct Mount : vgfs_test::MountedVg {
  Mount() : MountedVg(vgfs_test::two_pv_yaml(), /*start=*/false) {}
};

}  // namespace

TEST_CASE("lvcreate rounds up to whole extents and says so") {
  Mount m;
  Result<LvSized> r = m.manager->lvcreate("b", 1500 * KiB, {});
  REQUIRE(r.ok());
  CHECK(r->extents == 2);
  CHECK(ok_text(cmd::Lvcreate{"b", 1500 * KiB, {}}, *r) == "LV b created: 2 extents (2MiB), rounded up from 1500KiB");
  CHECK(m.lv("b").map.extent_count() == 2);
  std::optional<uint32_t> slot = m.volume->slot("b");
  REQUIRE(slot);
  CHECK(m.volume->lv_size(*slot) == 2 * MiB);
  Result<LvSized> exact = m.manager->lvcreate("c", 3 * MiB, {});
  REQUIRE(exact.ok());
  CHECK(ok_text(cmd::Lvcreate{"c", 3 * MiB, {}}, *exact).find("rounded") == std::string::npos);
}

TEST_CASE("lvcreate refusals") {
  Mount m;
  CHECK(m.manager->lvcreate("a", MiB, {}).status().code() == EEXIST);
  CHECK(m.manager->lvcreate("big", 200 * MiB, {}).status().code() == ENOSPC);
  CHECK(m.manager->lvcreate("b", MiB, {"pv9"}).status().code() == ENOENT);
  CHECK(m.manager->lvcreate(".x", MiB, {}).status().code() == EINVAL);
  CHECK(m.store->metadata().seqno == 1);  // nothing committed
}

TEST_CASE("lvcreate on named PVs uses only those") {
  Mount m;
  REQUIRE(m.manager->lvcreate("b", 10 * MiB, {"pv1"}).ok());
  for (const MapRun& r : m.lv("b").map.runs()) CHECK(r.pv == 1);
}

TEST_CASE("lvextend continues the last run when the next PEs are free") {
  Mount m;
  REQUIRE(m.manager->lvextend("a", 9 * MiB).ok());
  REQUIRE(m.lv("a").map.runs().size() == 1);
  CHECK(m.lv("a").map.extent_count() == 9);
  // Block the PE after the end: the extension lands elsewhere.
  const MapRun end = m.lv("a").map.runs().back();
  REQUIRE(m.manager->lvcreate("wall", MiB, {}).ok());
  const MapRun wall = m.lv("wall").map.runs()[0];
  if (wall.pv == end.pv && wall.pe == end.pe + end.count) {
    REQUIRE(m.manager->lvextend("a", 12 * MiB).ok());
    CHECK(m.lv("a").map.runs().size() == 2);
  }
  CHECK(m.manager->lvextend("a", 2 * MiB).status().code() == EINVAL);
  CHECK(m.manager->lvextend("zz", 20 * MiB).status().code() == ENOENT);
}

TEST_CASE("lvreduce keeps the head and refuses an open LV") {
  Mount m;
  REQUIRE(m.manager->lvextend("a", 8 * MiB).ok());
  uint32_t slot = *m.volume->slot("a");
  std::string data(8 * MiB, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  REQUIRE(m.volume->write(slot, 0, data.data(), data.size()).ok());
  m.volume->opened(slot);
  CHECK(m.manager->lvreduce("a", 2 * MiB).status().code() == EBUSY);
  CHECK(m.manager->lvremove("a").code() == EBUSY);
  m.volume->closed(slot);
  REQUIRE(m.manager->lvreduce("a", 3 * MiB).ok());
  CHECK(m.volume->lv_size(slot) == 3 * MiB);
  std::string back(3 * MiB, '\0');
  REQUIRE(m.volume->read(slot, 0, back.data(), back.size()).ok());
  CHECK(back == data.substr(0, 3 * MiB));
  CHECK(m.manager->lvreduce("a", 5 * MiB).status().code() == EINVAL);
}

TEST_CASE("lvrename keeps the slot; lvremove frees the extents") {
  Mount m;
  uint32_t slot = *m.volume->slot("a");
  uint64_t free_before = m.store->metadata().total_free_extents();
  REQUIRE(m.manager->lvrename("a", "b").ok());
  CHECK(m.volume->slot("b") == slot);
  CHECK_FALSE(m.volume->slot("a"));
  CHECK(m.manager->lvrename("b", "b").code() == EEXIST);
  REQUIRE(m.manager->lvremove("b").ok());
  CHECK_FALSE(m.volume->exists(slot));
  CHECK(m.store->metadata().total_free_extents() == free_before + 4);
  CHECK(m.manager->lvremove("b").code() == ENOENT);
}

TEST_CASE("pvadd then pvremove of an emptied PV shifts the PV indices") {
  Mount m;
  {
    std::ofstream f(m.dir / "pv2.img");
  }
  std::filesystem::resize_file(m.dir / "pv2.img", 64 * MiB);
  Result<PvAdded> added = m.manager->pvadd(m.dir / "pv2.img", "");
  REQUIRE(added.ok());
  CHECK(added->pv == "pv2");
  CHECK(ok_text(cmd::Pvadd{m.dir / "pv2.img", ""}, *added).rfind("PV pv2 added", 0) == 0);
  CHECK(m.manager->pvadd(m.dir / "pv2.img", "other").status().code() == EEXIST);
  REQUIRE(m.manager->lvcreate("on2", 5 * MiB, {"pv2"}).ok());
  uint32_t slot = *m.volume->slot("on2");
  std::string data(5 * MiB, 'q');
  REQUIRE(m.volume->write(slot, 0, data.data(), data.size()).ok());

  CHECK(m.manager->pvremove("pv0").status().code() == EBUSY);  // LV a lives there
  REQUIRE(m.manager->lvremove("a").ok());
  REQUIRE(m.manager->pvremove("pv0").ok());
  const VgMetadata& md = m.store->metadata();
  REQUIRE(md.pvs.size() == 2);
  CHECK(md.pvs[1].name == "pv2");
  CHECK(m.lv("on2").map.runs()[0].pv == 1);  // index moved down with the PV
  std::string back(5 * MiB, '\0');
  REQUIRE(m.volume->read(slot, 0, back.data(), back.size()).ok());
  CHECK(back == data);
  CHECK(vgfs_test::pread_file(m.dir / "pv0.img", 0, 8) == std::string(8, '\0'));  // label wiped
}

TEST_CASE("every commit archives the metadata it replaces") {
  Mount m;
  REQUIRE(m.manager->lvcreate("b", MiB, {}).ok());
  REQUIRE(m.manager->lvremove("b").ok());
  std::string first = vgfs_test::read_file(m.dir / "archive/vg0_00000001.yaml");
  std::string second = vgfs_test::read_file(m.dir / "archive/vg0_00000002.yaml");
  Result<VgMetadata> one = decode_metadata(first, "archive");
  Result<VgMetadata> two = decode_metadata(second, "archive");
  REQUIRE(one.ok());
  REQUIRE(two.ok());
  CHECK(one->find_lv("b") < 0);
  CHECK(two->find_lv("b") >= 0);
}

TEST_CASE("lvchange commits mode and owner, publishes them, and they survive a reopen") {
  Mount m;
  const uint32_t slot = *m.volume->slot("a");
  CHECK_FALSE(m.volume->lv_uid(slot));
  const uint64_t seqno = m.store->metadata().seqno;
  REQUIRE(m.manager->lvchange("a", LvOwnership{0640, 65534, 100}).ok());
  CHECK(m.store->metadata().seqno == seqno + 1);
  CHECK(m.volume->lv_mode(slot) == 0640u);  // published: getattr reads these
  CHECK(m.volume->lv_uid(slot) == std::optional<uint32_t>(65534));
  CHECK(m.volume->lv_gid(slot) == std::optional<uint32_t>(100));
  REQUIRE(m.manager->lvchange("a", LvOwnership{0604, {}, {}}).ok());  // unset fields keep their value
  CHECK(m.volume->lv_mode(slot) == 0604u);
  CHECK(m.volume->lv_uid(slot) == std::optional<uint32_t>(65534));
  REQUIRE(m.manager->lvchange("a", LvOwnership{0604, {}, {}}).ok());  // no change, no commit
  CHECK(m.store->metadata().seqno == seqno + 2);
  CHECK(m.manager->lvchange("a", LvOwnership{04600, {}, {}}).code() == EINVAL);
  CHECK(m.manager->lvchange("a", LvOwnership{{}, UINT32_MAX, {}}).code() == EINVAL);
  CHECK(m.manager->lvchange("nope", LvOwnership{0600, {}, {}}).code() == ENOENT);
  CHECK(m.store->metadata().seqno == seqno + 2);  // refusals change nothing
  Result<VgConfig> cfg = load_config(m.dir / "vg.yaml");
  REQUIRE(cfg.ok());
  m.manager.reset();
  m.volume.reset();
  m.store.reset();
  auto reopened = VgStore::open(*cfg, OpenMode::kReadWrite, nullptr);
  REQUIRE(reopened.ok());
  const VgMetadata& md = (*reopened)->metadata();
  const LvInfo& a = md.lvs[static_cast<size_t>(md.find_lv("a"))];
  CHECK(a.mode == 0604u);
  CHECK(a.uid == std::optional<uint32_t>(65534));
  CHECK(a.gid == std::optional<uint32_t>(100));
}

TEST_CASE("lvcreate with an owner and mode") {
  Mount m;
  REQUIRE(m.manager->lvcreate("b", MiB, {}, LvOwnership{0640, 1000, {}}).ok());
  CHECK(m.lv("b").mode == 0640u);
  CHECK(m.lv("b").uid == std::optional<uint32_t>(1000));
  CHECK_FALSE(m.lv("b").gid);
  CHECK(m.volume->lv_uid(*m.volume->slot("b")) == std::optional<uint32_t>(1000));
  CHECK(m.manager->lvcreate("c", MiB, {}, LvOwnership{01777, {}, {}}).status().code() == EINVAL);
  CHECK(m.store->metadata().find_lv("c") < 0);
}
