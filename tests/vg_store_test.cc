// Unit tests of VgStore (include/vgfs/vg_store.h) on PV image files in a
// temporary folder: create, open, commit, damage and repair, locking, and
// the refusals of create.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#include "printers.h"
#include "vgfs/config.h"
#include "vgfs/fault_injector.h"
#include "vgfs/metadata.h"
#include "vgfs/pv_format.h"
#include "vgfs/vg_store.h"
#include "vgfs/job_record.h"
#include "vgfs/pv_device.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <unistd.h>

using namespace vgfs;
using vgfs_test::TempDir;
namespace fs = std::filesystem;

namespace {

// Two 64 MiB PVs, 1 MiB extents; lvA placed by the allocator, lvB explicit.
const char* kConfig = R"(vg:
  name: vgt
  extent_size: 1MiB
pvs:
  - {name: pv0, path: pv0.img, size: 64MiB}
  - {name: pv1, path: pv1.img, size: 64MiB}
lvs:
  - {name: lvA, size: 8MiB}
  - name: lvB
    extents:
      - {le: 0-3, pv: pv1, pe: 10-13}
)";

VgConfig load(const TempDir& dir, const std::string& text, const std::string& name = "vg.yaml") {
  std::string path = dir / name;
  vgfs_test::write_file(path, text);
  Result<VgConfig> r = load_config(path);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return *r;
}

VgConfig create_vg(const TempDir& dir, const std::string& text = kConfig) {
  VgConfig cfg = load(dir, text);
  std::vector<std::string> notes;
  Status s = VgStore::create(cfg, false, &notes);
  REQUIRE_MESSAGE(s.ok(), s.message());
  return cfg;
}

std::unique_ptr<VgStore> open_ok(const VgConfig& cfg, OpenMode mode, std::vector<std::string>* warnings) {
  Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, mode, warnings);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return std::move(*r);
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s + "\n";
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Flips a few bytes of the metadata text in slot `slot` of the PV at `path`.
void damage_slot_text(const std::string& path, const PvLayout& layout, int slot) {
  uint64_t at = layout.slot_offset[slot] + kSlotHeaderSize;
  std::string bytes = vgfs_test::pread_file(path, at, 16);
  REQUIRE(bytes.size() == 16);
  for (char& c : bytes) c = static_cast<char>(c ^ 0x5a);
  vgfs_test::pwrite_file(path, at, bytes);
}

struct Labels {
  PvLayout layout[2];
};

Labels read_layouts(const VgConfig& cfg) {
  std::vector<std::string> w;
  auto store = open_ok(cfg, OpenMode::kReadOnly, &w);
  Labels l;
  for (uint32_t i = 0; i < 2; ++i) {
    int pv = store->metadata().find_pv(cfg.pvs[i].name);
    REQUIRE(pv >= 0);
    l.layout[i] = store->label(static_cast<uint32_t>(pv)).layout;
  }
  return l;
}

}  // namespace

TEST_CASE("create then open gives the same metadata") {
  TempDir dir;
  VgConfig cfg = load(dir, kConfig);
  std::vector<uint64_t> sizes = {64 * MiB, 64 * MiB};
  std::vector<std::string> notes;
  Result<VgMetadata> planned = metadata_from_config(cfg, sizes, &notes);
  REQUIRE_MESSAGE(planned.ok(), planned.status().message());

  Status s = VgStore::create(cfg, false, &notes);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(fs::file_size(dir / "pv0.img") == 64 * MiB);
  CHECK(fs::file_size(dir / "pv1.img") == 64 * MiB);

  std::vector<std::string> warnings;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  const VgMetadata& md = store->metadata();
  CHECK(md.seqno == 1);
  CHECK(md.name == "vgt");
  CHECK(md.extent_size == MiB);
  CHECK(md.region_size == 256 * KiB);
  CHECK(md.validate().ok());
  CHECK_FALSE(store->read_only());
  REQUIRE(md.pvs.size() == 2);
  REQUIRE(store->pv_count() == 2);
  for (uint32_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const PvLabel& label = store->label(i);
    CHECK(label.vg_uuid == md.uuid);
    CHECK(label.pv_uuid == md.pvs[i].uuid);
    CHECK(label.layout.pe_start == md.pvs[i].pe_start);
    CHECK(label.layout.pe_count == md.pvs[i].pe_count);
    CHECK(label.layout.extent_size == MiB);
    CHECK(md.pvs[i].pe_count == (64 * MiB - md.pvs[i].pe_start) / MiB);
    CHECK(store->pv(i).size() == 64 * MiB);
    CHECK(store->pv(i).capabilities().local_fd >= 0);
  }
  CHECK(md.pvs[0].name == "pv0");
  CHECK(md.pvs[1].name == "pv1");
  CHECK(fs::equivalent(md.pvs[0].path, dir / "pv0.img"));

  REQUIRE(md.lvs.size() == 2);
  int a = md.find_lv("lvA");
  int b = md.find_lv("lvB");
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  CHECK(md.lvs[static_cast<size_t>(a)].map.extent_count() == 8);
  REQUIRE(md.lvs[static_cast<size_t>(b)].map.runs().size() == 1);
  CHECK(md.lvs[static_cast<size_t>(b)].map.runs()[0] == MapRun{0, 4, 1, 10});

  // The plan from the same config has the same shape (UUIDs are new).
  REQUIRE(planned->lvs.size() == md.lvs.size());
  for (size_t i = 0; i < md.lvs.size(); ++i) {
    CHECK(planned->lvs[i].name == md.lvs[i].name);
    CHECK(planned->lvs[i].map == md.lvs[i].map);
  }
}

TEST_CASE("the first open of a fresh VG reports nothing") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  CHECK_MESSAGE(warnings.empty(), joined(warnings));
}

TEST_CASE("a second open reports nothing") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  { auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings); }
  warnings.clear();
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  CHECK_MESSAGE(warnings.empty(), joined(warnings));
  CHECK(store->metadata().seqno == 1);
}

TEST_CASE("commit increments seqno and survives reopen") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  ExtentMap lvc_map;
  Uuid vg_uuid{};
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    vg_uuid = store->metadata().uuid;
    VgMetadata next = store->metadata();
    Result<std::vector<MapRun>> runs = allocate_extents(next, 5, {});
    REQUIRE(runs.ok());
    LvInfo lv;
    lv.name = "lvC";
    lv.uuid = new_uuid();
    lv.mode = 0644;
    for (const MapRun& r : *runs) lv.map.append(r.pv, r.pe, r.count);
    lvc_map = lv.map;
    next.lvs.push_back(lv);
    Status s = store->commit(next);
    REQUIRE_MESSAGE(s.ok(), s.message());
    CHECK(store->metadata().seqno == 2);
    CHECK(store->metadata().find_lv("lvC") == 2);

    // An invalid next state is refused and changes nothing.
    VgMetadata bad = store->metadata();
    bad.lvs[2].map.append(bad.lvs[1].map.runs()[0].pv, bad.lvs[1].map.runs()[0].pe, 1);
    Status refused = store->commit(bad);
    CHECK_FALSE(refused.ok());
    CHECK(store->metadata().seqno == 2);
    CHECK(store->metadata().lvs[2].map == lvc_map);
  }
  {
    warnings.clear();
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    const VgMetadata& md = store->metadata();
    CHECK(md.seqno == 2);
    CHECK(md.uuid == vg_uuid);
    int c = md.find_lv("lvC");
    REQUIRE(c >= 0);
    CHECK(md.lvs[static_cast<size_t>(c)].map == lvc_map);
    CHECK(md.lvs[static_cast<size_t>(c)].mode == 0644u);

    // Both PVs hold seqno 2 in slot 0.
    for (uint32_t i = 0; i < 2; ++i) {
      const PvLayout& l = store->label(i).layout;
      std::string header = vgfs_test::pread_file(store->pv(i).path(), l.slot_offset[0], kSlotHeaderSize);
      Result<SlotHeader> h = decode_slot_header(header, l.slot_size);
      REQUIRE(h.ok());
      CHECK(h->seqno == 2);
    }

    VgMetadata next = md;
    next.lvs.erase(next.lvs.begin() + c);
    REQUIRE(store->commit(next).ok());
    CHECK(store->metadata().seqno == 3);
  }
  warnings.clear();
  auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
  CHECK(store->metadata().seqno == 3);
  CHECK(store->metadata().find_lv("lvC") == -1);
  CHECK(store->read_only());
  Status ro = store->commit(store->metadata());
  CHECK_FALSE(ro.ok());
  CHECK(ro.code() == EROFS);
}

TEST_CASE("a damaged slot on one PV is a warning and gets repaired") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  { auto settle = open_ok(cfg, OpenMode::kReadWrite, &warnings); }
  Labels labels = read_layouts(cfg);
  damage_slot_text(cfg.pvs[0].path, labels.layout[0], 1 % 2);  // seqno 1 lives in slot 1

  warnings.clear();
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    CHECK_FALSE(warnings.empty());
    CHECK(store->metadata().seqno == 1);
    CHECK(store->metadata().find_lv("lvB") >= 0);
  }
  warnings.clear();
  auto again = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  CHECK_MESSAGE(warnings.empty(), joined(warnings));
  CHECK(again->metadata().seqno == 1);
}

TEST_CASE("read-only open reports damage without repairing it") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  { auto settle = open_ok(cfg, OpenMode::kReadWrite, &warnings); }
  Labels labels = read_layouts(cfg);
  damage_slot_text(cfg.pvs[1].path, labels.layout[1], 1);
  std::string before = vgfs_test::read_file(cfg.pvs[1].path);
  for (int i = 0; i < 2; ++i) {
    warnings.clear();
    auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
    CHECK_FALSE(warnings.empty());
    CHECK(store->metadata().seqno == 1);
  }
  CHECK(vgfs_test::read_file(cfg.pvs[1].path) == before);
}

TEST_CASE("the newest valid copy wins; an older one is used when all newer are damaged") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    VgMetadata next = store->metadata();
    next.lvs.erase(next.lvs.begin() + next.find_lv("lvA"));
    REQUIRE(store->commit(next).ok());  // seqno 2 in slot 0; seqno 1 remains in slot 1
  }
  Labels labels = read_layouts(cfg);
  damage_slot_text(cfg.pvs[0].path, labels.layout[0], 0);
  damage_slot_text(cfg.pvs[1].path, labels.layout[1], 0);
  warnings.clear();
  auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
  CHECK_FALSE(warnings.empty());
  CHECK(store->metadata().seqno == 1);
  CHECK(store->metadata().find_lv("lvA") >= 0);
}

TEST_CASE("damage on every slot of every PV makes open fail") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    REQUIRE(store->commit(store->metadata()).ok());  // both slots now hold metadata
  }
  Labels labels = read_layouts(cfg);
  for (int pv = 0; pv < 2; ++pv)
    for (int slot = 0; slot < 2; ++slot) damage_slot_text(cfg.pvs[pv].path, labels.layout[pv], slot);
  std::string before0 = vgfs_test::read_file(cfg.pvs[0].path);
  for (OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
    warnings.clear();
    Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, mode, &warnings);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
  CHECK(vgfs_test::read_file(cfg.pvs[0].path) == before0);  // a failed open writes nothing
}

TEST_CASE("a damaged label copy is a warning and gets repaired") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  { auto settle = open_ok(cfg, OpenMode::kReadWrite, &warnings); }
  std::string block = vgfs_test::pread_file(cfg.pvs[1].path, kLabelOffsets[0], kLabelSize);
  block[20] = static_cast<char>(block[20] ^ 0xff);
  vgfs_test::pwrite_file(cfg.pvs[1].path, kLabelOffsets[0], block);

  warnings.clear();
  { auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings); }
  CHECK_FALSE(warnings.empty());
  warnings.clear();
  auto again = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  CHECK_MESSAGE(warnings.empty(), joined(warnings));
  std::string a = vgfs_test::pread_file(cfg.pvs[1].path, kLabelOffsets[0], kLabelSize);
  std::string b = vgfs_test::pread_file(cfg.pvs[1].path, kLabelOffsets[1], kLabelSize);
  CHECK(a == b);
}

TEST_CASE("a second writable open fails while the first store is alive") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  {
    auto first = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    Result<std::unique_ptr<VgStore>> second = VgStore::open(cfg, OpenMode::kReadWrite, &warnings);
    REQUIRE_FALSE(second.ok());
    std::string msg = lower(second.status().message());
    CAPTURE(msg);
    CHECK((msg.find("lock") != std::string::npos || msg.find("in use") != std::string::npos));
    Result<std::unique_ptr<VgStore>> ro = VgStore::open(cfg, OpenMode::kReadOnly, &warnings);
    CHECK_FALSE(ro.ok());
    CHECK(first->metadata().seqno == 1);
  }
  {
    auto ro1 = open_ok(cfg, OpenMode::kReadOnly, &warnings);
    auto ro2 = open_ok(cfg, OpenMode::kReadOnly, &warnings);
    Result<std::unique_ptr<VgStore>> rw = VgStore::open(cfg, OpenMode::kReadWrite, &warnings);
    CHECK_FALSE(rw.ok());
  }
  auto after = open_ok(cfg, OpenMode::kReadWrite, &warnings);  // the locks went with the stores
  CHECK(after->metadata().seqno == 1);
}

TEST_CASE("create --force refuses PVs locked by an open store") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  std::string before = vgfs_test::read_file(cfg.pvs[0].path);
  std::vector<std::string> notes;
  Status s = VgStore::create(cfg, true, &notes);
  REQUIRE_FALSE(s.ok());
  std::string msg = lower(s.message());
  CAPTURE(msg);
  CHECK((msg.find("lock") != std::string::npos || msg.find("in use") != std::string::npos));
  CHECK(vgfs_test::read_file(cfg.pvs[0].path) == before);
}

TEST_CASE("create refuses PVs that already hold a label unless forced") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  Uuid old_uuid = open_ok(cfg, OpenMode::kReadOnly, &warnings)->metadata().uuid;
  std::string before = vgfs_test::read_file(cfg.pvs[0].path);

  std::vector<std::string> notes;
  Status again = VgStore::create(cfg, false, &notes);
  CHECK_FALSE(again.ok());
  CHECK_FALSE(again.message().empty());
  CHECK(vgfs_test::read_file(cfg.pvs[0].path) == before);

  Status forced = VgStore::create(cfg, true, &notes);
  REQUIRE_MESSAGE(forced.ok(), forced.message());
  warnings.clear();
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  CHECK(store->metadata().seqno == 1);
  CHECK(store->metadata().uuid != old_uuid);
}

TEST_CASE("create refuses a file with foreign data and leaves no new file") {
  TempDir dir;
  VgConfig cfg = load(dir, kConfig);
  vgfs_test::make_sparse(cfg.pvs[0].path, 64 * MiB);
  vgfs_test::pwrite_file(cfg.pvs[0].path, 20 * MiB, "precious user data");
  std::vector<std::string> notes;
  Status s = VgStore::create(cfg, false, &notes);
  CHECK_FALSE(s.ok());
  CHECK_FALSE(s.message().empty());
  CHECK(s.message().find(cfg.pvs[0].path) != std::string::npos);
  CHECK(vgfs_test::pread_file(cfg.pvs[0].path, 20 * MiB, 18) == "precious user data");
  CHECK(fs::file_size(cfg.pvs[0].path) == 64 * MiB);
  CHECK_FALSE(fs::exists(cfg.pvs[1].path));
}

TEST_CASE("create into an existing empty file without a size uses the whole file") {
  TempDir dir;
  std::string text = "vg:\n  name: vgw\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: whole.img}\n"
                     "lvs:\n  - {name: lv, size: 4MiB}\n";
  VgConfig cfg = load(dir, text);
  vgfs_test::make_sparse(cfg.pvs[0].path, 32 * MiB);
  std::vector<std::string> notes;
  Status s = VgStore::create(cfg, false, &notes);
  REQUIRE_MESSAGE(s.ok(), s.message());
  std::vector<std::string> warnings;
  auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
  const PvInfo& pv = store->metadata().pvs[0];
  CHECK(pv.pe_count == (32 * MiB - pv.pe_start) / MiB);
  CHECK(fs::file_size(cfg.pvs[0].path) == 32 * MiB);
}

TEST_CASE("a failed create leaves no new file behind") {
  TempDir dir;
  std::vector<std::string> notes;
  SUBCASE("second PV in a folder that does not exist") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "  - {name: pv1, path: nowhere/pv1.img, size: 64MiB}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK_FALSE(s.message().empty());
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
    CHECK_FALSE(fs::exists(dir / "nowhere"));
  }
  SUBCASE("LV larger than the VG") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "  - {name: pv1, path: pv1.img, size: 64MiB}\nlvs:\n  - {name: big, size: 1GiB}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.code() == ENOSPC);
    CHECK(s.message().find("big") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
    CHECK_FALSE(fs::exists(dir / "pv1.img"));
  }
  SUBCASE("overlapping explicit extents") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "lvs:\n  - name: a\n    extents:\n      - {le: 0-9, pv: pv0, pe: 0-9}\n"
                       "  - name: b\n    extents:\n      - {le: 0-1, pv: pv0, pe: 9-10}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(cfg.path) != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
  }
  SUBCASE("explicit extent past the end of the PV") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "lvs:\n  - name: a\n    extents:\n      - {le: 0-1, pv: pv0, pe: 63-64}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(cfg.path) != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
  }
  SUBCASE("explicit extent on an unknown PV") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "lvs:\n  - name: a\n    extents:\n      - {le: 0-1, pv: pv9, pe: 0-1}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("pv9") != std::string::npos);
    CHECK(s.message().find(cfg.path + ":") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
  }
  SUBCASE("missing PV file without a size") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "  - {name: pv1, path: pv1.img}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("pv1") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
    CHECK_FALSE(fs::exists(dir / "pv1.img"));
  }
  SUBCASE("PV too small for one extent") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "  - {name: pv1, path: pv1.img, size: 2MiB}\n";
    VgConfig cfg = load(dir, text);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("pv1") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
    CHECK_FALSE(fs::exists(dir / "pv1.img"));
  }
  SUBCASE("existing file smaller than the size given") {
    std::string text = "vg:\n  name: vgf\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n"
                       "  - {name: pv1, path: pv1.img, size: 64MiB}\n";
    VgConfig cfg = load(dir, text);
    vgfs_test::make_sparse(dir / "pv1.img", 32 * MiB);
    Status s = VgStore::create(cfg, false, &notes);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("pv1") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pv0.img"));
    CHECK(fs::file_size(dir / "pv1.img") == 32 * MiB);
  }
}

TEST_CASE("open orders the PVs like the metadata, whatever the config order") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  VgConfig swapped = cfg;
  std::swap(swapped.pvs[0], swapped.pvs[1]);
  std::vector<std::string> warnings;
  auto store = open_ok(swapped, OpenMode::kReadOnly, &warnings);
  const VgMetadata& md = store->metadata();
  REQUIRE(md.pvs.size() == 2);
  for (uint32_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    CHECK(store->label(i).pv_uuid == md.pvs[i].uuid);
    CHECK(fs::equivalent(store->pv(i).path(), md.pvs[i].path));
  }
  CHECK(md.pvs[0].name == "pv0");
  CHECK(fs::equivalent(store->pv(0).path(), cfg.pvs[0].path));
}

TEST_CASE("open fails on a missing PV, a foreign file, or PVs of two VGs") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  SUBCASE("missing PV file") {
    fs::rename(cfg.pvs[1].path, dir / "moved.img");
    Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, OpenMode::kReadOnly, &warnings);
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().find("pv1") != std::string::npos);
  }
  SUBCASE("not a vgfs PV") {
    vgfs_test::make_sparse(dir / "blank.img", 64 * MiB);
    VgConfig other = cfg;
    other.pvs[1].path = dir / "blank.img";
    Result<std::unique_ptr<VgStore>> r = VgStore::open(other, OpenMode::kReadOnly, &warnings);
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().find(dir / "blank.img") != std::string::npos);
  }
  SUBCASE("PV of another VG") {
    TempDir dir2;
    VgConfig cfg2 = create_vg(dir2);
    VgConfig mixed = cfg;
    mixed.pvs[1] = cfg2.pvs[1];
    Result<std::unique_ptr<VgStore>> r = VgStore::open(mixed, OpenMode::kReadOnly, &warnings);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
}

// ---- Untrusted on-disk input and the load/commit rules of issue 8.

namespace {

// Writes `text` as metadata `seqno` into slot `slot` of the PV at `path`.
void put_slot(const std::string& path, const PvLayout& layout, int slot, uint64_t seqno, const std::string& text) {
  Result<PvDevice> dev = PvDevice::open(path, true, "test PV");
  REQUIRE_MESSAGE(dev.ok(), dev.status().message());
  Status s = write_metadata_slot(*dev, layout, slot, seqno, text);
  REQUIRE_MESSAGE(s.ok(), s.message());
}

// The VG's metadata with seqno `seqno` and lvB's mode set to `mode`.
VgMetadata variant(const VgConfig& cfg, uint64_t seqno, uint32_t mode) {
  std::vector<std::string> w;
  VgMetadata md = open_ok(cfg, OpenMode::kReadOnly, &w)->metadata();
  md.seqno = seqno;
  md.lvs[static_cast<size_t>(md.find_lv("lvB"))].mode = mode;
  return md;
}

}  // namespace

TEST_CASE("a job record place outside the migration area is refused by open, check and commit") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  Labels labels = read_layouts(cfg);
  VgMetadata md = variant(cfg, 2, 0600);
  // lvB LE 0-3 lives on pv1 PE 10-13; move it to pv0 PE 40-43.
  JobInfo j;
  j.id = 1;
  j.lv = "lvB";
  j.le = 0;
  j.count = 4;
  j.src_pv = 1;
  j.src_pe = 10;
  j.dst_pv = 0;
  j.dst_pe = 40;
  j.record_offset = 0;
  j.record_size = 2 * job_record_copy_size(16);  // 4 MiB / 256 KiB regions
  md.jobs.push_back(j);
  md.next_job_id = 2;
  REQUIRE(md.validate().ok());

  struct Case {
    const char* what;
    uint64_t offset, size;
  } cases[] = {
      {"past the area", labels.layout[1].migration_size, 2 * job_record_copy_size(16)},
      {"straddling the end", labels.layout[1].migration_size - 4096, 2 * job_record_copy_size(16)},
      {"1 TiB past the PV end", TiB, 2 * job_record_copy_size(16)},
      {"wrong size", 0, 4096},
      {"size that would wrap", 4096, UINT64_MAX - 4095},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    VgMetadata bad = md;
    bad.jobs[0].record_offset = c.offset;
    bad.jobs[0].record_size = c.size;
    std::string text = encode_metadata(bad);
    for (int pv = 0; pv < 2; ++pv)
      for (int slot = 0; slot < 2; ++slot) put_slot(cfg.pvs[pv].path, labels.layout[pv], slot, 2, text);
    std::string before = vgfs_test::read_file(cfg.pvs[1].path);
    std::vector<std::string> w;
    for (OpenMode mode : {OpenMode::kReadOnly, OpenMode::kReadWrite}) {
      Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, mode, &w);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().message().find("no valid metadata") != std::string::npos);
      CHECK(r.status().message().find("job 1") != std::string::npos);
    }
    CHECK(vgfs_test::read_file(cfg.pvs[1].path) == before);
  }
  // The good place loads, and commit refuses a bad one.
  std::string text = encode_metadata(md);
  for (int pv = 0; pv < 2; ++pv)
    for (int slot = 0; slot < 2; ++slot) put_slot(cfg.pvs[pv].path, labels.layout[pv], slot, 2, text);
  std::vector<std::string> w;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &w);
  VgMetadata next = store->metadata();
  next.jobs[0].record_offset = labels.layout[1].migration_size;
  CHECK_FALSE(store->commit(next).ok());
  CHECK(store->metadata().seqno == 2);
}

TEST_CASE("two different texts with one seqno are refused, naming both PVs") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  Labels labels = read_layouts(cfg);
  // As after a cut pvadd: one PV holds seqno 2 with one text, another PV
  // holds seqno 2 with another (an acknowledged commit).
  put_slot(cfg.pvs[0].path, labels.layout[0], 0, 2, encode_metadata(variant(cfg, 2, 0640)));
  put_slot(cfg.pvs[1].path, labels.layout[1], 0, 2, encode_metadata(variant(cfg, 2, 0604)));
  std::string before0 = vgfs_test::read_file(cfg.pvs[0].path);
  for (OpenMode mode : {OpenMode::kReadOnly, OpenMode::kReadWrite}) {
    std::vector<std::string> w;
    Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, mode, &w);
    REQUIRE_FALSE(r.ok());
    const std::string& m = r.status().message();
    CHECK_MESSAGE(m.find("same seqno 2") != std::string::npos, m);
    CHECK(m.find("pv0") != std::string::npos);
    CHECK(m.find("pv1") != std::string::npos);
  }
  CHECK(vgfs_test::read_file(cfg.pvs[0].path) == before0);
}

TEST_CASE("a commit held only by a PV that is not in the config is found through the metadata") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  Labels labels = read_layouts(cfg);
  // seqno 2 reached pv1 only (pv0's write failed); the config names pv0 only.
  put_slot(cfg.pvs[1].path, labels.layout[1], 0, 2, encode_metadata(variant(cfg, 2, 0604)));
  VgConfig only0 = cfg;
  only0.pvs.resize(1);
  std::vector<std::string> w;
  {
    auto store = open_ok(only0, OpenMode::kReadOnly, &w);
    CHECK(store->metadata().seqno == 2);
    CHECK(store->metadata().lvs[static_cast<size_t>(store->metadata().find_lv("lvB"))].mode == 0604);
    CHECK(store->pv_count() == 2);
  }
  // A read-write open repairs pv0 from it.
  { auto store = open_ok(only0, OpenMode::kReadWrite, &w); }
  w.clear();
  auto store = open_ok(cfg, OpenMode::kReadOnly, &w);
  CHECK(store->metadata().seqno == 2);
  CHECK_MESSAGE(w.empty(), joined(w));
}

TEST_CASE("a missing PV is reported with why its last seen path did not do") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  VgConfig only0 = cfg;
  only0.pvs.resize(1);
  fs::remove(cfg.pvs[1].path);
  std::vector<std::string> w;
  Result<std::unique_ptr<VgStore>> r = VgStore::open(only0, OpenMode::kReadOnly, &w);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ENOENT);
  CHECK(r.status().message().find("pv1") != std::string::npos);
  CHECK(r.status().message().find("missing") != std::string::npos);
}

TEST_CASE("a newly added PV gets a commit only after the old PVs hold it") {
  // pv0 lives in a memfd, so a write seal can make its writes fail.
  int fd = memfd_create("vgfs-pv0", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 64 * MiB) == 0);
  TempDir dir;
  const std::string pv0 = "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string(fd);
  VgConfig cfg = load(dir, "vg:\n  name: vgm\n  extent_size: 1MiB\npvs:\n  - {name: pv0, path: " + pv0 +
                               "}\nlvs:\n  - {name: lvA, size: 4MiB}\n");
  std::vector<std::string> notes;
  Status created = VgStore::create(cfg, false, &notes);
  REQUIRE_MESSAGE(created.ok(), created.message());
  std::vector<std::string> w;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &w);

  const std::string added = dir / "pvnew.img";
  vgfs_test::make_sparse(added, 64 * MiB);
  Result<PvDevice> dev = PvDevice::open(added, true, "PV pvnew");
  REQUIRE(dev.ok());
  REQUIRE(dev->lock(true).ok());
  VgMetadata md = store->metadata();
  PvLabel label{new_uuid(), md.uuid, PvLayout::standard(64 * MiB, md.extent_size)};
  md.pvs.push_back(PvInfo{"pvnew", label.pv_uuid, added, label.layout.pe_start, label.layout.pe_count});
  REQUIRE(store->add_pv(std::move(*dev), label).ok());

  REQUIRE(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0);  // every write to pv0 now fails
  Status st = store->commit(md);
  CHECK_FALSE(st.ok());
  for (int slot = 0; slot < 2; ++slot) {
    CAPTURE(slot);
    std::string header = vgfs_test::pread_file(added, label.layout.slot_offset[slot], kSlotHeaderSize);
    CHECK_MESSAGE(header.substr(0, 8) != "VGFSMETA", "the new PV holds a seqno the old PVs do not");
  }
  store.reset();
  ::close(fd);
}

TEST_CASE("PvDevice::open looks at the type before opening: a FIFO is never opened") {
  TempDir dir;
  const std::string fifo = dir / "fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // A reader that opens the FIFO blocks until a writer comes; this thread is
  // that writer, and it records whether a reader ever showed up.
  std::atomic<bool> done{false}, reader_seen{false};
  std::thread writer([&] {
    while (!done.load()) {
      int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO while no reader
      if (w >= 0) {
        reader_seen = true;
        ::close(w);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (bool writable : {false, true}) {
    Result<PvDevice> r = PvDevice::open(fifo, writable, "PV pvf (fifo)");
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK(r.status().message().find("not a regular file or block device") != std::string::npos);
  }
  done = true;
  writer.join();
  CHECK_FALSE(reader_seen.load());

  Result<PvDevice> null = PvDevice::open("/dev/null", false, "PV pvn (/dev/null)");
  CHECK_FALSE(null.ok());
  Result<PvDevice> folder = PvDevice::open(dir.str(), false, "PV pvd (dir)");
  CHECK_FALSE(folder.ok());
  // A symlink to a regular file is fine (PV paths like /dev/disk/by-id/...).
  vgfs_test::make_sparse(dir / "real.img", MiB);
  fs::create_symlink(dir / "real.img", dir / "link.img");
  Result<PvDevice> link = PvDevice::open(dir / "link.img", false, "PV pvl (link)");
  REQUIRE_MESSAGE(link.ok(), link.status().message());
  CHECK(link->size() == MiB);
  CHECK((fcntl(link->capabilities().local_fd, F_GETFL) & O_NONBLOCK) == 0);
}

// ---- the commit path against injected PV faults (include/vgfs/fault_injector.h) ----

namespace {
// Adds an LV named `name` of 2 extents to a copy of the store's metadata.
VgMetadata with_lv(const VgStore& store, const std::string& name) {
  VgMetadata next = store.metadata();
  Result<std::vector<MapRun>> runs = allocate_extents(next, 2, {});
  REQUIRE(runs.ok());
  LvInfo lv;
  lv.name = name;
  lv.uuid = new_uuid();
  for (const MapRun& r : *runs) lv.map.append(r.pv, r.pe, r.count);
  next.lvs.push_back(lv);
  return next;
}
}  // namespace

TEST_CASE("faults: a failing fdatasync on one PV: the commit holds and names that PV") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    const std::string pv1 = store->pv(1).path();
    FaultInjector faults;
    faults.add({.op = FaultOp::kSync, .path = pv1});
    FaultInjector::Scope scope(faults);
    Status st = store->commit(with_lv(*store, "lvC"));
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(faults.fired(0) == 1);
    CHECK(store->metadata().seqno == 2);
    REQUIRE(store->commit_problems().size() == 1);
    CHECK(store->commit_problems()[0].find(store->pv(1).label()) != std::string::npos);
    CHECK(store->commit_problems()[0].find("fdatasync") != std::string::npos);
  }
  auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
  CHECK(store->metadata().seqno == 2);
  CHECK(store->metadata().find_lv("lvC") >= 0);
}

TEST_CASE("faults: a failing fdatasync on every PV fails the commit and keeps the old metadata") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
  FaultInjector faults;
  faults.add({.op = FaultOp::kSync, .times = UINT64_MAX});
  FaultInjector::Scope scope(faults);
  Status st = store->commit(with_lv(*store, "lvC"));
  CHECK_FALSE(st.ok());
  CHECK(st.code() == EIO);
  CHECK(st.message().find("fdatasync") != std::string::npos);
  CHECK(faults.fired(0) == 2);
  CHECK(store->metadata().seqno == 1);
  CHECK(store->metadata().find_lv("lvC") == -1);
  CHECK(store->commit_problems().size() == 2);
}

TEST_CASE("faults: a metadata write torn on every PV fails the commit; the previous metadata loads") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> warnings;
  {
    auto store = open_ok(cfg, OpenMode::kReadWrite, &warnings);
    FaultInjector faults;
    faults.add({.op = FaultOp::kWrite, .kind = FaultKind::kTear, .times = UINT64_MAX, .keep = 700});
    FaultInjector::Scope scope(faults);
    Status st = store->commit(with_lv(*store, "lvC"));
    CHECK(st.code() == EIO);
    CHECK(faults.fired(0) == 2);
    CHECK(store->metadata().seqno == 1);
  }
  warnings.clear();
  auto store = open_ok(cfg, OpenMode::kReadOnly, &warnings);
  CHECK(store->metadata().seqno == 1);
  CHECK(store->metadata().find_lv("lvC") == -1);
}

TEST_CASE("the seqno of a commit that reached no PV durably is never reused") {
  TempDir dir;
  VgConfig cfg = create_vg(dir);
  std::vector<std::string> w;
  auto store = open_ok(cfg, OpenMode::kReadWrite, &w);
  VgMetadata a = store->metadata();
  a.lvs[0].mode = 0640;
  {
    // The text reaches both PVs, but no fdatasync succeeds: the PVs may or
    // may not keep seqno 2 (text a) after a crash.
    FaultInjector faults;
    faults.add(FaultRule{.op = FaultOp::kSync, .times = UINT64_MAX});
    FaultInjector::Scope scope(faults);
    CHECK_FALSE(store->commit(a).ok());
  }
  CHECK(store->metadata().seqno == 1);
  VgMetadata b = store->metadata();
  b.lvs[0].mode = 0604;
  Status st = store->commit(b);
  REQUIRE_MESSAGE(st.ok(), st.message());
  // Not 2, which text a may hold; 4 goes to the same slot as that attempt,
  // so slot 1 (seqno 1) stayed intact throughout.
  CHECK(store->metadata().seqno == 4);
  store.reset();
  w.clear();
  auto again = open_ok(cfg, OpenMode::kReadOnly, &w);
  CHECK(again->metadata().seqno == 4);
  CHECK(again->metadata().lvs[0].mode == 0604);
  CHECK_MESSAGE(w.empty(), joined(w));
}
