// vgfs's own on-disk format behind VgFormat (include/vgfs/vg_format.h,
// docs/format.md): two label copies at 0 and 4 KiB, two metadata slots
// (seqno N in slot N % 2) holding the YAML text, a migration area.
#include <fmt/format.h>

#include <algorithm>

#include "vgfs/job_record.h"
#include "vgfs/pv_lease.h"
#include "vgfs/vg_format.h"
#include "vgfs/vg_store.h"

namespace vgfs {

namespace {

MetadataCopy read_slot(const PvDevice& dev, const PvLayout& layout, int slot) {
  MetadataCopy copy;
  std::string header(kSlotHeaderSize, '\0');
  Status st = dev.read_at(header.data(), header.size(), layout.slot_offset[slot]);
  if (!st.ok()) {
    copy.problem = st.message();
    return copy;
  }
  Result<SlotHeader> h = decode_slot_header(header, layout.slot_size);
  if (!h.ok()) {
    copy.problem = h.status().message();
    return copy;
  }
  copy.text.resize(h->text_length);
  st = dev.read_at(copy.text.data(), copy.text.size(), layout.slot_offset[slot] + kSlotHeaderSize);
  if (!st.ok()) {
    copy.problem = st.message();
    return copy;
  }
  if (crc32c(copy.text.data(), copy.text.size()) != h->text_crc) {
    copy.problem = "metadata text checksum mismatch";
    return copy;
  }
  copy.checksum_ok = true;
  copy.seqno = h->seqno;
  return copy;
}

// Header and text of a slot, padded to whole 4 KiB blocks: one write.
std::string slot_image(uint64_t seqno, const std::string& text) {
  std::string image = encode_slot_header(SlotHeader{seqno, text.size(), crc32c(text.data(), text.size())});
  image += text;
  image.resize(align_up(image.size(), 4 * KiB), '\0');
  return image;
}

class VgfsFormat final : public VgFormat {
 public:
  std::string_view name() const override { return "vgfs"; }

  Result<FoundLabel> read_label(const PvDevice& dev) const override {
    FoundLabel found;
    found.copy_ok.assign(2, false);
    std::string problem;
    bool magic_seen = false;
    bool have = false;
    for (int i = 0; i < 2; ++i) {
      std::string block(kLabelSize, '\0');
      if (dev.size() < kLabelOffsets[i] + kLabelSize) break;
      VGFS_RETURN_IF_ERROR(dev.read_at(block.data(), block.size(), kLabelOffsets[i]));
      magic_seen = magic_seen || looks_like_label(block);
      Result<PvLabel> label = decode_label(block, dev.size());
      if (label.ok() && !have) {
        found.label = *label;
        have = true;
      }
      found.copy_ok[i] = label.ok();
      if (!label.ok() && problem.empty()) problem = label.status().message();
    }
    if (!found.copy_ok[0] && !found.copy_ok[1]) {
      if (magic_seen)
        return Status::Error(EINVAL, fmt::format("{}: label damaged on both copies ({})", dev.label(), problem));
      return Status::Error(EINVAL, fmt::format("{}: not a vgfs PV (no label)", dev.label()));
    }
    if (found.copy_ok[0] && found.copy_ok[1]) {
      std::string a(kLabelSize, '\0'), b(kLabelSize, '\0');
      VGFS_RETURN_IF_ERROR(dev.read_at(a.data(), a.size(), kLabelOffsets[0]));
      VGFS_RETURN_IF_ERROR(dev.read_at(b.data(), b.size(), kLabelOffsets[1]));
      if (a != b) found.copy_ok[1] = false;  // copy B lags A: rewrite it from A
    }
    return found;
  }

  std::vector<MetadataCopy> read_copies(const PvDevice& dev, const PvLabel& label) const override {
    return {read_slot(dev, label.layout, 0), read_slot(dev, label.layout, 1)};
  }

  std::string encode(const VgMetadata& md) const override { return encode_metadata(md); }
  Result<VgMetadata> decode(std::string_view text, std::string_view origin) const override {
    return decode_metadata(text, origin);
  }
  Status check_against_label(const VgMetadata& md, uint32_t pv, const PvLabel& label) const override {
    return vgfs::check_against_label(md, pv, label);
  }

  // Slot seqno % 2 must hold exactly the text; the other slot any valid
  // copy (the previous commit); both label copies good and equal.
  Status repair(const PvDevice& dev, const FoundLabel& found, const std::vector<MetadataCopy>& copies,
                uint64_t seqno, const std::string& text, bool write,
                std::vector<std::string>* warnings) const override {
    for (int k = 0; k < 2; ++k) {
      if (found.copy_ok[k]) continue;
      if (warnings) warnings->push_back(fmt::format("{}: label copy {} damaged{}", dev.label(), k,
                                                    write ? "; rewritten" : ""));
      if (write) {
        std::string block = encode_label(found.label);
        VGFS_RETURN_IF_ERROR(dev.write_at(block.data(), block.size(), kLabelOffsets[k]));
      }
    }
    bool repaired = false;
    for (int k = 0; k < 2; ++k) {
      const MetadataCopy& s = copies[k];
      bool current = k == static_cast<int>(seqno % 2);
      bool fine = current ? (s.checksum_ok && s.seqno == seqno && s.text == text) : s.checksum_ok;
      if (fine) continue;
      if (warnings)
        warnings->push_back(fmt::format("{}: metadata slot {} {}{}", dev.label(), k,
                                        s.checksum_ok ? fmt::format("is stale (seqno {} < {})", s.seqno, seqno)
                                                      : "is damaged or invalid (" + s.problem + ")",
                                        write ? fmt::format("; rewritten with seqno {}", seqno) : ""));
      if (write) {
        VGFS_RETURN_IF_ERROR(write_metadata_slot(dev, found.label.layout, k, seqno, text));
        repaired = true;
      }
    }
    if (write && (repaired || !found.copy_ok[0] || !found.copy_ok[1])) VGFS_RETURN_IF_ERROR(dev.sync());
    return Status::Ok();
  }

  // One phase: slot seqno % 2. The other slot keeps seqno - 1 until this
  // one is durable on every PV (docs/format.md, "Commit and load").
  int commit_phases() const override { return 1; }
  Status write_commit_phase(int, const PvDevice& dev, const PvLabel& label, uint64_t seqno,
                            const std::string& text) const override {
    return write_metadata_slot(dev, label.layout, static_cast<int>(seqno % 2), seqno, text);
  }

  Status write_new_pv(const PvDevice& dev, const PvLabel& label) const override {
    const PvLayout& l = label.layout;
    std::string zero(kSlotHeaderSize, '\0');
    for (uint64_t at : {l.slot_offset[0], l.slot_offset[1], l.migration_offset})
      VGFS_RETURN_IF_ERROR(dev.write_at(zero.data(), zero.size(), at));
    std::string block = encode_label(label);
    for (uint64_t at : kLabelOffsets) VGFS_RETURN_IF_ERROR(dev.write_at(block.data(), block.size(), at));
    return dev.sync();
  }

  Status wipe_pv(const PvDevice& dev) const override { return wipe_label(dev); }
  // The 4 KiB after the second label copy (docs/format.md, "Layout"), when
  // every area the label places starts after it (the standard layout's
  // first area is at 1 MiB).
  std::optional<uint64_t> lease_offset(const PvLabel& label) const override {
    const PvLayout& l = label.layout;
    const uint64_t at = kLabelOffsets[1] + kLabelSize;
    const uint64_t first = std::min({l.slot_offset[0], l.slot_offset[1], l.migration_offset, l.pe_start});
    if (first < at + kLeaseSize) return std::nullopt;
    return at;
  }

  Result<PvLabel> new_pv_label(uint64_t device_size, const VgMetadata& md) const override {
    return PvLabel{new_uuid(), md.uuid, PvLayout::standard(device_size, md.extent_size)};
  }
  std::string_view archive_suffix() const override { return "yaml"; }
};

}  // namespace

const VgFormat& vgfs_format() {
  static const VgfsFormat format;
  return format;
}

Status write_metadata_slot(const PvDevice& dev, const PvLayout& layout, int slot, uint64_t seqno,
                           const std::string& text) {
  std::string image = slot_image(seqno, text);
  if (image.size() > layout.slot_size)
    return Status::Error(ENOSPC, fmt::format("{}: metadata of {} bytes does not fit its {} slot", dev.label(),
                                             text.size(), format_size(layout.slot_size)));
  return dev.write_at(image.data(), image.size(), layout.slot_offset[slot]);
}

Status check_against_label(const VgMetadata& md, uint32_t pv, const PvLabel& label) {
  const PvInfo& p = md.pvs[pv];
  const PvLayout& l = label.layout;
  if (l.extent_size != md.extent_size || l.pe_start != p.pe_start || l.pe_count < p.pe_count)
    return Status::Error(EINVAL, fmt::format("says PV {} has pe_start {} and {} PEs of {} bytes, its label says "
                                             "pe_start {} and {} PEs of {} bytes",
                                             p.name, p.pe_start, p.pe_count, md.extent_size, l.pe_start, l.pe_count,
                                             l.extent_size));
  for (const JobInfo& j : md.jobs) {
    if (!j.running() || j.src_pv != pv) continue;
    // validate() bounds count * extent_size below 2^64.
    const uint64_t regions = div_ceil(j.count * md.extent_size, md.region_size);
    const uint64_t need = 2 * job_record_copy_size(regions);
    if (j.record_size != need)
      return Status::Error(EINVAL, fmt::format("job {}: record size {} is not the {} bytes of two copies for {} "
                                               "regions", j.id, j.record_size, need, regions));
    if (j.record_offset > l.migration_size || j.record_size > l.migration_size - j.record_offset)
      return Status::Error(EINVAL, fmt::format("job {}: record at {} +{} is outside the {}-byte migration area of "
                                               "PV {}", j.id, j.record_offset, j.record_size, l.migration_size,
                                               p.name));
  }
  return Status::Ok();
}

}  // namespace vgfs
