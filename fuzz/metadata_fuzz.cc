// Fuzz target: decode_metadata (include/vgfs/metadata.h), the YAML text of
// every metadata slot and of `vgfs dump`.
//
// Oracle: a decoder either refuses the text (an errno and a sentence) or
// returns metadata that passes validate(); and whatever it accepts survives
// a round trip unchanged: decode(encode(m)) succeeds, gives metadata equal
// to m field by field, and encode(decode(encode(m))) == encode(m).
#include <fmt/format.h>

#include "fuzz_util.h"
#include "vgfs/metadata.h"

using namespace vgfs;

namespace {

// Names the first field where `a` and `b` differ, or "" when equal.
std::string difference(const VgMetadata& a, const VgMetadata& b) {
  if (a.name != b.name) return "vg.name";
  if (a.uuid != b.uuid) return "vg.uuid";
  if (a.extent_size != b.extent_size) return "vg.extent_size";
  if (a.region_size != b.region_size) return "vg.region_size";
  if (a.seqno != b.seqno) return "vg.seqno";
  if (a.next_job_id != b.next_job_id) return "vg.next_job_id";
  if (a.kept != b.kept) return "vg.kept";
  if (a.pvs.size() != b.pvs.size()) return "number of PVs";
  for (size_t i = 0; i < a.pvs.size(); ++i) {
    const PvInfo &x = a.pvs[i], &y = b.pvs[i];
    if (x.name != y.name || x.uuid != y.uuid || x.path != y.path || x.pe_start != y.pe_start ||
        x.pe_count != y.pe_count || x.kept != y.kept)
      return fmt::format("pvs[{}]", i);
  }
  if (a.lvs.size() != b.lvs.size()) return "number of LVs";
  for (size_t i = 0; i < a.lvs.size(); ++i) {
    const LvInfo &x = a.lvs[i], &y = b.lvs[i];
    if (x.name != y.name || x.uuid != y.uuid || x.mode != y.mode || x.uid != y.uid || x.gid != y.gid ||
        x.hidden != y.hidden || x.kept != y.kept || !(x.map == y.map))
      return fmt::format("lvs[{}]", i);
  }
  if (a.jobs.size() != b.jobs.size()) return "number of jobs";
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    const JobInfo &x = a.jobs[i], &y = b.jobs[i];
    if (x.id != y.id || x.lv != y.lv || x.le != y.le || x.count != y.count || x.src_pv != y.src_pv ||
        x.src_pe != y.src_pe || x.dst_pv != y.dst_pv || x.dst_pe != y.dst_pe || x.state != y.state ||
        x.reason != y.reason || x.record_offset != y.record_offset || x.record_size != y.record_size)
      return fmt::format("jobs[{}]", i);
  }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<VgMetadata> md = decode_metadata(text, "fuzz");
  if (!md.ok()) {
    fuzz::check_error(md.status());
    return 0;
  }
  Status valid = md->validate();
  FUZZ_CHECK(valid.ok(), "decode_metadata returned metadata that fails validate(): " + valid.message());

  const std::string once = encode_metadata(*md);
  Result<VgMetadata> again = decode_metadata(once, "re-encoded");
  FUZZ_CHECK(again.ok(), "the encoding of accepted metadata does not decode: " + again.status().message());
  const std::string diff = difference(*md, *again);
  FUZZ_CHECK(diff.empty(), "decode(encode(m)) differs from m in " + diff);
  const std::string twice = encode_metadata(*again);
  FUZZ_CHECK(once == twice, "encode(decode(encode(m))) != encode(m)");
  return 0;
}
