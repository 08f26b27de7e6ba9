// VgFormat: one on-disk format of a VG: where a PV's label is, where the
// metadata copies are, what their text looks like and how a commit writes
// them. VgStore (vgfs/vg_store.h) runs the format-neutral part through it:
// which PVs belong to the VG, which copy wins (the highest seqno that
// decodes, validates and agrees with the labels; two texts with one seqno
// refused), the order PVs are written in and the syncs between phases.
// vgfs_format() is vgfs's own format (docs/format.md); lvm2_format()
// (vgfs/lvm2_format.h: labels in sectors 0-3, mda ring buffers, text,
// precommit/commit) is LVM2's: docs/design.md, "Formats".
//
// Invariant, what each call guarantees:
// - read_label() checks every field before returning it (a damaged copy is
//   reported in FoundLabel, never trusted) or fails naming the PV.
// - read_copies() returns every metadata copy the PV holds; a copy has
//   checksum_ok only when the bytes are what their writer checksummed. It
//   never decodes the text: decode() does, and validates.
// - A commit of (seqno, text) is write_commit_phase(p) for p = 0 ..
//   commit_phases() - 1 on every PV, each phase followed by a sync of every
//   PV before the next phase starts (VgStore runs the loop). At every
//   instant of that sequence, read_copies() of each PV gives the previous
//   committed text or the new one as its highest checksum_ok seqno: never a
//   mix, never neither. So a crash anywhere loses no committed metadata.
// - repair() rewrites, on one PV, exactly the label copies and metadata
//   copies that do not hold the chosen (seqno, text) where the format wants
//   it, reports each on `warnings` (and only reports when not writing), and
//   keeps the PV readable at every instant.
// A VgFormat holds no state: one object serves every VG of its format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/metadata.h"
#include "vgfs/pv_device.h"
#include "vgfs/pv_format.h"
#include "vgfs/status.h"

namespace vgfs {

// A PV's label as read_label() found it.
struct FoundLabel {
  PvLabel label;                    // checked; from the first good copy
  std::vector<bool> copy_ok;        // per label copy: false = damaged or stale, repair() rewrites it
};

// One metadata copy as read from a PV (vgfs: a slot; LVM2: an mda's text).
struct MetadataCopy {
  bool checksum_ok = false;  // header and text are what their writer checksummed
  uint64_t seqno = 0;
  std::string text;
  std::string problem;  // why not checksum_ok
};

class VgFormat {
 public:
  virtual ~VgFormat() = default;
  virtual std::string_view name() const = 0;

  // The PV's label, checked; EINVAL naming the PV when it has none ("not a
  // vgfs PV") or only damaged ones.
  virtual Result<FoundLabel> read_label(const PvDevice& dev) const = 0;
  // Every metadata copy of the PV, in the format's order of places.
  virtual std::vector<MetadataCopy> read_copies(const PvDevice& dev, const PvLabel& label) const = 0;

  // The metadata text, both ways. decode() returns only metadata that
  // passed validate(); `origin` names the copy in errors.
  virtual std::string encode(const VgMetadata& md) const = 0;
  virtual Result<VgMetadata> decode(std::string_view text, std::string_view origin) const = 0;
  // That `md` agrees with the label of its PV `pv`.
  virtual Status check_against_label(const VgMetadata& md, uint32_t pv, const PvLabel& label) const = 0;

  // Makes `dev` hold (seqno, text) as its current metadata, with the label
  // and copies found at open (`copies` as read_copies() gave them, except
  // that a copy the load found invalid has checksum_ok false and the reason
  // in `problem`); writes only when `write`, and syncs what it wrote.
  virtual Status repair(const PvDevice& dev, const FoundLabel& found, const std::vector<MetadataCopy>& copies,
                        uint64_t seqno, const std::string& text, bool write,
                        std::vector<std::string>* warnings) const = 0;

  // The commit protocol: phases and one phase's write on one PV (no sync).
  // vgfs: one phase, the slot seqno % 2. LVM2: the text into every mda,
  // then precommit, then commit of the mda headers.
  virtual int commit_phases() const = 0;
  virtual Status write_commit_phase(int phase, const PvDevice& dev, const PvLabel& label, uint64_t seqno,
                                    const std::string& text) const = 0;

  // The label of a new PV of `device_size` bytes joining the VG `md`
  // (pvadd): fresh PV uuid, the format's standard layout, `record` the keys
  // of the PV's metadata record; layout.pe_count is 0 when the device is too
  // small for one extent (the caller reports it).
  // By default vgfs's standard layout (PvLayout::standard).
  virtual Result<PvLabel> new_pv_label(uint64_t device_size, const VgMetadata& md) const {
    return PvLabel{new_uuid(), md.uuid, PvLayout::standard(device_size, md.extent_size)};
  }
  // The text of a backup of `md` (an archive file, `vgfs dump` in the
  // format's own form): encode() unless the format's tools write backups
  // in a form of their own (LVM2's vgcfgbackup).
  virtual std::string encode_backup(const VgMetadata& md) const { return encode(md); }
  // The file name suffix of an archived metadata text (include/vgfs/archive.h).
  virtual std::string_view archive_suffix() const { return "yaml"; }
  // Whether the metadata keeps an LV's owner, group and mode (LvInfo::uid,
  // gid, mode). LVM2's text has no place for them: a change of them would be
  // lost at the next open, so the manager refuses it (ENOTSUP) instead.
  virtual bool keeps_lv_ownership() const { return true; }
  // Whether a user may give a new LV (lvcreate, lvrename) this name, beyond
  // vgfs's own name rule (check_name): EINVAL naming the rule. LVM2 keeps
  // prefixes and suffixes for the LVs it makes itself.
  virtual Status check_new_lv_name(std::string_view) const { return Status::Ok(); }
  // Whether VgStore::open may open a PV the chosen metadata lists at the
  // path the metadata records (vgfs: the path it was last seen at). LVM2's
  // `device` is only a hint, possibly another machine's device: its PVs
  // come only from the paths the caller gives.
  virtual bool opens_recorded_paths() const { return true; }
  // Where the format leaves kLeaseSize bytes (vgfs/pv_lease.h) for the
  // lease that keeps a second vgfs, on any host, off a PV other hosts can
  // reach (docs/nbd.md, "One mount per export"); none by default. LVM2's
  // format defines no spare bytes (its label sector, metadata area headers
  // and texts are LVM2's to place), so an LVM2 PV has no lease.
  virtual std::optional<uint64_t> lease_offset(const PvLabel& label) const {
    (void)label;
    return std::nullopt;
  }

  // `md` without its foreign move (VgMetadata::foreign_move, LVM2's
  // pvmove0): every LV the move named back on its source, served, the
  // move's own LV and flags gone, the seqno unchanged (the caller commits
  // it). Abort commits it as it is; finish adds a vgfs job per piece to it
  // first. ENOENT when `md` has none; EINVAL with the problem when the move
  // is one vgfs cannot undo (ForeignMove::problem).
  virtual Result<VgMetadata> without_foreign_move(const VgMetadata& md) const {
    (void)md;
    return Status::Error(ENOENT, "the format has no foreign moves");
  }

  // A PV joining the VG: its label written and its metadata places
  // emptied, synced (the next commit fills them).
  virtual Status write_new_pv(const PvDevice& dev, const PvLabel& label) const = 0;
  // A PV leaving it: its label made unreadable as this format's, synced.
  virtual Status wipe_pv(const PvDevice& dev) const = 0;
};

// vgfs's own format (docs/format.md), src/pv/vgfs_format.cc. LVM2's is
// lvm2_format() (vgfs/lvm2_format.h, docs/lvm2.md).
const VgFormat& vgfs_format();

}  // namespace vgfs
