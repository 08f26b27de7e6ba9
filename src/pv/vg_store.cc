// Loading, repairing and committing the VG metadata on the PVs
// (include/vgfs/vg_store.h, docs/format.md).
#include "vgfs/vg_store.h"

#include "vgfs/archive.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "vgfs/job_record.h"

namespace vgfs {

namespace {

// How a PV is named in messages; both parts may come from disk.
std::string pv_label(const std::string& name, const std::string& path) {
  return fmt::format("PV {} ({})", printable(name), printable(path));
}

// One metadata slot as found on disk.
struct SlotCopy {
  bool checksum_ok = false;    // header and text checksums pass
  std::string checksum_problem;
  bool valid = false;          // checksum_ok, and not found invalid while choosing
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
  copy.valid = copy.checksum_ok = true;
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
  for (int s = 0; s < 2; ++s) {
    c.slots[s] = read_slot(c.dev, c.label.layout, s);
    c.slots[s].checksum_problem = c.slots[s].problem;
  }
  return c;
}

// The copy a load takes among the copies of `found`: the highest seqno that
// decodes and passes check_against_label for every found PV it lists. A copy
// that fails is marked invalid (with its twins: same seqno and text) and
// reported later. Two valid copies with one seqno but different texts are
// never resolved silently: the load is refused naming both PVs.
struct Choice {
  const SlotCopy* best = nullptr;
  VgMetadata md;
};

Result<Choice> choose(std::deque<Candidate>& found, const std::string& vg_name) {
  struct Ref {
    SlotCopy* copy;
    const Candidate* pv;
  };
  std::vector<Ref> order;
  for (Candidate& c : found)
    for (SlotCopy& s : c.slots) {
      s.valid = s.checksum_ok;
      s.problem = s.checksum_problem;
      if (s.valid) order.push_back(Ref{&s, &c});
    }
  std::stable_sort(order.begin(), order.end(), [](const Ref& a, const Ref& b) { return a.copy->seqno > b.copy->seqno; });
  auto check_copy = [&](const SlotCopy& copy) -> Result<VgMetadata> {
    Result<VgMetadata> md = decode_metadata(copy.text, fmt::format("metadata seqno {}", copy.seqno));
    if (!md.ok()) return md.status();
    if (md->seqno != copy.seqno || md->uuid != found[0].label.vg_uuid)
      return Status::Error(EINVAL, fmt::format("metadata seqno {} belongs to another VG or seqno", copy.seqno));
    for (const Candidate& c : found)
      for (uint32_t i = 0; i < md->pvs.size(); ++i)
        if (md->pvs[i].uuid == c.label.pv_uuid)
          VGFS_RETURN_IF_ERROR(check_against_label(*md, i, c.label).prefixed(fmt::format("metadata seqno {}", copy.seqno)));
    return md;
  };
  auto mark_invalid = [&](const SlotCopy& bad, const std::string& problem) {
    for (Ref& twin : order)
      if (twin.copy->valid && twin.copy->seqno == bad.seqno && twin.copy->text == bad.text) {
        twin.copy->valid = false;
        twin.copy->problem = problem;
      }
  };
  Choice choice;
  const Candidate* best_pv = nullptr;
  std::string first_problem;
  for (Ref& ref : order) {
    if (!ref.copy->valid) continue;  // found invalid as a twin of an earlier copy
    Result<VgMetadata> md = check_copy(*ref.copy);
    if (md.ok()) {
      choice.md = std::move(*md);
      choice.best = ref.copy;
      best_pv = ref.pv;
      break;
    }
    if (first_problem.empty()) first_problem = md.status().message();
    mark_invalid(*ref.copy, md.status().message());
  }
  if (!choice.best) {
    std::string names;
    for (const Candidate& c : found) names += (names.empty() ? "" : ", ") + c.dev.label();
    return Status::Error(EINVAL, fmt::format("no valid metadata on any PV of VG {} ({}): every copy is damaged{}",
                                             vg_name, names,
                                             first_problem.empty() ? "" : " or invalid; newest: " + first_problem));
  }
  for (Ref& ref : order) {
    if (!ref.copy->valid || ref.copy->seqno != choice.best->seqno || ref.copy->text == choice.best->text) continue;
    Result<VgMetadata> md = check_copy(*ref.copy);
    if (!md.ok()) {
      mark_invalid(*ref.copy, md.status().message());
      continue;
    }
    return Status::Error(EINVAL, fmt::format("{} and {} hold different metadata with the same seqno {}; vgfs "
                                             "will not guess which is current: take the PV whose copy must not "
                                             "count out of the config (see `vgfs dump` of each)",
                                             best_pv->dev.label(), ref.pv->dev.label(), choice.best->seqno));
  }
  return choice;
}

}  // namespace

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
    const uint64_t regions = (j.count * md.extent_size + md.region_size - 1) / md.region_size;
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
    for (const Candidate& o : found)
      if (o.label.pv_uuid == c->label.pv_uuid)
        return Status::Error(EINVAL, fmt::format("{} and {} are the same PV (UUID {})", o.dev.label(), c->dev.label(),
                                                 format_uuid(c->label.pv_uuid)));
    found.push_back(std::move(*c));
  }

  // The newest valid metadata on any PV of the VG wins, and the PVs of the
  // VG are those its metadata lists, not only the config's: a PV added by
  // pvadd may hold the newest commit. So choose among the PVs open so far,
  // open the PVs the choice lists at their last seen paths, and choose again
  // until no new PV turns up (each PV UUID is looked for once).
  std::map<Uuid, std::string> unreachable;  // PV UUID -> why its last seen path did not do
  Choice choice;
  std::set<Uuid> open_uuids;
  for (const Candidate& c : found) open_uuids.insert(c.label.pv_uuid);
  for (;;) {
    VGFS_ASSIGN_OR_RETURN(choice, choose(found, config.name));
    bool grew = false;
    for (const PvInfo& p : choice.md.pvs) {
      if (open_uuids.count(p.uuid) || unreachable.count(p.uuid)) continue;
      Result<Candidate> c = open_candidate(p.name, p.path, mode);
      if (!c.ok()) {
        unreachable[p.uuid] = c.status().message();
      } else if (c->label.pv_uuid != p.uuid || c->label.vg_uuid != found[0].label.vg_uuid) {
        unreachable[p.uuid] = fmt::format("{} holds PV UUID {} of VG {}", c->dev.label(),
                                          format_uuid(c->label.pv_uuid), format_uuid(c->label.vg_uuid));
      } else {
        open_uuids.insert(p.uuid);
        found.push_back(std::move(*c));
        grew = true;
      }
    }
    if (!grew) break;
  }
  std::unique_ptr<VgStore> store(new VgStore);
  store->mode_ = mode;
  store->metadata_ = std::move(choice.md);
  const SlotCopy* best = choice.best;
  VgMetadata& md = store->metadata_;

  // Put the PVs in metadata order; every metadata PV must be present.
  store->pvs_.resize(md.pvs.size());
  store->labels_.resize(md.pvs.size());
  store->fresh_.assign(md.pvs.size(), false);
  std::vector<Candidate*> by_index(md.pvs.size(), nullptr);
  for (size_t i = 0; i < found.size(); ++i) {
    Candidate& c = found[i];
    auto it = std::find_if(md.pvs.begin(), md.pvs.end(), [&](const PvInfo& p) { return p.uuid == c.label.pv_uuid; });
    if (it == md.pvs.end()) {
      if (i >= config.pvs.size()) continue;  // found through an older copy's list: not ours to judge
      return Status::Error(EINVAL, fmt::format("{} is not a PV of VG {} (its UUID {} is not in the metadata)",
                                               c.dev.label(), md.name, format_uuid(c.label.pv_uuid)));
    }
    size_t index = static_cast<size_t>(it - md.pvs.begin());
    if (i < config.pvs.size() && it->name != config.pvs[i].name && warnings)
      warnings->push_back(fmt::format("{} is named {} in the VG metadata; using that name", c.dev.label(), it->name));
    it->path = c.dev.path();
    by_index[index] = &c;
  }
  for (size_t i = 0; i < md.pvs.size(); ++i)
    if (!by_index[i]) {
      auto why = unreachable.find(md.pvs[i].uuid);
      return Status::Error(ENOENT, fmt::format("PV {} (UUID {}, last seen at {}) is missing{}: add it to the config",
                                               md.pvs[i].name, format_uuid(md.pvs[i].uuid), printable(md.pvs[i].path),
                                               why == unreachable.end() ? "" : " (" + why->second + ")"));
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
  fresh_.push_back(true);
  return Status::Ok();
}

std::unique_ptr<PvDevice> VgStore::remove_pv(uint32_t index) {
  std::unique_ptr<PvDevice> dev = std::move(pvs_[index]);
  pvs_.erase(pvs_.begin() + index);
  labels_.erase(labels_.begin() + index);
  fresh_.erase(fresh_.begin() + index);
  return dev;
}

void VgStore::restore_pv(uint32_t index, std::unique_ptr<PvDevice> dev, const PvLabel& label) {
  pvs_.insert(pvs_.begin() + index, std::move(dev));
  labels_.insert(labels_.begin() + index, label);
  fresh_.insert(fresh_.begin() + index, false);
}


Status VgStore::commit(VgMetadata next) {
  if (mode_ != OpenMode::kReadWrite) return Status::Error(EROFS, "the VG is open read-only");
  // A seqno that an attempt may have left on some PV is never used again
  // with another text: after a failed attempt the next one skips to burned+2,
  // which goes to the same slot, so the slot holding metadata_ stays intact.
  uint64_t seqno = metadata_.seqno + 1;
  if (burned_ >= seqno) seqno = burned_ + 2;
  if (seqno > kMaxSeqno)
    return Status::Error(EOVERFLOW, fmt::format("VG {}: metadata seqno {} would pass the largest vgfs writes ({}); "
                                                "restore a backup to start again", metadata_.name, metadata_.seqno,
                                                kMaxSeqno));
  next.seqno = seqno;
  VGFS_RETURN_IF_ERROR(next.validate());
  if (next.pvs.size() != pvs_.size())
    return Status::Error(EINVAL, fmt::format("metadata lists {} PVs, the VG has {} open", next.pvs.size(), pvs_.size()));
  for (uint32_t i = 0; i < next.pvs.size(); ++i) {
    auto it = std::find_if(labels_.begin(), labels_.end(), [&](const PvLabel& l) { return l.pv_uuid == next.pvs[i].uuid; });
    if (it == labels_.end())
      return Status::Error(EINVAL, fmt::format("metadata lists PV {}, which is not open", next.pvs[i].name));
    VGFS_RETURN_IF_ERROR(check_against_label(next, i, *it));
  }
  const std::string text = encode_metadata(next);
  commit_problems_.clear();
  if (!archive_.empty())
    if (Status a = archive_metadata(archive_, metadata_, kArchiveKeep); !a.ok()) commit_problems_.push_back(a.message());
  const int slot = static_cast<int>(next.seqno % 2);
  // Loading takes the highest seqno found on any PV, so the commit holds as
  // soon as one PV has it durably; a PV that failed keeps a stale copy that
  // the next read-write open rewrites. PVs added since the last commit get
  // it only after the others hold it durably: a PV that is not yet part of
  // the committed VG must never be the only one with a seqno, or a crash
  // would let it hold seqno N while a later commit writes another text as N.
  std::vector<Status> results(pvs_.size());
  size_t durable = 0;
  for (bool fresh : {false, true}) {
    if (fresh && durable == 0) break;
    for (size_t i = 0; i < pvs_.size(); ++i)
      if (fresh_[i] == fresh) results[i] = write_metadata_slot(*pvs_[i], labels_[i].layout, slot, next.seqno, text);
    for (size_t i = 0; i < pvs_.size(); ++i) {
      if (fresh_[i] != fresh) continue;
      if (results[i].ok()) results[i] = pvs_[i]->sync();
      if (results[i].ok()) ++durable;
      else commit_problems_.push_back(results[i].message());
    }
  }
  if (durable == 0) {
    burned_ = next.seqno;
    for (const Status& r : results)
      if (!r.ok()) return r;
    return Status::Error(EIO, fmt::format("VG {}: the commit reached no PV", next.name));
  }
  metadata_ = std::move(next);
  fresh_.assign(pvs_.size(), false);
  return Status::Ok();
}

}  // namespace vgfs
