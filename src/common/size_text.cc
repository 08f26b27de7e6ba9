// Sizes as text (include/vgfs/size_text.h).
#include "vgfs/size_text.h"

#include <charconv>
#include <fmt/format.h>

namespace vgfs {

namespace {

struct Suffix {
  std::string_view name;
  uint64_t factor;
};
constexpr Suffix kSuffixes[] = {{"B", 1}, {"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}, {"TiB", TiB}};

}  // namespace

bool parse_decimal(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

Result<uint64_t> parse_size(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t number = 0;
  if (!parse_decimal(text.substr(0, digits), &number))
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": expected a whole number with an optional "
                                             "suffix B, KiB, MiB, GiB or TiB", text));
  std::string_view suffix = text.substr(digits);
  uint64_t factor = 0;
  if (suffix.empty()) factor = 1;
  for (const Suffix& s : kSuffixes)
    if (suffix == s.name) factor = s.factor;
  if (factor == 0)
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": unknown suffix \"{}\" (use B, KiB, MiB, "
                                             "GiB or TiB)", text, suffix));
  if (number > UINT64_MAX / factor)
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": too large", text));
  return number * factor;
}

Result<LvmSize> parse_lvm_size(std::string_view text) {
  const std::string_view whole = text;
  auto bad = [&](std::string_view why) {
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": {} (e.g. 100M, 1.5G, 1g, 512k, a bare number is MiB)",
                                             whole, why));
  };
  LvmSize out;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    out.sign = text[0];
    text.remove_prefix(1);
  }
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t number = 0;
  if (!parse_decimal(text.substr(0, digits), &number)) return bad("expected a number");
  text.remove_prefix(digits);
  std::string_view fraction;
  if (!text.empty() && text[0] == '.') {
    size_t n = 1;
    while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
    fraction = text.substr(1, n - 1);
    if (fraction.empty()) return bad("expected digits after the '.'");
    if (fraction.size() > 18) return bad("too many digits after the '.'");
    text.remove_prefix(n);
  }
  uint64_t factor = 0;
  if (text.empty()) factor = MiB;
  for (const Suffix& s : kSuffixes)
    if (text == s.name) factor = s.factor;
  if (text.size() == 1) {
    switch (text[0] | 0x20) {  // LVM2 takes either case for input, all powers of 1024
      case 'b': factor = 1; break;
      case 's': factor = 512; break;
      case 'k': factor = KiB; break;
      case 'm': factor = MiB; break;
      case 'g': factor = GiB; break;
      case 't': factor = TiB; break;
      case 'p': factor = 1024 * TiB; break;
      case 'e': factor = 1024 * 1024 * TiB; break;
      default: break;
    }
  }
  if (factor == 0) return bad(fmt::format("unknown unit \"{}\"", text));
  if (number > UINT64_MAX / factor) return bad("too large");
  out.bytes = number * factor;
  if (!fraction.empty()) {
    // fraction * factor / 10^digits, rounded up, in 128 bits: the factor is
    // at most 2^60 and the fraction below 10^18, so nothing overflows.
    __extension__ typedef unsigned __int128 u128;
    u128 scale = 1;
    for (size_t i = 0; i < fraction.size(); ++i) scale *= 10;
    uint64_t f = 0;
    parse_decimal(fraction, &f);
    u128 part = (static_cast<u128>(f) * factor + scale - 1) / scale;
    if (part > UINT64_MAX - out.bytes) return bad("too large");
    out.bytes += static_cast<uint64_t>(part);
  }
  return out;
}

Result<LvmExtents> parse_lvm_extents(std::string_view text) {
  const std::string_view whole = text;
  auto bad = [&](std::string_view why) {
    return Status::Error(EINVAL, fmt::format("bad extent count \"{}\": {} (e.g. 100, +10, 100%FREE, 50%VG, 100%PVS)",
                                             whole, why));
  };
  LvmExtents out;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    out.sign = text[0];
    text.remove_prefix(1);
  }
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (!parse_decimal(text.substr(0, digits), &out.number)) return bad("expected a whole number");
  text.remove_prefix(digits);
  if (text.empty()) return out;
  if (text == "%VG") out.base = 'V';
  else if (text == "%FREE") out.base = 'F';
  else if (text == "%PVS") out.base = 'P';
  else if (text == "%ORIGIN" || text == "%LV") return bad(fmt::format("\"{}\" is for snapshots, which vgfs does not have", text));
  else return bad(fmt::format("unknown suffix \"{}\"", text));
  if (out.number > 100 && out.sign == 0) return bad("a percentage is at most 100");
  if (out.number > 1000000) return bad("too large a percentage");
  return out;
}

std::string format_size(uint64_t bytes) {
  for (int i = 4; i >= 1; --i) {
    const Suffix& s = kSuffixes[i];
    if (bytes != 0 && bytes % s.factor == 0) return fmt::format("{}{}", bytes / s.factor, s.name);
  }
  return fmt::format("{}B", bytes);
}

std::string human_size(uint64_t bytes) {
  for (int i = 4; i >= 1; --i) {
    const Suffix& s = kSuffixes[i];
    if (bytes >= s.factor) {
      if (bytes % s.factor == 0) return fmt::format("{}{}", bytes / s.factor, s.name);
      return fmt::format("{:.1f}{}", static_cast<double>(bytes) / static_cast<double>(s.factor), s.name);
    }
  }
  return fmt::format("{}B", bytes);
}

}  // namespace vgfs
