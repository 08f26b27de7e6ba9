// Unit tests of LVM2 label and metadata area reading (include/vgfs/lvm2_label.h,
// lvm2_mda.h, lvm2_scan.h): bytes LVM2 wrote, and hostile values behind
// valid CRCs.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <string>

#include "lvm2_fixture.h"
#include "lvm2_image.h"
#include "vgfs/lvm2_scan.h"

using namespace lvm2_test;

namespace {

std::string with_seqno(uint64_t seqno, const std::string& extra = "") {
  std::string t = lvm2_fixture::kVgText;
  const std::string from = "seqno = 9\n";
  t.replace(t.find(from), from.size(), "seqno = " + std::to_string(seqno) + "\n");
  return t + extra;
}

bool has(const std::vector<std::string>& v, const std::string& part) {
  for (const std::string& s : v)
    if (s.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("lvm2 CRC: LVM2's own label and mda header check") {
  const std::string label = from_hex(lvm2_fixture::kLabelSectorHex);
  const std::string mdah = from_hex(lvm2_fixture::kMdaHeaderHex);
  REQUIRE(label.size() == 512);
  REQUIRE(mdah.size() == 512);
  CHECK(crc(label.data() + 20, 492) == 0xeca04405u);
  CHECK(crc(mdah.data() + 4, 508) == 0x471b3051u);
  // The text's CRC includes its NUL, and a CRC over two pieces chains.
  std::string text = std::string(lvm2_fixture::kVgText) + '\0';
  CHECK(crc(text.data(), text.size()) == 0x9ebc70a5u);
  CHECK(crc(text.data() + 100, text.size() - 100, crc(text.data(), 100)) == 0x9ebc70a5u);
}

TEST_CASE("lvm2 label: the sector LVM2 wrote decodes") {
  Result<PvLabel> l = decode_label_sector(from_hex(lvm2_fixture::kLabelSectorHex), 1);
  REQUIRE_MESSAGE(l.ok(), l.status().message());
  CHECK(l->uuid == "Wv0vT3HPYRGxYVrCfJSry68d0IgT00hX");
  CHECK(format_lvm2_uuid(l->uuid) == "Wv0vT3-HPYR-GxYV-rCfJ-Sry6-8d0I-gT00hX");
  CHECK(l->device_size == 64u << 20);
  REQUIRE(l->data_areas.size() == 1);
  CHECK(l->data_areas[0] == DiskArea{1 << 20, 0});
  CHECK(l->pe_start() == 1u << 20);
  REQUIRE(l->metadata_areas.size() == 1);
  CHECK(l->metadata_areas[0] == DiskArea{4096, 1044480});
  CHECK(l->has_extension);
  CHECK(l->extension_version == 2);
  CHECK(l->in_vg());
  CHECK(l->bootloader_areas.empty());
  // The same sector found elsewhere names another sector: refused.
  CHECK(decode_label_sector(from_hex(lvm2_fixture::kLabelSectorHex), 2).status().message().find("sector 1") !=
        std::string::npos);
}

TEST_CASE("lvm2 label: scan of sectors 0-3") {
  for (uint64_t sector : {0, 1, 2, 3}) {
    CAPTURE(sector);
    LabelSpec spec;
    spec.sector = sector;
    std::vector<std::string> warnings;
    Result<PvLabel> l = read_label(memory_source(pv_image("", 2 << 20, 512, spec)), &warnings);
    REQUIRE_MESSAGE(l.ok(), l.status().message());
    CHECK(l->sector == sector);
    CHECK(warnings.empty());
  }
  SUBCASE("no label") {
    Result<PvLabel> l = read_label(memory_source(std::string(1 << 20, '\0')), nullptr);
    CHECK(l.status().code() == ENOENT);
  }
  SUBCASE("too small for a label") {
    CHECK(read_label(memory_source(std::string(100, '\0')), nullptr).status().code() == ENOENT);
  }
  SUBCASE("a bad CRC in sector 1 is skipped for a good label in sector 2") {
    std::string image = pv_image("");
    image[512 + 100] ^= 1;  // breaks sector 1's CRC
    LabelSpec spec;
    spec.sector = 2;
    std::string good = label_sector(spec);
    image.replace(1024, 512, good);
    std::vector<std::string> warnings;
    Result<PvLabel> l = read_label(memory_source(image), &warnings);
    REQUIRE(l.ok());
    CHECK(l->sector == 2);
    CHECK(has(warnings, "label in sector 1: label CRC"));
  }
  SUBCASE("only bad labels: the first reason") {
    std::string image = pv_image("");
    image[512 + 100] ^= 1;
    Result<PvLabel> l = read_label(memory_source(image, "disk.img"), nullptr);
    CHECK(l.status().code() == EINVAL);
    CHECK(l.status().message().find("disk.img: label in sector 1: label CRC") == 0);
  }
  SUBCASE("a label copied to the wrong sector") {
    std::string image(1 << 20, '\0');
    image.replace(1536, 512, label_sector(LabelSpec{}));  // says sector 1, lies in 3
    Result<PvLabel> l = read_label(memory_source(image), nullptr);
    CHECK(l.status().message().find("says it is in sector 1 but was found in sector 3") != std::string::npos);
  }
}

TEST_CASE("lvm2 label: hostile values behind a valid CRC") {
  auto decode = [](std::string s) { return decode_label_sector(s, 1); };
  SUBCASE("extension flags and bootloader areas") {
    LabelSpec spec;
    spec.bootloader = {{1 << 20, 1 << 20}};
    spec.data = {{2 << 20, 0}};
    spec.ext_flags = 0;
    Result<PvLabel> l = decode(label_sector(spec));
    REQUIRE(l.ok());
    CHECK_FALSE(l->in_vg());
    REQUIRE(l->bootloader_areas.size() == 1);
    CHECK(l->bootloader_areas[0] == DiskArea{1 << 20, 1 << 20});
  }
  SUBCASE("no extension (version 0)") {
    LabelSpec spec;
    spec.ext_version = 0;
    Result<PvLabel> l = decode(label_sector(spec));
    REQUIRE(l.ok());
    CHECK_FALSE(l->has_extension);
  }
  SUBCASE("pv_header offset past the sector") {
    LabelSpec spec;
    std::string s = label_sector(spec);
    put32(&s, 20, 500);
    seal_label(&s);
    CHECK(decode(s).status().message().find("pv_header offset 500") != std::string::npos);
  }
  SUBCASE("an area list with no terminator inside the sector") {
    LabelSpec spec;
    spec.ext_version = 0;
    std::string s = label_sector(spec);
    for (size_t at = 72; at + 16 <= 512; at += 16) {
      put64(&s, at, 4096);
      put64(&s, at + 8, 4096);
    }
    seal_label(&s);
    CHECK(decode(s).status().message().find("runs past the end of the label sector") != std::string::npos);
  }
  SUBCASE("an area whose end wraps past 2^64") {
    LabelSpec spec;
    spec.mdas = {{4096, UINT64_MAX - 100}};
    CHECK(decode(label_sector(spec)).status().message().find("ends past 2^64") != std::string::npos);
  }
  SUBCASE("a metadata area smaller than its header") {
    LabelSpec spec;
    spec.mdas = {{4096, 100}};
    CHECK(decode(label_sector(spec)).status().message().find("smaller than its header") != std::string::npos);
  }
  SUBCASE("a uuid with a byte outside LVM2's alphabet") {
    LabelSpec spec;
    spec.uuid[5] = '/';
    CHECK(decode(label_sector(spec)).status().code() == EINVAL);
  }
  SUBCASE("another label type") {
    std::string s = label_sector(LabelSpec{});
    std::memcpy(s.data() + 24, "LVM1 001", 8);
    seal_label(&s);
    CHECK(decode(s).status().message().find("LVM2 001") != std::string::npos);
  }
}

TEST_CASE("lvm2 mda header: LVM2's own and hostile ones") {
  const DiskArea area{4096, 1044480};
  Result<MdaHeader> h = decode_mda_header(from_hex(lvm2_fixture::kMdaHeaderHex), area);
  REQUIRE_MESSAGE(h.ok(), h.status().message());
  CHECK(h->start == 4096);
  CHECK(h->committed == RawLocation{13312, 2361, 0x9ebc70a5u, 0});
  CHECK(h->precommitted.empty());
  CHECK(h->wrap() == 0);

  auto header = [&](RawLocation slot) { return mda_header(area.offset, area.size, slot); };
  auto message = [&](const std::string& block) { return decode_mda_header(block, area).status().message(); };
  CHECK(message(mda_header(8192, area.size, {})).find("starts at byte 8192, the label at byte 4096") != std::string::npos);
  CHECK(message(mda_header(4096, area.size + 512, {})).find("the label 1044480 bytes") != std::string::npos);
  CHECK(message(header({100, 10, 0, 0})).find("outside the text buffer") != std::string::npos);
  CHECK(message(header({area.size, 10, 0, 0})).find("outside the text buffer") != std::string::npos);
  CHECK(message(header({512, area.size, 0, 0})).find("does not fit") != std::string::npos);
  CHECK(message(header({512, 0, 0, 0})).find("does not fit") != std::string::npos);
  CHECK(message(header({UINT64_MAX, 10, 0, 0})).find("outside") != std::string::npos);
  // The largest copy, wrapping right up to its own start, is accepted.
  CHECK(decode_mda_header(header({1024, area.size - 512, 0, 0}), area).ok());
  std::string bad = header({});
  bad[30] ^= 1;
  CHECK(message(bad).find("mda header CRC") != std::string::npos);
  std::string magic = header({});
  magic[5] = 'X';
  seal_mda_header(&magic);
  CHECK(message(magic).find("magic") != std::string::npos);
  std::string version = header({});
  put32(&version, 20, 2);
  seal_mda_header(&version);
  CHECK(message(version).find("version 2") != std::string::npos);
  // Ignored and empty slots need no text.
  CHECK(decode_mda_header(header({0, 0, 0, kRawLocationIgnored}), area).ok());
  CHECK(decode_mda_header(header({}), area).ok());
}

TEST_CASE("lvm2 mda: text read back, wrapped or not, with its CRC") {
  const std::string text = with_seqno(9);
  const uint64_t mda_size = (1 << 20) - 4096;
  SUBCASE("at the start of the ring") {
    Result<MdaText> m = read_mda(memory_source(pv_image(text)), {4096, mda_size});
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    CHECK(m->text == text);
    CHECK(m->header.wrap() == 0);
  }
  SUBCASE("wrapped past the end of the ring") {
    const uint64_t offset = mda_size - 1000;
    Result<MdaText> m = read_mda(memory_source(pv_image(text, 2 << 20, offset)), {4096, mda_size});
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    CHECK(m->header.wrap() == text.size() + 1 - 1000);
    CHECK(m->text == text);
    // text_from_area() assembles the same from the area's bytes.
    std::string image = pv_image(text, 2 << 20, offset);
    Result<std::string> t = text_from_area(std::string_view(image).substr(4096, mda_size), m->header.committed);
    REQUIRE(t.ok());
    CHECK(*t == text);
  }
  SUBCASE("a damaged byte of the text") {
    std::string image = pv_image(text);
    image[4096 + 512 + 40] ^= 4;
    Result<MdaText> m = read_mda(memory_source(image, "pv.img"), {4096, mda_size});
    CHECK(m.status().message().find("pv.img: metadata area at byte 4096: text CRC") == 0);
  }
  SUBCASE("an area past the end of the device") {
    Result<MdaText> m = read_mda(memory_source(pv_image(text)), {4096, 4 << 20});
    CHECK(m.status().message().find("ends past the end of the device") != std::string::npos);
  }
  SUBCASE("an ignored mda and one without a VG") {
    std::string image = pv_image("");
    Result<MdaText> m = read_mda(memory_source(image), {4096, mda_size});
    REQUIRE(m.ok());
    CHECK(m->empty());
    std::string h = mda_header(4096, mda_size, {0, 0, 0, kRawLocationIgnored});
    image.replace(4096, 512, h);
    m = read_mda(memory_source(image), {4096, mda_size});
    REQUIRE(m.ok());
    CHECK(m->header.ignored());
    CHECK(m->empty());
  }
}

TEST_CASE("lvm2 scan: every mda of every PV, the highest seqno, conflicts refused") {
  const uint64_t img = 4 << 20;
  const DiskArea mda1{4096, (1 << 20) - 4096}, mda2{img - (1 << 20), 1 << 20};
  LabelSpec two;
  two.mdas = {mda1, mda2};
  two.device_size = img;
  auto image_with = [&](const std::string& t1, const std::string& t2) {
    std::string image = pv_image(t1, img, 512, two);
    RawLocation s2 = put_text(&image, mda2.offset, mda2.size, 1024, t2);
    image.replace(mda2.offset, 512, mda_header(mda2.offset, mda2.size, s2));
    return image;
  };
  const std::string vg_uuid = "fBi812E1j9oB3d5XozP1b5CSoCaJHqBn";

  SUBCASE("two equal copies") {
    Result<PvScan> s = scan_pv(memory_source(image_with(with_seqno(9), with_seqno(9)), "a.img"));
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    REQUIRE(s->copies.size() == 2);
    CHECK(s->copies[1].where == fmt::format("a.img mda2 (byte {})", mda2.offset));
    Result<VgRead> r = read_vg_from({*s}, vg_uuid);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->vg.seqno == 9);
    CHECK(r->from == "a.img mda1 (byte 4096)");
    CHECK(has(r->warnings, "PV pv1 (tn46sK-UUf0-XWq8-3klU-Dfgn-6Cru-qYGB0p, last seen as /dev/loop2) is missing"));
  }
  SUBCASE("a stale copy is a warning, the newest wins") {
    Result<PvScan> s = scan_pv(memory_source(image_with(with_seqno(8), with_seqno(9)), "a.img"));
    REQUIRE(s.ok());
    Result<VgRead> r = read_vg_from({*s}, vg_uuid);
    REQUIRE(r.ok());
    CHECK(r->vg.seqno == 9);
    CHECK(r->from.find("mda2") != std::string::npos);
    CHECK(has(r->warnings, "a.img mda1 (byte 4096) holds seqno 8 of VG vgp, older than seqno 9"));
  }
  SUBCASE("two different texts with one seqno are refused, naming both") {
    Result<PvScan> s = scan_pv(memory_source(image_with(with_seqno(9), with_seqno(9, "# other\n")), "a.img"));
    REQUIRE(s.ok());
    Result<VgRead> r = read_vg_from({*s}, vg_uuid);
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("a.img mda1 (byte 4096) and a.img mda2") != std::string::npos);
    CHECK(r.status().message().find("same seqno 9") != std::string::npos);
  }
  SUBCASE("a damaged mda is reported, the other one used") {
    std::string image = image_with(with_seqno(9), with_seqno(9));
    image[4096 + 512 + 10] ^= 1;
    Result<PvScan> s = scan_pv(memory_source(image, "a.img"));
    REQUIRE(s.ok());
    CHECK(s->copies.size() == 1);
    CHECK(has(s->warnings, "a.img mda1 (byte 4096): damaged, not used"));
    CHECK(read_vg_from({*s}, vg_uuid).ok());
  }
  SUBCASE("text that does not parse is reported") {
    Result<PvScan> s = scan_pv(memory_source(image_with("vgp { id = ", with_seqno(9)), "a.img"));
    REQUIRE(s.ok());
    CHECK(s->copies.size() == 1);
    CHECK(has(s->warnings, "text does not parse"));
  }
  SUBCASE("no usable copy") {
    Result<PvScan> s = scan_pv(memory_source(pv_image(""), "a.img"));
    REQUIRE(s.ok());
    CHECK(s->empty_mdas == 1);
    CHECK(read_vg_from({*s}, vg_uuid).status().message().find("no usable metadata") != std::string::npos);
  }
  SUBCASE("the PVs of the text are matched to the scans by uuid") {
    LabelSpec second = two;
    second.uuid = "tn46sKUUf0XWq83klUDfgn6CruqYGB0p";
    std::string image2 = pv_image(with_seqno(9), img, 512, second);
    Result<PvScan> a = scan_pv(memory_source(image_with(with_seqno(9), with_seqno(9)), "a.img"));
    Result<PvScan> b = scan_pv(memory_source(image2, "b.img"));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    Result<VgRead> r = read_vg_from({*a, *b}, vg_uuid);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->pvs == std::vector<size_t>{0, 1});
    CHECK_FALSE(has(r->warnings, "missing"));
    // The same PV twice: duplicate PVs are refused.
    CHECK(read_vg_from({*a, *b, *b}, vg_uuid).status().message().find("duplicate PVs") != std::string::npos);
  }
}
