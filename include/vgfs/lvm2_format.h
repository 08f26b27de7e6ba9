// LVM2's on-disk format as a VgFormat (vgfs/vg_format.h; docs/lvm2.md,
// "Writing LVM2 metadata"): the second implementation next to vgfs's own, so
// VgStore opens, repairs and commits LVM2 VGs with the same format-neutral
// code.
//
// How LVM2 maps onto vgfs's types:
// - PvLabel of an LVM2 PV: pv_uuid = short_uuid(the label's 32-character
//   id); vg_uuid = short_uuid(the VG id of the newest text in the PV's mdas),
//   nil when the PV has no mda with a text; layout.pe_start = the data area
//   offset; layout.device_size = the label's device size; layout.extent_size
//   and pe_count from that text's PV entry (0 when none); no slots and no
//   migration area (migration_offset/size 0: a running move's destination
//   and record are hidden LVs instead, vgfs/lvm2_move.h);
//   `record` = the PV's `id` (and for a new PV status, flags, dev_size).
// - VgMetadata from the text: extent_size, pe_start and stripe_size in
//   bytes, PvInfo::path = the `device` hint (information only), every key
//   vgfs does not model kept verbatim in text order (VG, PV, LV, segment),
//   LvInfo::hidden = no VISIBLE, LvInfo::unsupported + held for segment
//   types vgfs does not serve, VgMetadata::change_refused for VGs LVM2 itself
//   would not let another host or tool change.
//
// Invariant: the format is stateless: every write re-reads the LVM2 label
// and mda headers from the device. A commit writes the text into the ring of
// every in-use mda (phase 0), sets slot 1 (precommit, phase 1), then slot 0
// and clears slot 1 (phase 2), so at every instant read_copies() gives the
// old committed text or the new one. What encode() writes is decoded again
// by VgStore::commit before any byte of it is written (a kept key that is not
// LVM2 text fails the commit there). A VG with change_refused gets no commit
// and no repair write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/lvm2_mda.h"
#include "vgfs/status.h"
#include "vgfs/uuid.h"
#include "vgfs/vg_format.h"

namespace vgfs {

// LVM2's format (src/lvm2/lvm2_format.cc).
const VgFormat& lvm2_format();

namespace lvm2 {

// The 16-byte Uuid vgfs's model uses for an LVM2 id (32 characters, no
// dashes): the name-based UUID version 5 (RFC 4122, SHA-1) of the 32
// characters in the namespace kLvm2IdNamespace. Stable, so the same LVM2 id
// always gives the same vgfs uuid; the full id stays in the kept `id` key.
Uuid short_uuid(std::string_view id32);
// LVM2's metadata text to the model (checked: read_vg(), then validate())
// and back (LVM2's key order and style; a new LV or VG without a kept `id`
// gets new_lvm2_id(), a new LV lvcreate's status, flags, creation_time and
// creation_host). lvm2_format()'s decode() and encode() are these.
Result<VgMetadata> decode_vg_text(std::string_view text, std::string_view origin);
std::string encode_vg_text(const VgMetadata& md);
// The same VG as vgcfgbackup writes it (what `vgcfgrestore -f` reads): the
// header (contents, version, description, creation host and time) first,
// then the VG section indented with tabs. The archive and `vgfs dump
// --lvm2` write this form.
std::string encode_vg_backup(const VgMetadata& md);
// Tabs before each line of an LVM2 text by its nesting of {} and [] (not
// counting those inside strings and comments, whose bytes stay as they are).
std::string indent_config_text(std::string_view text);

// A fresh LVM2 id: 32 random characters of LVM2's alphabet [0-9A-Za-z!#].
std::string new_lvm2_id();

// Where the next copy of `text_size` bytes (NUL included) goes in the ring of
// an mda of `area_size` bytes whose committed copy is `committed` (empty:
// none): after the committed copy, rounded up to 512, at 512 again when less
// than 512 bytes remain; a copy may wrap to 512. ENOSPC when the text is
// larger than LVM2's limit (area_size - 512) / 2 - 512 or would overlap the
// committed copy; EINVAL when the committed slot does not fit the area.
Result<RawLocation> plan_ring_write(uint64_t area_size, const RawLocation& committed, uint64_t text_size);

// Whether LVM2 would let a user give an LV this name (lvcreate, lvrename):
// its name rule, not starting with "pvmove" or "snapshot", none of the
// suffixes LVM2 keeps for the sub-LVs it makes (_tdata, _rimage, ...); nor
// starting with kMoveLvPrefix (vgfs/lvm2_move.h), which vgfs keeps for the
// hidden LVs of its moves.
// EINVAL naming the rule. Names already in an LVM2 text are not checked
// (LVM2's own sub-LVs carry such suffixes); the manager checks new names.
Status check_new_lv_name(std::string_view name);

// This host's LVM2 system ID as vgfs sees it: the uname nodename (LVM2's
// system_id_source = "uname"). A VG whose system_id is set and differs is
// foreign: its changes are refused.
std::string host_system_id();

}  // namespace lvm2
}  // namespace vgfs
