// Loading, repairing and committing the VG metadata on the PVs
// (include/vgfs/vg_store.h, SPEC §4, docs/format.md).
#include "vgfs/vg_store.h"

#include "vgfs/archive.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>

namespace vgfs {

namespace {

std::string pv_label(const std::string& name, const std::string& path) {
  return fmt::format("PV {} ({})", name, path);
}

// One metadata slot as found on disk.
struct SlotCopy {
  bool valid = false;
  uint64_t seqno = 0;
  std::string text;
  std::string problem;  // why it is not valid
};

SlotCopy read_slot(const PvDevice& dev, const PvLayout& layout, int slot) {
  SlotCopy copy;
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
  copy.valid = true;
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

}  // namespace

Status write_metadata_slot(const PvDevice& dev, const PvLayout& layout, int slot, uint64_t seqno,
                           const std::string& text) {
  std::string image = slot_image(seqno, text);
  if (image.size() > layout.slot_size)
    return Status::Error(ENOSPC, fmt::format("{}: metadata of {} bytes does not fit its {} slot", dev.label(),
                                             text.size(), format_size(layout.slot_size)));
  return dev.write_at(image.data(), image.size(), layout.slot_offset[slot]);
}

namespace {

// A PV opened for loading: the device, its label copies and slots.
struct Candidate {
  PvDevice dev;
  PvLabel label;
  bool label_ok[2] = {false, false};
  SlotCopy slots[2];
};

Result<Candidate> open_candidate(const std::string& name, const std::string& path, OpenMode mode) {
  Candidate c;
  Result<PvDevice> dev = PvDevice::open(path, mode == OpenMode::kReadWrite, pv_label(name, path));
  if (!dev.ok()) return dev.status();
  c.dev = std::move(*dev);
  VGFS_RETURN_IF_ERROR(c.dev.lock(mode == OpenMode::kReadWrite));
  std::string problem;
  bool magic_seen = false;
  for (int i = 0; i < 2; ++i) {
    std::string block(kLabelSize, '\0');
    if (c.dev.size() < kLabelOffsets[i] + kLabelSize) break;
    VGFS_RETURN_IF_ERROR(c.dev.read_at(block.data(), block.size(), kLabelOffsets[i]));
    magic_seen = magic_seen || looks_like_label(block);
    Result<PvLabel> label = decode_label(block, c.dev.size());
    if (label.ok() && !c.label_ok[0]) c.label = *label;
    c.label_ok[i] = label.ok();
    if (!label.ok() && problem.empty()) problem = label.status().message();
  }
  if (!c.label_ok[0] && !c.label_ok[1]) {
    if (magic_seen)
      return Status::Error(EINVAL, fmt::format("{}: label damaged on both copies ({})", c.dev.label(), problem));
    return Status::Error(EINVAL, fmt::format("{}: not a vgfs PV (no label)", c.dev.label()));
  }
  if (c.label_ok[0] && c.label_ok[1]) {
    std::string a(kLabelSize, '\0'), b(kLabelSize, '\0');
    VGFS_RETURN_IF_ERROR(c.dev.read_at(a.data(), a.size(), kLabelOffsets[0]));
    VGFS_RETURN_IF_ERROR(c.dev.read_at(b.data(), b.size(), kLabelOffsets[1]));
    if (a != b) c.label_ok[1] = false;  // copy B lags A: rewrite it from A
  }
  for (int s = 0; s < 2; ++s) c.slots[s] = read_slot(c.dev, c.label.layout, s);
  return c;
}

}  // namespace

Result<std::unique_ptr<VgStore>> VgStore::open(const VgConfig& config, OpenMode mode,
                                               std::vector<std::string>* warnings) {
  std::deque<Candidate> found;  // a deque: pointers into it stay valid as it grows
  for (const PvConfig& pv : config.pvs) {
    Result<Candidate> c = open_candidate(pv.name, pv.path, mode);
    if (!c.ok()) return c.status();
    if (!found.empty() && c->label.vg_uuid != found[0].label.vg_uuid)
      return Status::Error(EINVAL, fmt::format("{} belongs to another VG (uuid {}) than {} (uuid {})",
                                               c->dev.label(), format_uuid(c->label.vg_uuid), found[0].dev.label(),
                                               format_uuid(found[0].label.vg_uuid)));
    found.push_back(std::move(*c));
  }

  // The newest valid metadata on any PV wins. A copy that passes its
  // checksums but does not decode, belongs to another VG, or contradicts the
  // labels is invalid: it is reported and repaired like a damaged one.
  auto check_copy = [&](const SlotCopy& copy) -> Result<VgMetadata> {
    Result<VgMetadata> md = decode_metadata(copy.text, fmt::format("metadata seqno {}", copy.seqno));
    if (!md.ok()) return md.status();
    if (md->seqno != copy.seqno || md->uuid != found[0].label.vg_uuid)
      return Status::Error(EINVAL, fmt::format("metadata seqno {} belongs to another VG or seqno", copy.seqno));
    for (const Candidate& c : found)
      for (const PvInfo& p : md->pvs)
        if (p.uuid == c.label.pv_uuid &&
            (c.label.layout.extent_size != md->extent_size || c.label.layout.pe_start != p.pe_start ||
             c.label.layout.pe_count < p.pe_count))
          return Status::Error(EINVAL, fmt::format("metadata seqno {} says PV {} has pe_start {} and {} PEs of {} "
                                                   "bytes, its label says pe_start {} and {} PEs of {} bytes",
                                                   copy.seqno, p.name, p.pe_start, p.pe_count, md->extent_size,
                                                   c.label.layout.pe_start, c.label.layout.pe_count,
                                                   c.label.layout.extent_size));
    return md;
  };
  std::vector<SlotCopy*> order;
  for (Candidate& c : found)
    for (SlotCopy& s : c.slots)
      if (s.valid) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->seqno > b->seqno; });
  std::unique_ptr<VgStore> store(new VgStore);
  store->mode_ = mode;
  const SlotCopy* best = nullptr;
  std::string first_problem;
  for (SlotCopy* copy : order) {
    if (!copy->valid) continue;  // found invalid as a twin of an earlier copy
    Result<VgMetadata> md = check_copy(*copy);
    if (md.ok()) {
      store->metadata_ = std::move(*md);
      best = copy;
      break;
    }
    if (first_problem.empty()) first_problem = md.status().message();
    for (SlotCopy* twin : order)
      if (twin->valid && twin->seqno == copy->seqno && twin->text == copy->text) {
        twin->valid = false;
        twin->problem = md.status().message();
      }
  }
  if (!best) {
    std::string names;
    for (const Candidate& c : found) names += (names.empty() ? "" : ", ") + c.dev.label();
    return Status::Error(EINVAL, fmt::format("no valid metadata on any PV of VG {} ({}): every copy is damaged{}",
                                             config.name, names,
                                             first_problem.empty() ? "" : " or invalid; newest: " + first_problem));
  }
  VgMetadata& md = store->metadata_;

  // Put the PVs in metadata order; every metadata PV must be present.
  store->pvs_.resize(md.pvs.size());
  store->labels_.resize(md.pvs.size());
  std::vector<Candidate*> by_index(md.pvs.size(), nullptr);
  for (size_t i = 0; i < found.size(); ++i) {
    Candidate& c = found[i];
    auto it = std::find_if(md.pvs.begin(), md.pvs.end(), [&](const PvInfo& p) { return p.uuid == c.label.pv_uuid; });
    if (it == md.pvs.end())
      return Status::Error(EINVAL, fmt::format("{} is not a PV of VG {} (its UUID {} is not in the metadata)",
                                               c.dev.label(), md.name, format_uuid(c.label.pv_uuid)));
    size_t index = static_cast<size_t>(it - md.pvs.begin());
    if (it->name != config.pvs[i].name && warnings)
      warnings->push_back(fmt::format("{} is named {} in the VG metadata; using that name", c.dev.label(), it->name));
    it->path = c.dev.path();
    by_index[index] = &c;
  }
  for (size_t i = 0; i < md.pvs.size(); ++i) {
    if (!by_index[i]) {
      Result<Candidate> c = open_candidate(md.pvs[i].name, md.pvs[i].path, mode);
      if (!c.ok() || c->label.pv_uuid != md.pvs[i].uuid)
        return Status::Error(ENOENT, fmt::format("PV {} (UUID {}, last seen at {}) is missing: add it to the config",
                                                 md.pvs[i].name, format_uuid(md.pvs[i].uuid), md.pvs[i].path));
      found.push_back(std::move(*c));
      by_index[i] = &found.back();
    }
  }
  for (size_t i = 0; i < md.pvs.size(); ++i) {
    Candidate& c = *by_index[i];
    const PvLayout& l = c.label.layout;
    if (l.extent_size != md.extent_size || l.pe_start != md.pvs[i].pe_start || l.pe_count < md.pvs[i].pe_count)
      return Status::Error(EINVAL, fmt::format("{}: label layout (extent size {}, pe_start {}, {} PEs) does not match "
                                               "the metadata (extent size {}, pe_start {}, {} PEs)",
                                               c.dev.label(), l.extent_size, l.pe_start, l.pe_count, md.extent_size,
                                               md.pvs[i].pe_start, md.pvs[i].pe_count));
  }

  // Report, and when writable rewrite, every stale or damaged copy.
  const std::string& text = best->text;
  const uint64_t seqno = md.seqno;
  for (size_t i = 0; i < md.pvs.size(); ++i) {
    Candidate& c = *by_index[i];
    for (int k = 0; k < 2; ++k) {
      if (c.label_ok[k]) continue;
      if (warnings) warnings->push_back(fmt::format("{}: label copy {} damaged{}", c.dev.label(), k,
                                                    mode == OpenMode::kReadWrite ? "; rewritten" : ""));
      if (mode == OpenMode::kReadWrite) {
        std::string block = encode_label(c.label);
        VGFS_RETURN_IF_ERROR(c.dev.write_at(block.data(), block.size(), kLabelOffsets[k]));
      }
    }
    bool repaired = false;
    for (int k = 0; k < 2; ++k) {
      const SlotCopy& s = c.slots[k];
      bool current = k == static_cast<int>(seqno % 2);
      bool fine = current ? (s.valid && s.seqno == seqno && s.text == text) : s.valid;
      if (fine) continue;
      if (warnings)
        warnings->push_back(fmt::format("{}: metadata slot {} {}{}", c.dev.label(), k,
                                        s.valid ? fmt::format("is stale (seqno {} < {})", s.seqno, seqno)
                                                : "is damaged or invalid (" + s.problem + ")",
                                        mode == OpenMode::kReadWrite ? fmt::format("; rewritten with seqno {}", seqno)
                                                                     : ""));
      if (mode == OpenMode::kReadWrite) {
        VGFS_RETURN_IF_ERROR(write_metadata_slot(c.dev, c.label.layout, k, seqno, text));
        repaired = true;
      }
    }
    if (repaired || !c.label_ok[0] || !c.label_ok[1]) {
      if (mode == OpenMode::kReadWrite) VGFS_RETURN_IF_ERROR(c.dev.sync());
    }
    store->labels_[i] = c.label;
    store->pvs_[i] = std::make_unique<PvDevice>(std::move(c.dev));
  }
  return store;
}

Status VgStore::add_pv(PvDevice dev, const PvLabel& label) {
  const PvLayout& l = label.layout;
  std::string zero(kSlotHeaderSize, '\0');
  for (uint64_t at : {l.slot_offset[0], l.slot_offset[1], l.migration_offset})
    VGFS_RETURN_IF_ERROR(dev.write_at(zero.data(), zero.size(), at));
  std::string block = encode_label(label);
  for (uint64_t at : kLabelOffsets) VGFS_RETURN_IF_ERROR(dev.write_at(block.data(), block.size(), at));
  VGFS_RETURN_IF_ERROR(dev.sync());
  pvs_.push_back(std::make_unique<PvDevice>(std::move(dev)));
  labels_.push_back(label);
  return Status::Ok();
}

std::unique_ptr<PvDevice> VgStore::remove_pv(uint32_t index) {
  std::unique_ptr<PvDevice> dev = std::move(pvs_[index]);
  pvs_.erase(pvs_.begin() + index);
  labels_.erase(labels_.begin() + index);
  return dev;
}

void VgStore::restore_pv(uint32_t index, std::unique_ptr<PvDevice> dev, const PvLabel& label) {
  pvs_.insert(pvs_.begin() + index, std::move(dev));
  labels_.insert(labels_.begin() + index, label);
}


Status VgStore::commit(VgMetadata next) {
  if (mode_ != OpenMode::kReadWrite) return Status::Error(EROFS, "the VG is open read-only");
  next.seqno = metadata_.seqno + 1;
  VGFS_RETURN_IF_ERROR(next.validate());
  const std::string text = encode_metadata(next);
  commit_problems_.clear();
  if (!archive_.empty())
    if (Status a = archive_metadata(archive_, metadata_, kArchiveKeep); !a.ok()) commit_problems_.push_back(a.message());
  const int slot = static_cast<int>(next.seqno % 2);
  // Loading takes the highest seqno found on any PV, so the commit holds as
  // soon as one PV has it durably; a PV that failed keeps a stale copy that
  // the next read-write open rewrites.
  std::vector<Status> results;
  for (size_t i = 0; i < pvs_.size(); ++i) results.push_back(write_metadata_slot(*pvs_[i], labels_[i].layout, slot, next.seqno, text));
  size_t durable = 0;
  for (size_t i = 0; i < pvs_.size(); ++i) {
    if (results[i].ok()) results[i] = pvs_[i]->sync();
    if (results[i].ok()) ++durable;
    else commit_problems_.push_back(results[i].message());
  }
  if (durable == 0) return results[0];
  metadata_ = std::move(next);
  return Status::Ok();
}

}  // namespace vgfs
