// Fuzz target: find_pvmove, finish_pvmove, abort_pvmove and
// pvmove_copy_list (include/vgfs/lvm2_pvmove.h) on LVM2 metadata text that
// read_vg accepts.
//
// Input: one byte whose bits say which pieces were copied (bit i % 8 for
// piece i), then the text.
//
// Oracle: an error has a code and a sentence; a found pvmove keeps the
// header's promises (two PV legs inside their PVs, extents_moved <=
// extent_count, one user per piece); finishing and aborting it both
// succeed, and their results emit to a text that read_vg accepts, with one
// LV fewer, no pvmove LV and no LOCKED user; the copy list covers exactly
// what extents_moved does not.
#include "fuzz_util.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/lvm2_pvmove.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

void check_result(const Result<ConfigTree>& tree, const Lvm2Vg& before, const Pvmove& move) {
  FUZZ_CHECK(tree.ok(), "a found pvmove does not resolve: " + tree.status().message());
  Result<Lvm2Vg> after = read_vg_text(emit_config(*tree), "resolved");
  FUZZ_CHECK(after.ok(), "the resolved text is refused: " + after.status().message());
  FUZZ_CHECK(after->lvs.size() + 1 == before.lvs.size(), "not exactly the pvmove LV removed");
  Result<Pvmove> again = find_pvmove(*after);
  FUZZ_CHECK(!again.ok() && again.status().code() == ENOENT, "a pvmove LV is left");
  FUZZ_CHECK(!after->has_status("PVMOVE"), "the VG keeps PVMOVE");
  for (const Lvm2Lv& lv : after->lvs)
    for (const std::string& user : move.users)
      if (lv.name == user)
        for (const std::string& f : lv.status) FUZZ_CHECK(f != "LOCKED", "a user LV stays LOCKED");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t copied_bits = in.u8();
  Result<Lvm2Vg> vg = read_vg_text(in.rest(), "fuzz");
  if (!vg.ok()) return 0;  // the lvm2_text target covers read_vg's errors
  Result<Pvmove> move = find_pvmove(*vg);
  if (!move.ok()) {
    fuzz::check_error(move.status());
    return 0;
  }
  FUZZ_CHECK(!move->pieces.empty(), "a pvmove without pieces");
  std::vector<bool> copied;
  uint64_t to_copy = 0;
  for (size_t i = 0; i < move->pieces.size(); ++i) {
    const PvmovePiece& p = move->pieces[i];
    FUZZ_CHECK(p.extents_moved <= p.extent_count, "extents_moved past the piece");
    for (const StripeArea* a : {&p.source, &p.destination}) {
      const Lvm2Pv* pv = vg->pv_by_key(a->pv);
      FUZZ_CHECK(pv != nullptr, "a leg names no PV");
      FUZZ_CHECK(a->pe + p.extent_count <= pv->pe_count, "a leg past its PV");
    }
    FUZZ_CHECK(!p.user.lv.empty(), "a piece without its user");
    to_copy += p.extent_count - p.extents_moved;
    copied.push_back((copied_bits >> (i % 8)) & 1);
  }
  uint64_t listed = 0;
  for (const PvmoveCopy& c : pvmove_copy_list(*move)) {
    FUZZ_CHECK(c.piece < move->pieces.size() && c.count > 0, "copy list entry");
    listed += c.count;
  }
  FUZZ_CHECK(listed == to_copy, "the copy list does not cover what extents_moved leaves");
  check_result(finish_pvmove(vg->tree, *move, copied), *vg, *move);
  check_result(abort_pvmove(vg->tree, *move), *vg, *move);
  return 0;
}
