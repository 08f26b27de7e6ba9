// Fuzz target: the value parsers of include/vgfs/units.h (sizes, ranges,
// UUIDs, names), each fed the whole input.
//
// Oracle: what a parser accepts, the matching formatter writes back in a
// form the parser reads to the same value: parse_size(format_size(n)) == n,
// parse_range(format_range(r)) == r, parse_uuid(format_uuid(u)) == u; a
// range is never empty and never wraps; check_name accepts only what its
// rule says.
#include "fuzz_util.h"
#include "vgfs/units.h"

using namespace vgfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  Result<uint64_t> n = parse_size(text);
  if (n.ok()) {
    const std::string f = format_size(*n);
    Result<uint64_t> back = parse_size(f);
    FUZZ_CHECK(back.ok() && *back == *n, "parse_size(format_size(n)) != n for " + f);
    (void)human_size(*n);
  } else {
    fuzz::check_error(n.status());
  }

  Result<IndexRange> r = parse_range(text);
  if (r.ok()) {
    FUZZ_CHECK(r->count > 0, "an empty range");
    FUZZ_CHECK(r->last() >= r->first, "a range that wraps");
    const std::string f = format_range(r->first, r->count);
    Result<IndexRange> back = parse_range(f);
    FUZZ_CHECK(back.ok() && back->first == r->first && back->count == r->count,
               "parse_range(format_range(r)) != r for " + f);
  } else {
    fuzz::check_error(r.status());
  }

  Result<Uuid> u = parse_uuid(text);
  if (u.ok()) {
    const std::string f = format_uuid(*u);
    FUZZ_CHECK(f.size() == 36, "format_uuid length");
    Result<Uuid> back = parse_uuid(f);
    FUZZ_CHECK(back.ok() && *back == *u, "parse_uuid(format_uuid(u)) != u for " + f);
  } else {
    fuzz::check_error(u.status());
  }

  // The command line's LVM2 forms (src/cli/lv_size.h): an error or a value
  // in range, never a crash.
  if (Result<LvmSize> l = parse_lvm_size(text); !l.ok()) fuzz::check_error(l.status());
  else FUZZ_CHECK(l->sign == 0 || l->sign == '+' || l->sign == '-', "lvm size sign");
  if (Result<LvmExtents> x = parse_lvm_extents(text); !x.ok()) fuzz::check_error(x.status());
  else FUZZ_CHECK(x->base == 0 || x->sign != 0 || x->number <= 100, "a percentage above 100");

  Status name = check_name("LV", text);
  if (name.ok()) {
    FUZZ_CHECK(!text.empty() && text.size() <= 127 && text[0] != '-' && text[0] != '.', "name rule");
    for (char c : text)
      FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                     c == '.' || c == '+' || c == '-',
                 "name character");
  } else {
    fuzz::check_error(name);
  }
  return 0;
}
