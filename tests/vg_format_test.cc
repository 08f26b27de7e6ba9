// Unit tests of the format interface (include/vgfs/vg_format.h): vgfs's own
// format read back through it, and VgStore driving a format of several
// commit phases in the order the interface promises (every PV gets phase p
// before any gets p + 1).
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/vg_format.h"
#include "vgfs/vg_store.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

const char* kConfig = R"(vg:
  name: vgf
  extent_size: 1MiB
pvs:
  - {name: pv0, path: pv0.img, size: 32MiB}
  - {name: pv1, path: pv1.img, size: 32MiB}
  - {name: pv2, path: pv2.img, size: 32MiB}
lvs:
  - {name: lv, size: 4MiB}
)";

VgConfig make_vg(const TempDir& dir) {
  vgfs_test::write_file(dir / "vg.yaml", kConfig);
  Result<VgConfig> cfg = load_config(dir / "vg.yaml");
  REQUIRE(cfg.ok());
  std::vector<std::string> notes;
  REQUIRE(VgStore::create(*cfg, false, &notes).ok());
  return *cfg;
}

// vgfs's format with a commit of three phases, recording each phase write:
// phases 0 and 1 write nothing (like LVM2's text and precommit, which do not
// change what a reader takes), phase 2 writes the slot.
class RecordingFormat final : public VgFormat {
 public:
  struct Write {
    int phase;
    std::string pv;
    uint64_t seqno;
  };
  mutable std::vector<Write> writes;

  std::string_view name() const override { return "recording"; }
  Result<FoundLabel> read_label(const PvDevice& dev) const override { return base().read_label(dev); }
  std::vector<MetadataCopy> read_copies(const PvDevice& dev, const PvLabel& label) const override {
    return base().read_copies(dev, label);
  }
  std::string encode(const VgMetadata& md) const override { return base().encode(md); }
  Result<VgMetadata> decode(std::string_view text, std::string_view origin) const override {
    return base().decode(text, origin);
  }
  Status check_against_label(const VgMetadata& md, uint32_t pv, const PvLabel& label) const override {
    return base().check_against_label(md, pv, label);
  }
  Status repair(const PvDevice& dev, const FoundLabel& found, const std::vector<MetadataCopy>& copies, uint64_t seqno,
                const std::string& text, bool write, std::vector<std::string>* warnings) const override {
    return base().repair(dev, found, copies, seqno, text, write, warnings);
  }
  int commit_phases() const override { return 3; }
  Status write_commit_phase(int phase, const PvDevice& dev, const PvLabel& label, uint64_t seqno,
                            const std::string& text) const override {
    writes.push_back(Write{phase, dev.path(), seqno});
    return phase == 2 ? base().write_commit_phase(0, dev, label, seqno, text) : Status::Ok();
  }
  Status write_new_pv(const PvDevice& dev, const PvLabel& label) const override { return base().write_new_pv(dev, label); }
  Status wipe_pv(const PvDevice& dev) const override { return base().wipe_pv(dev); }

 private:
  static const VgFormat& base() { return vgfs_format(); }
};

}  // namespace

TEST_CASE("vgfs's format through the interface: labels, copies, commit") {
  TempDir dir;
  VgConfig cfg = make_vg(dir);
  const VgFormat& format = vgfs_format();
  CHECK(format.name() == "vgfs");
  CHECK(format.commit_phases() == 1);
  Result<PvDevice> dev = PvDevice::open(dir / "pv1.img", false, "pv1");
  REQUIRE(dev.ok());
  Result<FoundLabel> found = format.read_label(*dev);
  REQUIRE_MESSAGE(found.ok(), found.status().message());
  CHECK(found->copy_ok == std::vector<bool>{true, true});
  std::vector<MetadataCopy> copies = format.read_copies(*dev, found->label);
  REQUIRE(copies.size() == 2);
  for (const MetadataCopy& c : copies) {
    CHECK(c.checksum_ok);
    CHECK(c.seqno == 1);
    Result<VgMetadata> md = format.decode(c.text, "slot");
    REQUIRE(md.ok());
    CHECK(md->name == "vgf");
    CHECK(format.check_against_label(*md, 1, found->label).ok());
    CHECK(format.encode(*md) == c.text);
  }
  // A file that is no PV: refused, naming it.
  vgfs_test::make_sparse(dir / "blank.img", 32 * MiB);
  Result<PvDevice> blank = PvDevice::open(dir / "blank.img", false, "blank");
  REQUIRE(blank.ok());
  Result<FoundLabel> none = format.read_label(*blank);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("blank: not a vgfs PV") == 0);
}

TEST_CASE("VgStore runs every commit phase on every PV before the next") {
  TempDir dir;
  VgConfig cfg = make_vg(dir);
  RecordingFormat format;
  std::vector<std::string> warnings;
  Result<std::unique_ptr<VgStore>> store = VgStore::open(cfg, OpenMode::kReadWrite, &warnings, format);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(warnings.empty());
  VgMetadata md = (*store)->metadata();
  md.lvs[0].mode = 0640;
  REQUIRE((*store)->commit(md).ok());
  REQUIRE(format.writes.size() == 9);
  for (size_t i = 0; i < format.writes.size(); ++i) {
    CAPTURE(i);
    CHECK(format.writes[i].phase == static_cast<int>(i / 3));
    CHECK(format.writes[i].seqno == 2);
  }
  // What the last phase wrote is what the next open takes.
  store->reset();
  Result<std::unique_ptr<VgStore>> again = VgStore::open(cfg, OpenMode::kReadOnly, &warnings);
  REQUIRE(again.ok());
  CHECK((*again)->metadata().seqno == 2);
  CHECK((*again)->metadata().lvs[0].mode == 0640u);
  CHECK(warnings.empty());
}
