// Loading, repairing and committing the VG metadata on the PVs
// (include/vgfs/vg_store.h, docs/format.md).
#include "vgfs/vg_store.h"

#include "vgfs/archive.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "vgfs/local_backend.h"
#include "vgfs/vg_format.h"
#include "vgfs/window_backend.h"

namespace vgfs {

namespace {

// How a PV is named in messages; both parts may come from disk.
std::string pv_label(const std::string& name, const std::string& path) {
  if (name.empty()) return fmt::format("PV {}", printable(path));  // found from a path: no name yet
  return fmt::format("PV {} ({})", printable(name), printable(path));
}

// One metadata copy during a load: as read, and whether it still counts.
struct CopyState {
  MetadataCopy read;
  bool valid = false;   // read.checksum_ok, and not found invalid while choosing
  std::string problem;  // why it is not valid
};

// A PV opened for loading: the device, its label copies and metadata copies.
struct Candidate {
  PvDevice dev;
  FoundLabel found;
  std::vector<CopyState> copies;
  const PvLabel& label() const { return found.label; }
};

// The devices under windows (partitions of one disk image), one per path:
// the windows of one image share it, so their OFD locks have one owner and
// do not refuse each other.
using WindowBases = std::map<std::string, std::shared_ptr<PvBackend>>;

Result<PvDevice> open_device(const std::string& name, const std::string& path, const std::optional<PvWindow>& window,
                             OpenMode mode, WindowBases* bases) {
  const bool writable = mode == OpenMode::kReadWrite;
  if (!window) return PvDevice::open(path, writable, pv_label(name, path));
  std::shared_ptr<PvBackend>& base = (*bases)[path];
  if (!base) {
    Result<std::unique_ptr<LocalBackend>> local = LocalBackend::open(path, writable, printable(path));
    if (!local.ok()) return local.status();
    base = std::move(*local);
  }
  const std::string where = fmt::format("{} bytes {}+{}", path, window->offset, window->size);
  Result<std::unique_ptr<WindowBackend>> w = WindowBackend::open(base, window->offset, window->size,
                                                                 pv_label(name, where));
  if (!w.ok()) return w.status();
  return PvDevice::from_backend(std::move(*w), path, writable);
}

Result<Candidate> open_candidate(const VgFormat& format, const std::string& name, const std::string& path,
                                 const std::optional<PvWindow>& window, OpenMode mode, WindowBases* bases) {
  Candidate c;
  Result<PvDevice> dev = open_device(name, path, window, mode, bases);
  if (!dev.ok()) return dev.status();
  c.dev = std::move(*dev);
  VGFS_RETURN_IF_ERROR(c.dev.lock(mode == OpenMode::kReadWrite));
  VGFS_ASSIGN_OR_RETURN(c.found, format.read_label(c.dev));
  // Other hosts see no lock of this one: a PV they can reach (NBD) carries
  // a lease where its format has room (docs/nbd.md).
  if (mode == OpenMode::kReadWrite)
    if (std::optional<uint64_t> at = format.lease_offset(c.label()))
      VGFS_RETURN_IF_ERROR(c.dev.backend().take_lease(*at));
  for (MetadataCopy& copy : format.read_copies(c.dev, c.label())) {
    CopyState state;
    state.problem = copy.problem;
    state.read = std::move(copy);
    c.copies.push_back(std::move(state));
  }
  return c;
}

// The copy a load takes among the copies of `found`: the highest seqno that
// decodes and passes check_against_label for every found PV it lists. A copy
// that fails is marked invalid (with its twins: same seqno and text) and
// reported later. Two valid copies with one seqno but different texts are
// never resolved silently: the load is refused naming both PVs.
struct Choice {
  const CopyState* best = nullptr;
  VgMetadata md;
};

// The VG uuid the PVs' labels name: the first that is not nil (an LVM2 PV
// without a metadata area cannot tell its VG; its metadata lists it).
Uuid vg_uuid_of(const std::deque<Candidate>& found) {
  for (const Candidate& c : found)
    if (c.label().vg_uuid != Uuid{}) return c.label().vg_uuid;
  return Uuid{};
}

Result<Choice> choose(const VgFormat& format, std::deque<Candidate>& found, const std::string& vg_name) {
  struct Ref {
    CopyState* copy;
    const Candidate* pv;
  };
  std::vector<Ref> order;
  for (Candidate& c : found)
    for (CopyState& s : c.copies) {
      s.valid = s.read.checksum_ok;
      s.problem = s.read.problem;
      if (s.valid) order.push_back(Ref{&s, &c});
    }
  std::stable_sort(order.begin(), order.end(),
                   [](const Ref& a, const Ref& b) { return a.copy->read.seqno > b.copy->read.seqno; });
  auto check_copy = [&](const CopyState& copy) -> Result<VgMetadata> {
    const uint64_t seqno = copy.read.seqno;
    Result<VgMetadata> md = format.decode(copy.read.text, fmt::format("metadata seqno {}", seqno));
    if (!md.ok()) return md.status();
    if (md->seqno != seqno || md->uuid != vg_uuid_of(found))
      return Status::Error(EINVAL, fmt::format("metadata seqno {} belongs to another VG or seqno", seqno));
    for (const Candidate& c : found)
      for (uint32_t i = 0; i < md->pvs.size(); ++i)
        if (md->pvs[i].uuid == c.label().pv_uuid)
          VGFS_RETURN_IF_ERROR(
              format.check_against_label(*md, i, c.label()).prefixed(fmt::format("metadata seqno {}", seqno)));
    return md;
  };
  auto mark_invalid = [&](const CopyState& bad, const std::string& problem) {
    for (Ref& twin : order)
      if (twin.copy->valid && twin.copy->read.seqno == bad.read.seqno && twin.copy->read.text == bad.read.text) {
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
  const uint64_t best_seqno = choice.best->read.seqno;
  for (Ref& ref : order) {
    if (!ref.copy->valid || ref.copy->read.seqno != best_seqno || ref.copy->read.text == choice.best->read.text)
      continue;
    Result<VgMetadata> md = check_copy(*ref.copy);
    if (!md.ok()) {
      mark_invalid(*ref.copy, md.status().message());
      continue;
    }
    return Status::Error(EINVAL, fmt::format("{} and {} hold different metadata with the same seqno {}; vgfs "
                                             "will not guess which is current: take the PV whose copy must not "
                                             "count out of the config (see `vgfs dump` of each)",
                                             best_pv->dev.label(), ref.pv->dev.label(), best_seqno));
  }
  return choice;
}

// Step 1 of open: the PVs the config names, all of one VG, none twice.
Result<std::deque<Candidate>> open_config_pvs(const VgFormat& format, const VgConfig& config, OpenMode mode,
                                              WindowBases* bases) {
  std::deque<Candidate> found;  // a deque: pointers into it stay valid as it grows
  for (const PvConfig& pv : config.pvs) {
    Result<Candidate> c = open_candidate(format, pv.name, pv.path, pv.window, mode, bases);
    if (!c.ok()) return c.status();
    if (!found.empty() && c->label().vg_uuid != Uuid{} && found[0].label().vg_uuid != Uuid{} &&
        c->label().vg_uuid != found[0].label().vg_uuid)
      return Status::Error(EINVAL, fmt::format("{} belongs to another VG (uuid {}) than {} (uuid {})",
                                               c->dev.label(), format_uuid(c->label().vg_uuid), found[0].dev.label(),
                                               format_uuid(found[0].label().vg_uuid)));
    for (const Candidate& o : found)
      if (o.label().pv_uuid == c->label().pv_uuid)
        return Status::Error(EINVAL, fmt::format("{} and {} are the same PV (UUID {})", o.dev.label(), c->dev.label(),
                                                 format_uuid(c->label().pv_uuid)));
    found.push_back(std::move(*c));
  }
  return found;
}

// Step 2: the newest valid metadata on any PV of the VG wins, and the PVs
// of the VG are those its metadata lists, not only the config's: a PV added
// by pvadd may hold the newest commit. So choose among the PVs open so far,
// open the PVs the choice lists at their last seen paths, and choose again
// until no new PV turns up (each PV UUID is looked for once). `unreachable`
// gets why a listed PV's last seen path did not do. Without
// config.follow_metadata_paths (PVs found on the user's paths, an LVM2 VG
// whose `device` hints come from another machine) only the PVs open now count.
Result<Choice> choose_following_lists(const VgFormat& format, const VgConfig& config, OpenMode mode,
                                      std::deque<Candidate>& found, std::map<Uuid, std::string>* unreachable,
                                      WindowBases* bases) {
  Choice choice;
  std::set<Uuid> open_uuids;
  for (const Candidate& c : found) open_uuids.insert(c.label().pv_uuid);
  for (;;) {
    VGFS_ASSIGN_OR_RETURN(choice, choose(format, found, config.name));
    if (!config.follow_metadata_paths) return choice;
    bool grew = false;
    for (const PvInfo& p : choice.md.pvs) {
      if (open_uuids.count(p.uuid) || unreachable->count(p.uuid)) continue;
      if (!format.opens_recorded_paths()) {
        (*unreachable)[p.uuid] = fmt::format("not among the paths given; the {} metadata's device hint is not "
                                             "followed", format.name());
        continue;
      }
      Result<Candidate> c = open_candidate(format, p.name, p.path, std::nullopt, mode, bases);
      if (!c.ok()) {
        (*unreachable)[p.uuid] = c.status().message();
      } else if (c->label().pv_uuid != p.uuid ||
                 (c->label().vg_uuid != Uuid{} && c->label().vg_uuid != vg_uuid_of(found))) {
        (*unreachable)[p.uuid] = fmt::format("{} holds PV UUID {} of VG {}", c->dev.label(),
                                             format_uuid(c->label().pv_uuid), format_uuid(c->label().vg_uuid));
      } else {
        open_uuids.insert(p.uuid);
        found.push_back(std::move(*c));
        grew = true;
      }
    }
    if (!grew) return choice;
  }
}

// Step 3: the found PVs in metadata order (updating each PV's last seen
// path); every PV the metadata lists must be there, and every PV of the
// config must be listed.
Result<std::vector<Candidate*>> pvs_in_metadata_order(const VgConfig& config, std::deque<Candidate>& found,
                                                      VgMetadata& md,
                                                      const std::map<Uuid, std::string>& unreachable,
                                                      std::vector<std::string>* warnings) {
  std::vector<Candidate*> by_index(md.pvs.size(), nullptr);
  for (size_t i = 0; i < found.size(); ++i) {
    Candidate& c = found[i];
    auto it = std::find_if(md.pvs.begin(), md.pvs.end(), [&](const PvInfo& p) { return p.uuid == c.label().pv_uuid; });
    if (it == md.pvs.end()) {
      if (i >= config.pvs.size()) continue;  // found through an older copy's list: not ours to judge
      return Status::Error(EINVAL, fmt::format("{} is not a PV of VG {} (its UUID {} is not in the metadata)",
                                               c.dev.label(), md.name, format_uuid(c.label().pv_uuid)));
    }
    size_t index = static_cast<size_t>(it - md.pvs.begin());
    if (i < config.pvs.size() && !config.pvs[i].name.empty() && it->name != config.pvs[i].name && warnings)
      warnings->push_back(fmt::format("{} is named {} in the VG metadata; using that name", c.dev.label(), it->name));
    it->path = c.dev.path();
    by_index[index] = &c;
  }
  for (size_t i = 0; i < md.pvs.size(); ++i)
    if (!by_index[i]) {
      auto why = unreachable.find(md.pvs[i].uuid);
      if (!config.follow_metadata_paths)
        return Status::Error(ENOENT, fmt::format("PV {} (UUID {}, last seen as {}) of VG {} is missing: it is not on "
                                                 "the paths given; give its image or device too",
                                                 md.pvs[i].name, format_uuid(md.pvs[i].uuid),
                                                 printable(md.pvs[i].path), md.name));
      return Status::Error(ENOENT, fmt::format("PV {} (UUID {}, last seen at {}) is missing{}: add it to the config",
                                               md.pvs[i].name, format_uuid(md.pvs[i].uuid), printable(md.pvs[i].path),
                                               why == unreachable.end() ? "" : " (" + why->second + ")"));
    }
  return by_index;
}

// Step 4: report, and when writable rewrite, every stale or damaged label
// and copy of one PV (the format knows where the current text must be).
Status repair_pv(const VgFormat& format, const Candidate& c, uint64_t seqno, const std::string& text, OpenMode mode,
                 std::vector<std::string>* warnings) {
  std::vector<MetadataCopy> copies;
  for (const CopyState& s : c.copies) {
    MetadataCopy copy = s.read;
    copy.checksum_ok = s.valid;
    copy.problem = s.problem;
    copies.push_back(std::move(copy));
  }
  return format.repair(c.dev, c.found, copies, seqno, text, mode == OpenMode::kReadWrite, warnings);
}

}  // namespace

Result<std::unique_ptr<VgStore>> VgStore::open(const VgConfig& config, OpenMode mode,
                                               std::vector<std::string>* warnings, const VgFormat& format) {
  WindowBases bases;
  std::deque<Candidate> found;  // a deque: pointers into it stay valid as it grows
  VGFS_ASSIGN_OR_RETURN(found, open_config_pvs(format, config, mode, &bases));
  std::map<Uuid, std::string> unreachable;  // PV UUID -> why its last seen path did not do
  Choice choice;
  VGFS_ASSIGN_OR_RETURN(choice, choose_following_lists(format, config, mode, found, &unreachable, &bases));

  std::unique_ptr<VgStore> store(new VgStore);
  store->mode_ = mode;
  store->format_ = &format;
  store->metadata_ = std::move(choice.md);
  VgMetadata& md = store->metadata_;
  std::vector<Candidate*> by_index;
  VGFS_ASSIGN_OR_RETURN(by_index, pvs_in_metadata_order(config, found, md, unreachable, warnings));

  const std::string& text = choice.best->read.text;
  store->pvs_.resize(md.pvs.size());
  store->labels_.resize(md.pvs.size());
  store->fresh_.assign(md.pvs.size(), false);
  for (size_t i = 0; i < md.pvs.size(); ++i) {
    Candidate& c = *by_index[i];
    VGFS_RETURN_IF_ERROR(repair_pv(format, c, md.seqno, text, mode, warnings));
    store->labels_[i] = c.label();
    store->pvs_[i] = std::make_unique<PvDevice>(std::move(c.dev));
  }
  return store;
}

Status VgStore::add_pv(PvDevice dev, const PvLabel& label) {
  VGFS_RETURN_IF_ERROR(format_->write_new_pv(dev, label));
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
  if (!metadata_.change_refused.empty())
    return Status::Error(EPERM, fmt::format("VG {}: metadata changes refused: {}", metadata_.name,
                                            printable(metadata_.change_refused)));
  return commit_unchecked(std::move(next));
}

Status VgStore::commit_ending_foreign_move(VgMetadata next) {
  if (!metadata_.foreign_move)
    return Status::Error(ENOENT, fmt::format("VG {} holds no unfinished move of another tool", metadata_.name));
  if (next.foreign_move)
    return Status::Error(EINVAL, fmt::format("VG {}: the commit would keep {}", metadata_.name, next.foreign_move->name));
  Result<VgMetadata> without = format_->without_foreign_move(metadata_);
  if (!without.ok()) return without.status().prefixed(fmt::format("VG {}", metadata_.name));
  if (!without->change_refused.empty())
    return Status::Error(EPERM, fmt::format("VG {}: metadata changes refused: {}", metadata_.name,
                                            printable(without->change_refused)));
  return commit_unchecked(std::move(next));
}

Status VgStore::commit_unchecked(VgMetadata next) {
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
    VGFS_RETURN_IF_ERROR(format_->check_against_label(next, i, *it));
  }
  // What is committed must read back: decode the text before writing it
  // (LVM2 drops a VG whose committed text does not parse), and keep what it
  // decodes to (for LVM2, with the ids encode generated for new records).
  const std::string text = format_->encode(next);
  Result<VgMetadata> reread = format_->decode(text, fmt::format("VG {} metadata seqno {} as encoded", next.name, seqno));
  if (!reread.ok())
    return reread.status().prefixed(fmt::format("VG {}: the metadata to commit does not read back; nothing written",
                                                next.name));
  next = std::move(*reread);
  commit_problems_.clear();
  if (!archive_.empty())
    if (Status a = archive_metadata(archive_, metadata_, ArchiveRetention{}, *format_); !a.ok())
      commit_problems_.push_back(a.message());
  // Loading takes the highest seqno found on any PV, so the commit holds as
  // soon as one PV has it durably; a PV that failed keeps a stale copy that
  // the next read-write open rewrites. PVs added since the last commit get
  // it only after the others hold it durably: a PV that is not yet part of
  // the committed VG must never be the only one with a seqno, or a crash
  // would let it hold seqno N while a later commit writes another text as N.
  // Each phase of the format's protocol reaches every PV of a group, synced,
  // before the next phase starts (vg_format.h).
  std::vector<Status> results(pvs_.size());
  size_t durable = 0;
  for (bool fresh : {false, true}) {
    if (fresh && durable == 0) break;
    for (int phase = 0; phase < format_->commit_phases(); ++phase) {
      for (size_t i = 0; i < pvs_.size(); ++i)
        if (fresh_[i] == fresh && results[i].ok())
          results[i] = format_->write_commit_phase(phase, *pvs_[i], labels_[i], next.seqno, text);
      for (size_t i = 0; i < pvs_.size(); ++i)
        if (fresh_[i] == fresh && results[i].ok()) results[i] = pvs_[i]->sync();
    }
    for (size_t i = 0; i < pvs_.size(); ++i) {
      if (fresh_[i] != fresh) continue;
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
