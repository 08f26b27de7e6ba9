// LVM2's on-disk format behind VgFormat (include/vgfs/lvm2_format.h,
// docs/lvm2.md "Writing LVM2 metadata"): labels in sectors 0-3, metadata
// areas with a circular text buffer, LVM2's three-phase commit (text,
// precommit, commit). Stateless: every call re-reads the label and the mda
// headers it needs from the device.
#include "vgfs/lvm2_format.h"

#include <boost/endian/conversion.hpp>
#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "vgfs/lvm2_config.h"
#include "vgfs/lvm2_label.h"
#include "vgfs/lvm2_mda.h"
#include "vgfs/lvm2_pvmove.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/sizes.h"

namespace vgfs::lvm2 {

namespace {

__extension__ typedef unsigned __int128 u128;

constexpr uint64_t kNewPvDataOffset = 1 * MiB;  // pvcreate's default pe_start
constexpr uint64_t kNewPvMdaOffset = 4 * KiB;   // pvcreate's first mda
constexpr uint64_t kLabelSector = 1;            // where LVM2 writes its label
constexpr char kMdaMagic[16] = {' ', 'L', 'V', 'M', '2', ' ', 'x', '[', '5', 'A', '%', 'r', '0', 'N', '*', '>'};

void put32(std::string* s, size_t at, uint32_t v) {
  boost::endian::store_little_u32(reinterpret_cast<unsigned char*>(s->data()) + at, v);
}
void put64(std::string* s, size_t at, uint64_t v) {
  boost::endian::store_little_u64(reinterpret_cast<unsigned char*>(s->data()) + at, v);
}
uint32_t get32(std::string_view s, size_t at) {
  return boost::endian::load_little_u32(reinterpret_cast<const unsigned char*>(s.data()) + at);
}

ByteSource source_of(const PvDevice& dev) {
  ByteSource s;
  s.name = dev.label();
  s.size = dev.size();
  s.read = [&dev](void* buf, uint64_t length, uint64_t offset) { return dev.read_at(buf, length, offset); };
  return s;
}

Result<PvLabel> read_lvm2_label(const PvDevice& dev) {
  Result<PvLabel> l = read_label(source_of(dev), nullptr);
  if (!l.ok() && l.status().code() == ENOENT)
    return Status::Error(EINVAL, fmt::format("{}: not an LVM2 PV (no LVM2 label in sectors 0-3)", dev.label()));
  if (!l.ok()) return Status::Error(l.status().code() == EIO ? EIO : EINVAL, l.status().message());
  return l;
}

// The 512 bytes of an mda header.
std::string mda_header_block(uint64_t start, uint64_t size, const RawLocation& committed,
                             const RawLocation& precommitted) {
  std::string h(kMdaHeaderSize, '\0');
  std::memcpy(h.data() + 4, kMdaMagic, sizeof kMdaMagic);
  put32(&h, 20, kMdaVersion);
  put64(&h, 24, start);
  put64(&h, 32, size);
  const RawLocation* slots[2] = {&committed, &precommitted};
  for (int i = 0; i < 2; ++i) {
    put64(&h, 40 + 24 * i, slots[i]->offset);
    put64(&h, 48 + 24 * i, slots[i]->size);
    put32(&h, 56 + 24 * i, slots[i]->checksum);
    put32(&h, 60 + 24 * i, slots[i]->flags);
  }
  put32(&h, 0, crc(h.data() + 4, kMdaHeaderSize - 4));
  return h;
}

// One metadata area as a writer sees it: where it is and its header, or an
// empty header when the one on disk is damaged (its text is lost anyway).
struct MdaPlace {
  DiskArea area;
  MdaHeader header;
  bool damaged = false;
  std::string problem;
};

Result<std::vector<MdaPlace>> read_places(const PvDevice& dev, const PvLabel& label) {
  std::vector<MdaPlace> out;
  for (const DiskArea& area : label.metadata_areas) {
    if (area.offset > dev.size() || area.size > dev.size() - area.offset)
      return Status::Error(EINVAL, fmt::format("{}: metadata area at byte {} of {} bytes ends past the device",
                                               dev.label(), area.offset, area.size));
    MdaPlace p;
    p.area = area;
    std::string block(kMdaHeaderSize, '\0');
    VGFS_RETURN_IF_ERROR(dev.read_at(block.data(), block.size(), area.offset));
    Result<MdaHeader> h = decode_mda_header(block, area);
    if (h.ok()) {
      p.header = *h;
    } else {
      p.damaged = true;
      p.problem = h.status().message();
      p.header.start = area.offset;
      p.header.size = area.size;
    }
    out.push_back(std::move(p));
  }
  return out;
}

// Phase `phase` of a commit of `text` on one mda (no sync).
Status write_mda_phase(const PvDevice& dev, const MdaPlace& place, int phase, const std::string& text) {
  const uint64_t size = place.area.size;
  const std::string bytes = text + '\0';
  Result<RawLocation> planned = plan_ring_write(size, place.header.committed, bytes.size());
  if (!planned.ok())
    return planned.status().prefixed(fmt::format("{}: metadata area at byte {}", dev.label(), place.area.offset));
  RawLocation at = *planned;
  at.checksum = crc(bytes.data(), bytes.size());
  const uint64_t base = place.area.offset;
  if (phase == 0) {
    // The text, padded with zeros to 512, wrapping to offset 512 at the end.
    const uint64_t first = std::min<uint64_t>(bytes.size(), size - at.offset);
    std::string part = bytes.substr(0, first);
    part.resize(std::min<uint64_t>(align_up(first, kSectorSize), size - at.offset), '\0');
    VGFS_RETURN_IF_ERROR(dev.write_at(part.data(), part.size(), base + at.offset));
    if (first < bytes.size()) {
      std::string rest = bytes.substr(first);
      rest.resize(align_up(rest.size(), kSectorSize), '\0');
      VGFS_RETURN_IF_ERROR(dev.write_at(rest.data(), rest.size(), base + kMdaHeaderSize));
    }
    return Status::Ok();
  }
  RawLocation committed = place.header.committed;
  RawLocation precommitted = at;
  if (phase == 2) {
    committed = at;
    precommitted = RawLocation{};
  }
  if (place.damaged) committed.flags = 0;
  const std::string h = mda_header_block(base, size, committed, precommitted);
  return dev.write_at(h.data(), h.size(), base);
}

// Sets or clears the pv_header extension's in-VG flag of the label sector
// the label was found in; nothing when the label has no extension.
Status write_in_vg_flag(const PvDevice& dev, const PvLabel& label, bool in_vg) {
  if (!label.has_extension || label.in_vg() == in_vg) return Status::Ok();
  std::string sector(kSectorSize, '\0');
  VGFS_RETURN_IF_ERROR(dev.read_at(sector.data(), sector.size(), label.sector * kSectorSize));
  // The extension follows the two area lists (each ended by a zero entry);
  // decode_label_sector() checked that it fits.
  const size_t at = get32(sector, 20) + 40 + 16 * (label.data_areas.size() + 1) + 16 * (label.metadata_areas.size() + 1);
  const uint32_t flags = in_vg ? (label.extension_flags | kExtInVg) : (label.extension_flags & ~kExtInVg);
  put32(&sector, at + 4, flags);
  put32(&sector, 16, crc(sector.data() + 20, kSectorSize - 20));
  return dev.write_at(sector.data(), sector.size(), label.sector * kSectorSize);
}

// A new PV's label sector, as pvcreate writes it (sector 1).
std::string new_label_sector(const std::string& id32, uint64_t device_size, uint64_t pe_start, const DiskArea& mda,
                             bool in_vg) {
  std::string s(kSectorSize, '\0');
  std::memcpy(s.data(), "LABELONE", 8);
  put64(&s, 8, kLabelSector);
  put32(&s, 20, 32);
  std::memcpy(s.data() + 24, "LVM2 001", 8);
  size_t at = 32;
  std::memcpy(s.data() + at, id32.data(), 32);
  put64(&s, at + 32, device_size);
  at += 40;
  put64(&s, at, pe_start);  // data area {pe_start, 0 = to the end}, then its terminator
  at += 32;
  put64(&s, at, mda.offset);
  put64(&s, at + 8, mda.size);
  at += 32;  // the mda, then its terminator
  put32(&s, at, 2);  // extension version 2
  put32(&s, at + 4, in_vg ? kExtInVg : 0);
  // an empty bootloader list follows (zeros)
  put32(&s, 16, crc(s.data() + 20, kSectorSize - 20));
  return s;
}

std::string unquote_id(const KeptKeys& record) {
  for (const auto& [k, v] : record)
    if (k == "id" && v.size() >= 2 && v.front() == '"' && v.back() == '"') {
      Result<std::string> id = parse_lvm2_uuid(std::string_view(v).substr(1, v.size() - 2));
      if (id.ok()) return *id;
    }
  return {};
}

// A PV's pe_count and the VG's extent size (sectors) from a text's tree,
// 0 where absent or not an integer in range.
struct PvEntry {
  uint64_t pe_count = 0, extent_size = 0;
};
PvEntry pv_entry(const ConfigTree& tree, const std::string& pv_uuid) {
  PvEntry out;
  auto uint_of = [](const ConfigNode* n) -> uint64_t {
    if (!n || n->section || n->list || n->values.size() != 1 || n->values[0].kind != ConfigValue::Kind::kInt ||
        n->values[0].integer < 0 || n->values[0].integer > UINT32_MAX)
      return 0;
    return static_cast<uint64_t>(n->values[0].integer);
  };
  const ConfigNode* vg = nullptr;
  for (const ConfigNode& n : tree.top)
    if (n.section) {
      vg = &n;
      break;
    }
  const ConfigNode* pvs = vg ? vg->find("physical_volumes") : nullptr;
  if (!pvs || !pvs->section) return out;
  for (const ConfigNode& pv : pvs->children) {
    const ConfigNode* id = pv.section ? pv.find("id") : nullptr;
    if (!id || id->section || id->list || id->values.size() != 1) continue;
    Result<std::string> u = parse_lvm2_uuid(id->values[0].text);
    if (!u.ok() || *u != pv_uuid) continue;
    out.pe_count = uint_of(pv.find("pe_count"));
    out.extent_size = uint_of(vg->find("extent_size"));
    if (out.pe_count == 0 || out.extent_size == 0) out = PvEntry{};
    break;
  }
  return out;
}

class Lvm2Format final : public VgFormat {
 public:
  std::string_view name() const override { return "lvm2"; }

  Result<FoundLabel> read_label(const PvDevice& dev) const override {
    PvLabel l;
    VGFS_ASSIGN_OR_RETURN(l, read_lvm2_label(dev));
    FoundLabel found;
    vgfs::PvLabel& p = found.label;
    p.pv_uuid = short_uuid(l.uuid);
    p.layout.pe_start = l.pe_start();
    p.layout.device_size = l.device_size;
    p.record = {{"id", fmt::format("\"{}\"", format_lvm2_uuid(l.uuid))}};
    found.copy_ok.assign(1, true);
    // The VG it belongs to: the newest text in its mdas.
    const MetadataCopy* newest = nullptr;
    const std::vector<MetadataCopy> copies = read_copies(dev, p);
    for (const MetadataCopy& c : copies)
      if (c.checksum_ok && (!newest || c.seqno > newest->seqno)) newest = &c;
    if (newest) {
      // The VG, and this PV's entry in it, read from the tree: decode()
      // checks the whole text when the VG is opened.
      // (Up to physical_volumes: the LVs that follow are not needed here.)
      Result<ConfigTree> tree =
          parse_config_head(newest->text, dev.label(), {"id", "seqno", "extent_size", "physical_volumes"});
      Result<VgSummary> summary = tree.ok() ? read_vg_summary(*tree, dev.label()) : Result<VgSummary>(tree.status());
      if (summary.ok()) {
        p.vg_uuid = short_uuid(summary->uuid);
        const PvEntry entry = pv_entry(*tree, l.uuid);
        p.layout.pe_count = entry.pe_count;
        p.layout.extent_size = entry.extent_size * kSectorSize;
      }
      // A PV whose mdas hold a VG must say so in its label (LVM2 >= 2.03).
      if (l.has_extension && !l.in_vg()) found.copy_ok[0] = false;
    }
    return found;
  }

  std::vector<MetadataCopy> read_copies(const PvDevice& dev, const vgfs::PvLabel&) const override {
    std::vector<MetadataCopy> out;
    Result<PvLabel> l = read_lvm2_label(dev);
    if (!l.ok()) {
      MetadataCopy c;
      c.problem = l.status().message();
      out.push_back(std::move(c));
      return out;
    }
    const ByteSource source = source_of(dev);
    for (size_t i = 0; i < l->metadata_areas.size(); ++i) {
      const std::string where = fmt::format("{} mda{} (byte {})", dev.label(), i + 1, l->metadata_areas[i].offset);
      MetadataCopy c;
      Result<MdaText> m = read_mda(source, l->metadata_areas[i]);
      if (!m.ok()) {
        c.problem = m.status().message();
      } else if (m->header.ignored()) {
        c.problem = where + " is ignored (pvchange --metadataignore)";
      } else if (m->empty()) {
        c.problem = where + " holds no metadata";
      } else {
        // The seqno only (the head of the text): decode() reads the chosen one whole.
        Result<ConfigTree> tree = parse_config_head(m->text, where);
        Result<VgSummary> s = tree.ok() ? read_vg_summary(*tree, where) : Result<VgSummary>(tree.status());
        if (!s.ok()) {
          c.problem = s.status().message();
        } else {
          c.checksum_ok = true;
          c.seqno = s->seqno;
          c.text = std::move(m->text);
        }
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  Status check_new_lv_name(std::string_view name) const override { return lvm2::check_new_lv_name(name); }
  std::string encode(const VgMetadata& md) const override { return encode_vg_text(md); }
  std::string encode_backup(const VgMetadata& md) const override { return encode_vg_backup(md); }
  Result<VgMetadata> decode(std::string_view text, std::string_view origin) const override {
    return decode_vg_text(text, origin);
  }

  Status check_against_label(const VgMetadata& md, uint32_t pv, const vgfs::PvLabel& label) const override {
    const PvInfo& p = md.pvs[pv];
    const PvLayout& l = label.layout;
    if (p.pe_start != l.pe_start)
      return Status::Error(EINVAL, fmt::format("says PV {} has pe_start {}, its LVM2 label says {}", p.name,
                                               p.pe_start, l.pe_start));
    const u128 end = u128{p.pe_start} + u128{p.pe_count} * md.extent_size;
    if (l.device_size && end > l.device_size)
      return Status::Error(EINVAL, fmt::format("says PV {} has {} extents of {} bytes from byte {}, past the {} "
                                               "bytes of its LVM2 label",
                                               p.name, p.pe_count, md.extent_size, p.pe_start, l.device_size));
    return Status::Ok();
  }

  Status repair(const PvDevice& dev, const FoundLabel& found, const std::vector<MetadataCopy>& copies, uint64_t seqno,
                const std::string& text, bool write, std::vector<std::string>* warnings) const override {
    // vgfs writes nothing to a VG whose changes it refuses (foreign, shared,
    // exported, ...): it reports what LVM2 would repair.
    PvLabel l;
    VGFS_ASSIGN_OR_RETURN(l, read_lvm2_label(dev));
    std::vector<MdaPlace> places;
    VGFS_ASSIGN_OR_RETURN(places, read_places(dev, l));
    // Nothing to repair (the usual case): no decode of the text either.
    const bool label_wrong = !found.copy_ok.empty() && !found.copy_ok[0];
    bool any = label_wrong;
    for (size_t i = 0; i < places.size() && !any; ++i) {
      if (!places[i].damaged && places[i].header.ignored()) continue;
      any = !(i < copies.size() && copies[i].checksum_ok && copies[i].seqno == seqno && copies[i].text == text);
    }
    if (!any) return Status::Ok();
    std::string refused;
    if (Result<VgMetadata> md = decode(text, dev.label()); md.ok()) refused = md->change_refused;
    const bool may_write = write && refused.empty();
    const std::string done = may_write ? fmt::format("; rewritten with seqno {}", seqno)
                             : write  ? "; not repaired: " + refused
                                      : "";
    bool wrote = false;
    for (size_t i = 0; i < places.size(); ++i) {
      const MdaPlace& place = places[i];
      if (!place.damaged && place.header.ignored()) continue;
      const MetadataCopy none;
      const MetadataCopy& c = i < copies.size() ? copies[i] : none;
      if (c.checksum_ok && c.seqno == seqno && c.text == text) continue;
      const std::string what = c.checksum_ok ? fmt::format("is stale (seqno {} < {})", c.seqno, seqno)
                               : c.problem.empty() ? std::string("is damaged")
                                                   : "is damaged or invalid (" + c.problem + ")";
      if (warnings)
        warnings->push_back(
            fmt::format("{}: mda{} (byte {}) {}{}", dev.label(), i + 1, place.area.offset, what, done));
      if (!may_write) continue;
      for (int phase = 0; phase < 3; ++phase) {
        VGFS_RETURN_IF_ERROR(write_mda_phase(dev, place, phase, text));
        VGFS_RETURN_IF_ERROR(dev.sync());
      }
      wrote = true;
    }
    if (label_wrong) {
      if (warnings)
        warnings->push_back(fmt::format("{}: the LVM2 label does not mark the PV as in a VG{}", dev.label(),
                                        may_write ? "; fixed" : done));
      if (may_write) {
        VGFS_RETURN_IF_ERROR(write_in_vg_flag(dev, l, true));
        wrote = true;
      }
    }
    return wrote ? dev.sync() : Status::Ok();
  }

  int commit_phases() const override { return 3; }

  Status write_commit_phase(int phase, const PvDevice& dev, const vgfs::PvLabel&, uint64_t,
                            const std::string& text) const override {
    PvLabel l;
    VGFS_ASSIGN_OR_RETURN(l, read_lvm2_label(dev));
    std::vector<MdaPlace> places;
    VGFS_ASSIGN_OR_RETURN(places, read_places(dev, l));
    for (const MdaPlace& place : places) {
      if (!place.damaged && place.header.ignored()) continue;  // ignored mdas keep no text
      VGFS_RETURN_IF_ERROR(write_mda_phase(dev, place, phase, text));
    }
    if (phase == 2) VGFS_RETURN_IF_ERROR(write_in_vg_flag(dev, l, true));
    return Status::Ok();
  }

  Result<vgfs::PvLabel> new_pv_label(uint64_t device_size, const VgMetadata& md) const override {
    const std::string id = new_lvm2_id();
    vgfs::PvLabel p;
    p.pv_uuid = short_uuid(id);
    p.vg_uuid = md.uuid;
    p.layout.pe_start = kNewPvDataOffset;
    p.layout.extent_size = md.extent_size;
    p.layout.device_size = device_size;
    p.layout.pe_count = device_size > kNewPvDataOffset ? (device_size - kNewPvDataOffset) / md.extent_size : 0;
    p.record = {{"id", fmt::format("\"{}\"", format_lvm2_uuid(id))},
                {"status", "[\"ALLOCATABLE\"]"},
                {"flags", "[]"},
                {"dev_size", std::to_string(device_size / kSectorSize)}};
    return p;
  }

  std::string_view archive_suffix() const override { return "vg"; }
  bool keeps_lv_ownership() const override { return false; }
  Result<VgMetadata> without_foreign_move(const VgMetadata& md) const override { return without_pvmove(md); }
  bool opens_recorded_paths() const override { return false; }  // `device` is a hint only

  Status write_new_pv(const PvDevice& dev, const vgfs::PvLabel& label) const override {
    const std::string id = unquote_id(label.record);
    if (id.empty()) return Status::Error(EINVAL, fmt::format("{}: the new PV's label has no LVM2 id", dev.label()));
    if (label.layout.pe_start < kNewPvMdaOffset + kMdaHeaderSize + 4 * KiB)
      return Status::Error(EINVAL, fmt::format("{}: pe_start {} leaves no room for a metadata area", dev.label(),
                                               label.layout.pe_start));
    const DiskArea mda{kNewPvMdaOffset, label.layout.pe_start - kNewPvMdaOffset};
    // The sectors LVM2 scans for labels are cleared, then the empty mda
    // header, then the label (in the VG: the next commit fills the mda).
    std::string head(kLabelScanSectors * kSectorSize, '\0');
    VGFS_RETURN_IF_ERROR(dev.write_at(head.data(), head.size(), 0));
    const std::string h = mda_header_block(mda.offset, mda.size, {}, {});
    VGFS_RETURN_IF_ERROR(dev.write_at(h.data(), h.size(), mda.offset));
    const std::string sector = new_label_sector(id, label.layout.device_size, label.layout.pe_start, mda, true);
    VGFS_RETURN_IF_ERROR(dev.write_at(sector.data(), sector.size(), kLabelSector * kSectorSize));
    return dev.sync();
  }

  // vgreduce's result: an orphan PV (its mdas hold no VG, the in-VG flag
  // clear), which pvcreate/vgextend can take again.
  Status wipe_pv(const PvDevice& dev) const override {
    PvLabel l;
    VGFS_ASSIGN_OR_RETURN(l, read_lvm2_label(dev));
    std::vector<MdaPlace> places;
    VGFS_ASSIGN_OR_RETURN(places, read_places(dev, l));
    for (const MdaPlace& place : places) {
      RawLocation empty{};
      if (!place.damaged) empty.flags = place.header.committed.flags & kRawLocationIgnored;
      const std::string h = mda_header_block(place.area.offset, place.area.size, empty, {});
      VGFS_RETURN_IF_ERROR(dev.write_at(h.data(), h.size(), place.area.offset));
    }
    VGFS_RETURN_IF_ERROR(write_in_vg_flag(dev, l, false));
    return dev.sync();
  }
};

// The parts of [offset, offset + length) of a ring of `area_size` bytes, the
// second after the wrap to 512.
struct Span {
  uint64_t begin, end;
};
std::vector<Span> ring_spans(uint64_t area_size, uint64_t offset, uint64_t length) {
  if (offset + length <= area_size) return {Span{offset, offset + length}};
  return {Span{offset, area_size}, Span{kMdaHeaderSize, kMdaHeaderSize + (offset + length - area_size)}};
}

}  // namespace

Result<RawLocation> plan_ring_write(uint64_t area_size, const RawLocation& committed, uint64_t text_size) {
  if (area_size < 4 * kMdaHeaderSize)
    return Status::Error(ENOSPC, fmt::format("the metadata area of {} bytes has no room for a text", area_size));
  const uint64_t buffer = area_size - kMdaHeaderSize;
  const uint64_t max = buffer / 2 > kMdaHeaderSize ? buffer / 2 - kMdaHeaderSize : 0;
  if (text_size == 0 || text_size > max)
    return Status::Error(ENOSPC, fmt::format("metadata of {} bytes does not fit the {}-byte metadata area (LVM2 "
                                             "takes at most {} bytes there)",
                                             text_size, area_size, max));
  uint64_t offset = kMdaHeaderSize;
  const bool has_committed = committed.offset != 0;
  if (has_committed) {
    VGFS_RETURN_IF_ERROR(check_raw_location(committed, area_size, "the committed"));
    uint64_t end = committed.offset + committed.size;  // cannot wrap: both were checked
    if (end > area_size) end = end - area_size + kMdaHeaderSize;
    offset = align_up(end, kSectorSize);
    if (offset >= area_size || area_size - offset < kSectorSize) offset = kMdaHeaderSize;
  }
  // What phase 0 writes (write_mda_phase): the text, each part padded to
  // 512 but never past the area end.
  const uint64_t first = std::min(text_size, area_size - offset);
  std::vector<Span> mine = {Span{offset, std::min(offset + align_up(first, kSectorSize), area_size)}};
  if (first < text_size) mine.push_back(Span{kMdaHeaderSize, kMdaHeaderSize + align_up(text_size - first, kSectorSize)});
  if (has_committed)
    for (const Span& a : mine)
      for (const Span& b : ring_spans(area_size, committed.offset, committed.size))
        if (a.begin < b.end && b.begin < a.end)
          return Status::Error(ENOSPC, fmt::format("metadata of {} bytes at offset {} would overlap the committed "
                                                   "copy at offset {} ({} bytes) in the {}-byte metadata area",
                                                   text_size, offset, committed.offset, committed.size, area_size));
  return RawLocation{offset, text_size, 0, 0};
}

}  // namespace vgfs::lvm2

namespace vgfs {

const VgFormat& lvm2_format() {
  static const lvm2::Lvm2Format format;
  return format;
}

}  // namespace vgfs
