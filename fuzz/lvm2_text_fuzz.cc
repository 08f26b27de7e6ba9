// Fuzz target: parse_config, emit_config and read_vg
// (include/vgfs/lvm2_config.h, lvm2_metadata.h), LVM2's metadata text.
//
// Input: the text.
//
// Oracle: a parse error has a code and a sentence; a parsed tree emits a
// text that parses to the same tree and emits to the same text again
// (parse(emit(t)) == t); read_vg of the tree, when it succeeds, keeps its
// promises: segments cover LEs 0..n-1 in order, striped segments name PVs of
// the VG with as many stripes as stripe_count and PE ranges inside them.
#include "fuzz_util.h"
#include "vgfs/lvm2_metadata.h"

using namespace vgfs;
using namespace vgfs::lvm2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<ConfigTree> tree = parse_config(text, "fuzz");
  if (!tree.ok()) {
    fuzz::check_error(tree.status());
    return 0;
  }
  const std::string emitted = emit_config(*tree);
  Result<ConfigTree> again = parse_config(emitted, "emitted");
  FUZZ_CHECK(again.ok(), "emitted text does not parse: " + again.status().message());
  FUZZ_CHECK(*again == *tree, "parse(emit(t)) != t");
  FUZZ_CHECK(emit_config(*again) == emitted, "emit is not stable");

  Result<Lvm2Vg> vg = read_vg(std::move(*tree), "fuzz");
  if (!vg.ok()) {
    fuzz::check_error(vg.status());
    return 0;
  }
  FUZZ_CHECK(valid_lvm2_name(vg->name), "VG name");
  FUZZ_CHECK(vg->extent_size > 0, "extent size");
  for (const Lvm2Lv& lv : vg->lvs) {
    uint64_t next = 0;
    for (const Lvm2Segment& s : lv.segments) {
      FUZZ_CHECK(s.start_extent == next, "segments do not cover the LEs in order");
      next += s.extent_count;
      if (!s.striped()) continue;
      FUZZ_CHECK(s.stripe_count >= 1 && s.stripes.size() == s.stripe_count, "stripe count");
      FUZZ_CHECK(s.extent_count % s.stripe_count == 0, "extent count not a multiple of the stripes");
      for (const StripeArea& a : s.stripes) {
        const Lvm2Pv* pv = vg->pv_by_key(a.pv);
        FUZZ_CHECK(pv != nullptr, "a served stripe names no PV");
        FUZZ_CHECK(a.pe + s.extent_count / s.stripe_count <= pv->pe_count, "a stripe past its PV");
      }
    }
  }
  return 0;
}
