// VgStore: the open, locked PVs of one VG and the metadata committed on them,
// through the VG's format (vgfs/vg_format.h: vgfs's own today).
//
// Invariant: metadata() is always the highest-seqno valid metadata found on
// (or last committed to) the PVs of the VG (those its metadata lists, not
// only the config's), and it has passed validate() and, for every PV,
// check_against_label(): so every job record place lies inside its source
// PV's migration area. commit() writes the next seqno into slot seqno % 2 of
// every PV (PVs added since the last commit last) and fdatasyncs each PV
// before it returns ok (a PV whose write fails is reported), so the previous
// metadata stays intact in the other slot until the new one is durable
// everywhere (in general: the format's phases, each synced on every PV
// before the next); no seqno is ever written with two different texts. Opening for
// writing rewrites every stale or damaged label and slot copy (each repair
// is reported).
// Not thread-safe: VgStore is serialized by its caller (VolumeManager::admin_ on a mount, docs/design.md "Locks").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vgfs/config.h"
#include "vgfs/metadata.h"
#include "vgfs/pv_device.h"
#include "vgfs/pv_format.h"
#include "vgfs/status.h"
#include "vgfs/vg_format.h"

namespace vgfs {

enum class OpenMode {
  kReadWrite,  // exclusive OFD lock, repairs stale/damaged copies
  kReadOnly,   // shared OFD lock, reports damage without repairing it
};

class VgStore {
 public:
  // Opens and locks every PV the config names and every PV the chosen
  // metadata lists (at its last seen path), until no new one turns up, and
  // loads the metadata: the highest seqno that is valid and agrees with the
  // labels. Two valid texts with one seqno are refused, never resolved.
  // Warnings (damaged copies, repairs) are appended to `warnings`.
  // The PVs are read and the metadata committed through `format`.
  static Result<std::unique_ptr<VgStore>> open(const VgConfig& config, OpenMode mode,
                                               std::vector<std::string>* warnings,
                                               const VgFormat& format = vgfs_format());

  // Writes labels and the first metadata (seqno 1) onto the PVs `config`
  // names, creating missing images sparse. Refuses PVs that hold a vgfs label
  // or other data unless `force`. On failure nothing is left behind: created
  // files are removed and nothing was written to existing ones.
  static Status create(const VgConfig& config, bool force, std::vector<std::string>* notes);

  const VgMetadata& metadata() const { return metadata_; }
  // The format the VG's PVs are in (vgfs's own or LVM2's).
  const VgFormat& format() const { return *format_; }
  // The text committed is format().encode(next), decoded again before
  // anything is written (a text that does not decode fails the commit and
  // writes nothing); metadata() becomes that decoded metadata (for LVM2 it
  // holds the ids encode generated). EPERM when metadata().change_refused.
  // Ok once at least one PV holds the new metadata durably; the PVs that
  // failed are listed in commit_problems() until the next commit. PVs added
  // by add_pv since the last commit are written after the others hold it.
  // The seqno of an attempt that failed everywhere is never reused.
  Status commit(VgMetadata next);
  // commit() of metadata that ends metadata()'s foreign move (finish or
  // abort of LVM2's pvmove0): allowed although change_refused is set, when
  // the move is all that refuses, i.e. the metadata without it
  // (VgFormat::without_foreign_move) refuses nothing; `next` must hold no
  // foreign move. EPERM naming the other refusal otherwise.
  Status commit_ending_foreign_move(VgMetadata next);
  const std::vector<std::string>& commit_problems() const { return commit_problems_; }

  // Makes `dev` (locked, checked by check_unused) a PV of this VG: writes its
  // label, clears its slots and migration area, and appends it. The caller
  // then commits metadata that lists it (uuid in `label`).
  Status add_pv(PvDevice dev, const PvLabel& label);
  // Takes PV `index` out (the caller commits metadata without it); the
  // device stays open until the returned pointer goes.
  std::unique_ptr<PvDevice> remove_pv(uint32_t index);
  // Puts a removed PV back (when the commit without it failed).
  void restore_pv(uint32_t index, std::unique_ptr<PvDevice> dev, const PvLabel& label);
  // Each commit first saves the metadata it replaces as
  // `<archive>/<vg>_<seqno>.<format().archive_suffix()>`, kept as LVM2 keeps its archive
  // (include/vgfs/archive.h: the newest 10, and all of the last 30 days).
  void set_archive(std::string folder) { archive_ = std::move(folder); }

  size_t pv_count() const { return pvs_.size(); }
  const PvDevice& pv(uint32_t index) const { return *pvs_[index]; }
  const PvLabel& label(uint32_t index) const { return labels_[index]; }
  bool read_only() const { return mode_ == OpenMode::kReadOnly; }

 private:
  Status commit_unchecked(VgMetadata next);  // commit() past its change_refused check
  VgStore() = default;
  OpenMode mode_ = OpenMode::kReadOnly;
  const VgFormat* format_ = &vgfs_format();  // labels, copies, text and commit protocol of the VG's format
  VgMetadata metadata_;
  std::vector<std::unique_ptr<PvDevice>> pvs_;  // indexed like metadata_.pvs; devices never move
  std::vector<PvLabel> labels_;
  std::vector<bool> fresh_;  // added by add_pv since the last commit: written last
  uint64_t burned_ = 0;      // seqno of the last attempt that reached no PV durably
  std::vector<std::string> commit_problems_;
  std::string archive_;
};

// Checks metadata `md` against the label of its PV `pv` (an index into
// md.pvs): extent size, pe_start and PE count agree, and the record of every
// running job whose source is this PV is two job_record_copy_size() copies
// and lies inside the PV's migration area (overflow-safe). Every metadata a
// VgStore loads or commits passes this for each of its PVs.
Status check_against_label(const VgMetadata& md, uint32_t pv, const PvLabel& label);

// Refuses a device that holds a vgfs label (EEXIST) or any non-zero byte
// vgfs did not write (sparse holes skipped; block devices: first 16 MiB).
Status check_unused(const PvDevice& dev);
// Writes header and text of metadata `seqno` into slot `slot` in one write
// (ENOSPC when the text does not fit the slot).
Status write_metadata_slot(const PvDevice& dev, const PvLayout& layout, int slot, uint64_t seqno,
                           const std::string& text);
// Overwrites both label copies with zeros (pvremove).
Status wipe_label(const PvDevice& dev);

// Builds the initial metadata a config describes (explicit runs checked,
// size-only LVs placed by the allocator) for devices of the given sizes.
Result<VgMetadata> metadata_from_config(const VgConfig& config,
                                        const std::vector<uint64_t>& device_sizes,
                                        std::vector<std::string>* notes);

}  // namespace vgfs
