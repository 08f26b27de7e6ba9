// Resolving an LVM2-style LV size against the VG (src/cli/lv_size.h).
#include "cli/lv_size.h"

#include <fmt/format.h>

#include "cli/lvm_display.h"
#include "vgfs/escape.h"
#include "vgfs/units.h"

namespace vgfs::cli {

namespace {

std::string long_size(uint64_t bytes) { return lvm_display_size(bytes, 'h', true, SuffixForm::kWord); }

// A name of vg.json, whose strings are escaped (include/vgfs/escape.h).
std::string name_of(const nlohmann::json& record) {
  Result<std::string> name = unescape_bytes(record.at("name").get<std::string>());
  return name.ok() ? *name : std::string();
}

std::string percent_name(char base) { return base == 'V' ? "VG" : base == 'F' ? "FREE" : "PVS"; }

}  // namespace

Result<LvSize> resolve_lv_size(const LvSizeRequest& r, const nlohmann::json& vg) {
  const std::string& verb = r.verb;
  const bool create = verb == "lvcreate", extend = verb == "lvextend", reduce = verb == "lvreduce";
  if (r.size && r.extents) return Status::Error(EINVAL, fmt::format("{}: give -L SIZE or -l EXTENTS, not both", verb));
  if (!r.size && !r.extents) return Status::Error(EINVAL, fmt::format("{}: no size given (SIZE, -L SIZE or -l EXTENTS)", verb));
  const uint64_t extent = vg.at("extent_size").get<uint64_t>();
  const uint64_t vg_extents = vg.at("size").get<uint64_t>() / extent;
  const uint64_t free_extents = vg.at("free").get<uint64_t>() / extent;
  uint64_t have = 0;  // the LV's extents now
  if (!create) {
    const nlohmann::json* found = nullptr;
    for (const nlohmann::json& l : vg.at("lvs"))
      if (name_of(l) == r.lv) found = &l;
    if (!found)
      return Status::Error(ENOENT, fmt::format("{}: no LV {} in VG {}", verb, r.lv, vg.at("name").get<std::string>()));
    have = found->at("le_count").get<uint64_t>();
  }
  auto check_sign = [&](char sign, const std::string& text) -> Status {
    if (sign == 0 || (sign == '+' && extend) || (sign == '-' && reduce)) return Status::Ok();
    return Status::Error(EINVAL, fmt::format("{}: a relative size \"{}\" is for {}", verb, text,
                                             sign == '+' ? "lvextend (+SIZE)" : "lvreduce (-SIZE)"));
  };
  LvSize out;
  uint64_t target = 0;  // extents
  if (r.size) {
    Result<LvmSize> size = parse_lvm_size(*r.size);
    if (!size.ok()) return size.status().prefixed(verb);
    VGFS_RETURN_IF_ERROR(check_sign(size->sign, *r.size));
    uint64_t bytes = size->bytes;
    const uint64_t now = have * extent;
    if (size->sign == '+') {
      if (bytes > UINT64_MAX - now) return Status::Error(EINVAL, fmt::format("{}: size \"{}\" is too large", verb, *r.size));
      bytes += now;
    } else if (size->sign == '-') {
      if (bytes >= now)
        return Status::Error(EINVAL, fmt::format("{}: LV {} is {}; it cannot shrink by {}", verb, r.lv,
                                                 format_size(now), *r.size));
      bytes = now - bytes;
    }
    if (bytes == 0) return Status::Error(EINVAL, fmt::format("{}: size \"{}\" is 0; an LV needs at least one extent", verb, *r.size));
    // The exact size goes to the control file, which rounds it up to whole
    // extents and says so in its reply ("rounded up from 9MiB"), as LVM2's
    // "Rounding up size to full physical extent" does.
    out.bytes = bytes;
    return out;
  } else {
    Result<LvmExtents> x = parse_lvm_extents(*r.extents);
    if (!x.ok()) return x.status().prefixed(verb);
    VGFS_RETURN_IF_ERROR(check_sign(x->sign, *r.extents));
    uint64_t count = x->number;
    char sign = x->sign;
    if (x->base) {
      uint64_t of = x->base == 'V' ? vg_extents : free_extents;
      if (x->base == 'P' && !r.pvs.empty()) {
        of = 0;
        for (const std::string& name : r.pvs) {
          bool known = false;
          for (const nlohmann::json& p : vg.at("pvs"))
            if (name_of(p) == name) {
              of += p.at("free_pe").get<uint64_t>();
              known = true;
            }
          if (!known) return Status::Error(ENOENT, fmt::format("{}: no PV {} in VG {}", verb, name, vg.at("name").get<std::string>()));
        }
      }
      // LVM2 rounds a percentage down, except where it shrinks an LV.
      __extension__ typedef unsigned __int128 u128;
      const u128 scaled = static_cast<u128>(count) * of;
      count = static_cast<uint64_t>(reduce ? (scaled + 99) / 100 : scaled / 100);
      // %FREE and %PVS are shares of the free space: lvextend adds them
      // (as LVM2's `lvextend -l 100%FREE` does).
      if (extend && x->base != 'V') sign = '+';
    }
    if (sign == '+') target = have + count;
    else if (sign == '-') {
      if (count >= have)
        return Status::Error(EINVAL, fmt::format("{}: LV {} has {} extents; it cannot shrink by {}", verb, r.lv, have,
                                                 *r.extents));
      target = have - count;
    } else {
      target = count;
    }
    // A percentage is an upper limit: what is free bounds it.
    if (x->base && !reduce && target > have + free_extents && target > have) {
      target = have + free_extents;
      out.notes.push_back(fmt::format("Reducing {}%{} to remaining free space {} in VG.", x->number,
                                      percent_name(x->base), long_size(free_extents * extent)));
    }
  }
  if (target == 0)
    return Status::Error(EINVAL, fmt::format("{}: \"{}\" gives 0 extents; an LV needs at least one", verb,
                                             r.size ? *r.size : *r.extents));
  if (target > UINT64_MAX / extent) return Status::Error(EINVAL, fmt::format("{}: size is too large", verb));
  out.bytes = target * extent;
  return out;
}

}  // namespace vgfs::cli
